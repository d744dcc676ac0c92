"""`python -m cvs_tf.train --xbm-size N`: trains with the cross-batch memory, records it, refuses a kind that takes none."""

import json

import keras
import numpy as np
import pytest

from cvs_tf.cli.train import main
from cvs_tf.losses import register_pair_loss, registry
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset

pytestmark = pytest.mark.trains

FAST = ["--epochs", "2", "--batch-size", "8", "--steps-per-epoch", "3", "--no-jit", "--quiet", "--early-stopping", "none"]


def test_train_with_the_memory_records_it_in_config_json_and_the_model(tmp_path):
    ds = make_toy_featureset(tmp_path / "ds", modalities={"image": 16, "text": 12})
    cfg = tmp_path / "small.json"
    cfg.write_text(json.dumps({"model": {"dim": 16}}))
    out = tmp_path / "run"
    assert main(["--dataset", str(ds), "--config", str(cfg), "--xbm-size", "64", "--xbm-warmup", "2", *FAST,
                 "--out", str(out)]) == 0
    loss = json.loads((out / "config.json").read_text())["loss"]
    assert (loss["xbm_size"], loss["xbm_warmup"]) == (64, 2)
    model = keras.models.load_model(sorted((out / "stages").iterdir())[-1] / "model.keras", compile=False)
    (slot,) = model.xbm.slots.values()
    assert int(slot["steps"].value) == 6 and int(slot["fill"].value) == 48   # 2 epochs of 3 steps of 8 rows
    assert np.all(np.abs(np.linalg.norm(slot["ex"].value.numpy()[:48], axis=-1) - 1) < 1e-5)


def test_a_kind_that_takes_no_memory_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_pair_loss("plain", lambda yx, ex, yy, ey, o: {"t": ex[..., 0, 0], "total": ex[..., 0, 0]}, terms="t")
    ds = make_toy_featureset(tmp_path / "ds")
    out = tmp_path / "run"
    code = run_cli(main, ["--dataset", str(ds), *FAST, "--loss", "plain", "--xbm-size", "32", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:"), err
    assert "the pair loss 'plain' takes no cross-batch memory" in err[0] and not out.exists()


@pytest.mark.parametrize("flag", ["--xbm-size", "--xbm-warmup"])
def test_negative_values_are_refused_in_one_line(tmp_path, capsys, flag):
    ds = make_toy_featureset(tmp_path / "ds")
    out = tmp_path / "run"
    code = run_cli(main, ["--dataset", str(ds), *FAST, flag, "-1", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "must be >= 0" in err[0] and not out.exists(), err
