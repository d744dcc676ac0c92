"""--strategy: bad values and a multi-worker run without a usable TF_CONFIG are refused in one line, before anything is written."""

import json

import pytest

from cvs_tf.cli.train import main
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset

FAST = ["--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet"]


@pytest.mark.parametrize("tf_config,needle", [
    (None, "--strategy multiworker needs the cluster in TF_CONFIG"),
    ("{not json", "TF_CONFIG must be JSON"),
    (json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}}), "TF_CONFIG must be JSON"),
])
@pytest.mark.trains
def test_multiworker_needs_a_tf_config(tmp_path, capsys, monkeypatch, tf_config, needle):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    out = tmp_path / "run"
    code = run_cli(main, ["--dataset", str(make_toy_featureset(tmp_path / "ds")), *FAST, "--strategy", "multiworker",
                          "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert not out.exists()


@pytest.mark.trains
def test_an_unknown_strategy_in_a_config_file_is_refused(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"train": {"strategy": "horovod"}}))
    code = run_cli(main, ["--config", str(cfg), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "train.strategy must be default, mirrored, multiworker" in err[0], err
