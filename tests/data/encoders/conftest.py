"""The encoder lane's fixture: the offline encoders' names once their packages are installed (tests/data/encoders/lane.py)."""

import pytest

from tests.data.encoders.lane import require_offline_models


@pytest.fixture(scope="session")
def offline_models():
    """The three offline encoders' names, once their packages are known to be installed."""
    require_offline_models()
    return {"image": "efficientnet-lite0", "text": "minilm", "audio": "whisper-base"}
