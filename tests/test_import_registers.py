"""``import cvs_tf`` registers every Keras-serialisable class: a stage's model.keras loads in a fresh process; ``cvs_tf.load_model``."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cvs_tf
from cvs_tf.cli.train import main as train_main
from tests.helpers import make_toy_featureset, write_small_config

pytestmark = pytest.mark.trains

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "1", "--no-jit", "--quiet", "--early-stopping", "none"]
SPACES = {"cvs": ["--space", "cvs"], "mcvs": ["--space", "mcvs"], "rvs": ["--space", "rvs", "--reference", "text"]}


def _fresh_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _registered_names() -> list[str]:
    """The classes decorated in the source, so a new one cannot be forgotten."""
    names = []
    for path in sorted((ROOT / "cvs_tf").rglob("*.py")):
        text = path.read_text()
        names += re.findall(r"@keras\.saving\.register_keras_serializable\(package=\"cvs_tf\"\)\s*\nclass (\w+)", text)
    return names


LOAD_AND_EMBED = ("import sys, cvs_tf, keras, numpy as np\n"
                  "names, paths = sys.argv[1].split(','), sys.argv[2:]\n"
                  "print([n for n in names if keras.saving.get_registered_object('cvs_tf>' + n) is None])\n"
                  "for p in paths:\n"
                  "    m = keras.saving.load_model(p)\n"
                  "    x = np.ones((2, m.modality_dims['audio']), 'float32')\n"
                  "    print(type(m).__name__, ','.join(m.modalities), float(np.asarray(m.embed('audio', x)).sum()))")


def _check_fresh_load(paths):
    names = _registered_names()
    assert {"CVSModel", "MCVSModel", "RVSModel", "ModalityBranch", "AlignedAttention", "RVSAttention"} <= set(names)
    r = _fresh_python(LOAD_AND_EMBED, ",".join(names), *map(str, paths))
    assert r.returncode == 0, r.stderr[-3000:]
    missing, *lines = r.stdout.strip().splitlines()
    assert missing == "[]"                   # every registered class is known after a bare import
    assert [ln.split()[:2] for ln in lines] == [["CVSModel", "image,text,audio"], ["MCVSModel", "image,text,audio"],
                                                ["RVSModel", "image,text,audio"]]
    for line, p in zip(lines, paths):       # the same weights as loading here
        m = cvs_tf.load_model(p)
        x = np.ones((2, m.modality_dims["audio"]), "float32")
        assert float(line.split()[2]) == pytest.approx(float(np.asarray(m.embed("audio", x)).sum()), abs=1e-5)


def test_saved_spaces_load_in_a_fresh_process_after_import_cvs_tf(tmp_path):
    """Fast lane: the three spaces (M-CVS and RVS at stage 2) saved as the trainer saves them; every
    registered class known after ``import cvs_tf`` alone."""
    from cvs_tf.models import CVSModel, MCVSModel, RVSModel

    dims = {"image": 6, "text": 5, "audio": 4}
    models = [CVSModel(dims, 3, dim=8), MCVSModel(dims, 3, stages=[["image", "text"], ["audio"]], dim=8, current_stage=1),
              RVSModel(dims, 3, reference="text", stages=[["text", "image"], ["audio"]], dim=8, current_stage=1)]
    paths = []
    for m in models:
        paths.append(tmp_path / f"{type(m).__name__}.keras")
        m.save(paths[-1])
    _check_fresh_load(paths)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    ds = make_toy_featureset(root / "ds", modalities={"image": 6, "text": 5, "audio": 4}, n_classes=3, n_train=18,
                             n_test=6)
    cfg = write_small_config(root / "small.json", 8)
    out = {}
    for name, flags in SPACES.items():
        out[name] = root / name
        assert train_main([*flags, "--dataset", str(ds), "--config", str(cfg), "--out", str(out[name]), *FAST]) == 0
    return out


def _last_stage(run: Path) -> Path:
    return sorted((run / "stages").iterdir(), key=lambda p: int(p.name.split("-")[0]))[-1] / "model.keras"


@pytest.mark.slow
def test_stage_models_load_in_a_fresh_process_after_import_cvs_tf(runs):
    """The acceptance one-liner on trained runs: CVS, M-CVS stage 2 and RVS stage 2."""
    paths = [_last_stage(runs[s]) for s in SPACES]
    assert [p.parent.name.split("-")[0] for p in paths] == ["1", "2", "2"]
    _check_fresh_load(paths)


@pytest.mark.slow
def test_load_model_takes_a_file_a_stage_folder_or_a_run_directory(runs):
    run = runs["mcvs"]
    for target in (run, run / "stages" / "2-audio", run / "stages" / "2-audio" / "model.keras"):
        model = cvs_tf.load_model(target)
        assert type(model).__name__ == "MCVSModel" and model.current_stage == 1
    assert cvs_tf.load_model(run / "stages" / "1-image_text").current_stage == 0


def test_load_model_errors_are_one_line(tmp_path):
    corrupt = tmp_path / "stage" / "model.keras"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    empty_run = tmp_path / "run"
    (empty_run / "stages").mkdir(parents=True)
    (empty_run / "config.json").write_text("{}")
    (tmp_path / "other").mkdir()
    for path, needle in ((tmp_path / "nope.keras", "no such file"), (corrupt, "cannot be loaded"),
                         (corrupt.parent, "cannot be loaded"), (empty_run, "no finished stage"),
                         (tmp_path / "other", "neither")):
        with pytest.raises(cvs_tf.ModelFileError) as info:
            cvs_tf.load_model(path)
        msg = str(info.value)
        assert needle in msg and str(path) in msg and "\n" not in msg
