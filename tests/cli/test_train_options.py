"""`python -m cvs_tf.train` refuses bad option values (non-finite, out of range, wrongly typed config fields) up front, in one line."""

import json

import pytest

from cvs_tf.cli.train import main
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset

FAST = ["--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet", "--early-stopping", "none"]


@pytest.mark.parametrize("argv,needle", [
    (["--lr", "nan"], "train.lr must be a finite number, got nan"),
    (["--lr", "inf"], "train.lr must be a finite number, got inf"),
    (["--lr", "-1"], "train.lr must be > 0"),
    (["--steps-per-epoch", "0"], "train.steps_per_epoch must be >= 1"),
    (["--patience", "-1"], "train.patience must be >= 1"),
    (["--batch-size", "1"], "train.batch_size must be >= 2"),
    (["--seed", "-3"], "train.seed must be in [0, 2**32)"),
    (["--loss", "hinge9"], "loss.kind must be a registered pair loss"),
    (["--depth", "0"], "model.depth must be >= 1"),
    (["--dropout", "1"], "model.dropout must be in [0, 1)"),
    (["--weight-decay", "-1"], "train.weight_decay must be >= 0"),
    (["--label-smoothing", "1.5"], "loss.label_smoothing must be in [0, 1)"),
    (["--temperature", "0"], "loss.temperature must be a number > 0"),
    (["--preset", "thesis", "--config", "x.json"], "--preset and --config both give a whole recipe"),
])
@pytest.mark.trains
def test_bad_option_values_are_refused_before_any_output(tmp_path, capsys, argv, needle):
    ds = make_toy_featureset(tmp_path / "ds")
    out = tmp_path / "run"
    code = run_cli(main, ["--dataset", str(ds), *FAST, *argv, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("config,needle", [
    ({"model": {"attention": "no"}}, "config.model.attention: expected true or false, got 'no'"),
    ({"model": {"dim": "abc"}}, "config.model.dim: expected an integer, got 'abc'"),
    ({"train": {"epochs": "x"}}, "config.train.epochs: expected an integer, got 'x'"),
    ({"loss": {"margins": [1.0, float("nan"), 1.0]}}, "loss.margins[1] must be a finite number, got nan"),
    ({"loss": {"gammas": [1, "x", 2]}}, "config.loss.gammas[1]: expected a number, got 'x'"),
    ({"model": {"dropout": 1.5}}, "model.dropout must be in [0, 1)"),
    ({"train": {"eval_k": 0}}, "train.eval_k must be >= 1"),
    ({"model": []}, "config.model: expected an object, got []"),
])
@pytest.mark.trains
def test_bad_config_files_name_the_file_and_the_field(tmp_path, capsys, config, needle):
    ds = make_toy_featureset(tmp_path / "ds")
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps(config))  # json writes NaN as the NaN literal, which json.loads reads back
    out = tmp_path / "run"
    code = run_cli(main, ["--dataset", str(ds), "--config", str(cfg), *FAST, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    if needle.startswith("config."):
        assert err[0].startswith(f"error: {cfg}: {needle}"), err
    assert not out.exists()


def test_recipe_flags_and_presets_set_the_run_config(tmp_path):
    from cvs_tf.cli.train import config_from_args, parse_args

    args = parse_args(["--preset", "thesis", "--loss", "supcon", "--dim", "64", "--hidden-dim", "256", "--depth", "2",
                       "--dropout", "0.2", "--standardize", "--weight-decay", "1e-4", "--label-smoothing", "0.1",
                       "--temperature", "0.07", "--learn-temperature", "--dataset", "digits10",
                       "--invariance", "0.5", "--vse-margin", "0.3"])
    cfg = config_from_args(args)
    m, loss, t = cfg.model, cfg.loss, cfg.train
    assert (m.dim, m.hidden_dim, m.depth, m.dropout, m.standardize) == (64, 256, 2, 0.2, True)
    assert (loss.kind, loss.label_smoothing, loss.temperature, loss.learn_temperature) == ("supcon", 0.1, 0.07, True)
    assert (t.weight_decay, t.dataset, loss.invariance, loss.vse_margin) == (1e-4, "digits10", 0.5, 0.3)
    assert config_from_args(parse_args([])).to_dict() == config_from_args(parse_args(["--preset", "thesis"])).to_dict()
