"""`--preset best` and `--preset thesis` train on a freshly converted set (an official XMedia layout), any space."""

import json

import pytest

from cvs_tf.cli.data import main as data_main
from cvs_tf.cli.train import main as train_main
from cvs_tf.presets import load_preset
from cvs_tf.utils.cli import run_cli
from tests.data.converters.layouts import xmedia

FAST = ["--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "1", "--no-jit", "--quiet"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("preset")
    layout = xmedia(root / "src")
    assert run_cli(data_main, ["convert", "xmedia", str(layout.src), "--out", str(root / "xmedia")]) == 0
    return root / "xmedia"


@pytest.mark.parametrize("preset,space", [("best", "cvs"), pytest.param("thesis", "rvs", marks=pytest.mark.slow)])
@pytest.mark.trains
def test_a_preset_trains_on_a_freshly_converted_set(converted, tmp_path, preset, space, capsys):
    out = tmp_path / "run"
    code = run_cli(train_main, ["--preset", preset, "--space", space, "--dataset", str(converted),
                                "--modalities", "image", "text", *FAST, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((out / "config.json").read_text())
    want = load_preset(preset)
    assert saved["loss"]["kind"] == want.loss.kind and saved["model"]["dim"] == want.model.dim
    assert saved["model"]["standardize"] == want.model.standardize and saved["model"]["space"] == space
    assert json.loads((out / "metrics.json").read_text())["test"]["overall_mean"] is not None
