"""Up-front estimate of a training step's memory (semi-hard mining ~ B³) and the one-line refusal of batches that cannot fit."""

import pytest

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.registry import load_dataset
from cvs_tf.data.store import load_feature_set
from cvs_tf.training import memory
from cvs_tf.training.memory import (
    check_batch_memory,
    estimates,
    mining_bytes,
    stage_pairs,
    triplet_terms,
)
from tests.conftest import make_toy_featureset

GIB = 1 << 30


@pytest.fixture
def toy(tmp_path):
    return load_feature_set(make_toy_featureset(tmp_path / "toy"))  # class-aligned: image 16, text 12, audio 6


def _cfg(space="cvs", batch=128, symmetric=False):
    cfg = RunConfig()
    cfg.model.space, cfg.train.batch_size, cfg.loss.symmetric_inter = space, batch, symmetric
    return cfg


def test_mining_formula_by_hand():
    assert triplet_terms(1) == 3 and triplet_terms(3) == 9 and triplet_terms(3, symmetric=True) == 12
    assert mining_bytes(100, 9) == 9 * (10 * 100**3 + 64 * 100**2) == 95_760_000
    assert mining_bytes(2000, 3) == 3 * (10 * 8_000_000_000 + 64 * 4_000_000) == 240_768_000_000


def test_pairs_and_terms_per_stage_follow_the_plans(toy):
    assert [len(p) for p in stage_pairs(_cfg("cvs"), toy)] == [3]
    assert [len(p) for p in stage_pairs(_cfg("mcvs"), toy)] == [1, 2]   # [image, text], [audio]
    assert [len(p) for p in stage_pairs(_cfg("rvs"), toy)] == [1, 1]    # reference image
    assert [s.terms for s in estimates(_cfg("mcvs", symmetric=True), toy)] == [4, 8]


def test_stage_estimate_by_hand(toy):
    (st,) = estimates(_cfg("cvs"), toy)
    banks = sum(4 * d * (toy.count(m, "train") + toy.count(m, "val")) for m, d in (("image", 16), ("text", 12), ("audio", 6)))
    d = 512  # branches (d_m*D + D + D*D + D), 3 aligned blocks of 4 D*D, classifier over 4 classes
    params = sum(dm * d + d + d * d + d for dm in (16, 12, 6)) + 3 * 4 * d * d + (d * 4 + 4)
    assert st.bank_bytes == banks and st.model_bytes == 16 * params
    assert st.live_terms(100) == 3 and st.live_terms(32) == 9    # pair by pair at B = 100, together at B <= 32
    assert st.total(100) == 95_760_000 // 3 + banks + 16 * params
    assert st.total(32) == mining_bytes(32, 9) + banks + 16 * params


@pytest.mark.parametrize("space", ["cvs", "mcvs", "rvs"])
@pytest.mark.parametrize("attention,rec,bn", [(True, 0.0, False), (False, 1.0, True), (True, 1.0, True)])
def test_parameter_count_matches_the_built_model(toy, space, attention, rec, bn):
    from cvs_tf.models.factory import build_model

    cfg = _cfg(space)
    cfg.model.dim, cfg.model.attention, cfg.loss.reconstruction_weight, cfg.model.use_batchnorm = 8, attention, rec, bn
    assert memory.model_parameters(cfg, toy, stage_pairs(cfg, toy)) == build_model(cfg, toy).count_params()


def _largest_by_hand(terms, banks, budget):
    b = 2
    while terms * (10 * (b + 1) ** 3 + 64 * (b + 1) ** 2) + banks <= budget:
        b += 1
    return b


def test_batch_2000_is_refused_with_the_estimate_and_a_batch_that_fits(toy):
    (st,) = estimates(_cfg("cvs"), toy)
    need = 3 * (10 * 2000**3 + 64 * 2000**2) + st.bank_bytes + st.model_bytes   # one pair's 3 terms live
    fit = _largest_by_hand(3, st.bank_bytes + st.model_bytes, 16 * GIB)
    assert 825 < fit < 835  # (16 GiB / 30)^(1/3) ~ 831
    with pytest.raises(ConfigError) as info:
        check_batch_memory(_cfg("cvs", 2000), toy, available=(16 * GIB, "the host has"))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"batch size 2000 needs about {need / GIB:.1f} GiB in stage 1 (3 of its 9 triplet terms mined at a time")
    assert "the host has 16.0 GiB available" in msg
    assert f"the largest batch size that fits is {fit} " in msg
    check_batch_memory(_cfg("cvs", fit), toy, available=(16 * GIB, "the host has"))
    with pytest.raises(ConfigError):
        check_batch_memory(_cfg("cvs", fit + 1), toy, available=(16 * GIB, "the host has"))


def test_the_largest_stage_decides(toy):
    """M-CVS: stage 2 (2 pairs, 6 terms, one pair live at a time, plus the audio bank) needs more than stage 1 (3 terms)."""
    with pytest.raises(ConfigError, match=r"in stage 2 \(3 of its 6 triplet terms"):
        check_batch_memory(_cfg("mcvs", 1000), toy, available=(8 * GIB, "the host has"))


def test_no_batch_fits_when_the_features_and_model_alone_exceed_the_budget(toy):
    with pytest.raises(ConfigError, match="no batch size fits: features and model alone need"):
        check_batch_memory(_cfg("cvs", 64), toy, available=(1000, "the host has"))
    cfg = _cfg("cvs", 128)
    cfg.model.dim = 200_000  # 12 blocks of D*D alone: ~7 TB
    with pytest.raises(ConfigError, match=r"no batch size fits: .* \(model.dim 200000;"):
        check_batch_memory(cfg, toy, available=(64 * GIB, "the host has"))


def test_the_switch_turns_the_check_off(toy, monkeypatch):
    monkeypatch.setenv("CVS_TF_MEMORY_CHECK", "off")
    check_batch_memory(_cfg("cvs", 2000), toy, available=(GIB, "the host has"))


def test_a_paired_batch_is_at_most_the_training_items():
    fs = load_dataset("tux12")  # 442 paired training items
    (st,) = estimates(_cfg("cvs", 2000), fs)
    n = fs.count("image", "train")
    assert st.effective_batch(2000) == n and st.total(2000) == st.total(n) == mining_bytes(n, 3) + st.fixed_bytes


@pytest.mark.parametrize("name", ["tux12", "digits10"])
@pytest.mark.parametrize("space", ["cvs", "mcvs", "rvs"])
def test_batch_128_fits_on_every_shipped_set(name, space):
    fs = load_dataset(name)
    cfg = _cfg(space, 128, symmetric=True)
    assert max(s.total(128) for s in estimates(cfg, fs)) < GIB
    check_batch_memory(cfg, fs, available=(2 * GIB, "the host has"))
    check_batch_memory(cfg, fs)  # against this machine's memory


@pytest.mark.parametrize("name", ["xmedia", "xmedianet", "pascal", "nuswide", "cub"])
def test_batch_128_mining_fits_on_every_synthetic_stand_in(tmp_path, name):
    from cvs_tf.data.synthetic import write_synthetic

    fs = load_feature_set(write_synthetic(name, tmp_path / name, scale=0.02))
    for space in ("cvs", "mcvs", "rvs"):
        cfg = _cfg(space, 128, symmetric=True)
        assert max(mining_bytes(s.effective_batch(128), s.live_terms(128)) for s in estimates(cfg, fs)) < GIB
        check_batch_memory(cfg, fs, available=(2 * GIB, "the host has"))


def test_budget_is_the_gpu_where_tensorflow_sees_one(monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    monkeypatch.setattr(memory, "gpu_available", lambda: 80 * GIB)
    monkeypatch.setattr(memory, "host_available", lambda: pytest.fail("host memory used with a GPU"))
    assert memory.available_memory() == (80 * GIB, "GPU:0 has")
    monkeypatch.setattr(memory, "gpu_available", lambda: None)
    assert memory.available_memory() is None  # unknown: no check rather than a wrong one


def test_budget_is_the_host_without_a_gpu(monkeypatch):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    avail = memory.available_memory()
    assert avail is not None and avail[1] == "the host has" and avail[0] > 0
    assert memory.gpu_available() is None


def test_cli_refuses_a_batch_that_cannot_fit_in_one_line_before_creating_the_run(tmp_path, monkeypatch, capsys):
    """A small budget, so that a regression would train a still-affordable batch (~0.8 GB) instead of crashing."""
    from cvs_tf.cli.train import main
    from cvs_tf.utils.cli import run_cli

    ds = make_toy_featureset(tmp_path / "ds")
    cfg = _cfg("cvs")
    cfg.model.dim = 16  # as small.json in tests/cli/test_train.py
    (st,) = estimates(cfg, load_feature_set(ds))
    fit = _largest_by_hand(3, st.fixed_bytes, 256 << 20)   # one pair's 3 terms live above B = 94
    (tmp_path / "small.json").write_text('{"model": {"dim": 16}}')
    monkeypatch.setattr(memory, "available_memory", lambda: (256 << 20, "the host has"))
    out = tmp_path / "run"
    code = run_cli(main, ["--dataset", str(ds), "--config", str(tmp_path / "small.json"), "--batch-size", "300", "--epochs", "1", "--no-jit", "--quiet",
                          "--early-stopping", "none", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: batch size 300 needs about 790 MiB in stage 1 (3 of its 9 triplet terms mined at a time"), err[0]
    assert f"the host has 256 MiB available; the largest batch size that fits is {fit} " in err[0]
    assert not out.exists()
