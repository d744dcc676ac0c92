"""The encoder lane's gate: its tests skip without the offline models' packages, and fail instead in the lane itself."""

import importlib.util
import os

import pytest

from cvs_tf.data.encoders.offline import DATAPREP_INSTALL, NEEDS

LANE_VAR = "CVS_ENCODER_LANE"


def missing_packages(names=tuple(NEEDS)) -> list[str]:
    """The distributions the named offline encoders need that are not installed."""
    return sorted({dist for n in names for mod, dist in NEEDS[n] if importlib.util.find_spec(mod) is None})


def require_offline_models(names=tuple(NEEDS)) -> None:
    """Skip (fail when ``CVS_ENCODER_LANE=1``, as ``make test-encoders`` sets) without the models' packages."""
    missing = missing_packages(names)
    if not missing:
        return
    why = f"encoder lane: needs {', '.join(missing)} ({DATAPREP_INSTALL}; or run make test-encoders)"
    if os.environ.get(LANE_VAR) == "1":
        pytest.fail(f"{LANE_VAR}=1 but the offline models cannot run: {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def offline_models():
    """The three offline encoders' names, once their packages are known to be installed."""
    require_offline_models()
    return {"image": "efficientnet-lite0", "text": "minilm", "audio": "whisper-base"}
