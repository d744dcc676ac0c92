"""Up-front estimate of a training step's memory from the configured pair-loss kind's declared cost, and the one-line refusal of batches that cannot fit."""

import pytest

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.registry import load_dataset
from cvs_tf.data.store import load_feature_set
from cvs_tf.losses import PairCost, get_pair_loss, pair_loss_names, register_pair_loss, registry
from cvs_tf.models.objective import Objective
from cvs_tf.plan import RunPlan
from cvs_tf.training import memory
from cvs_tf.training.memory import check_batch_memory, estimates
from tests.helpers import make_toy_featureset

GIB = 1 << 30
#: the semi-hard triplet's cost before the sort-based mining: 3 terms × (10 bytes per cube entry + 64 per square one)
OLD_CUBE = PairCost(cube=30, square=192)


@pytest.fixture
def cube_kind(monkeypatch):
    """A kind declaring the old B³ cost (the default kind's function): what every kind was budgeted as before."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    semihard = get_pair_loss("semihard_triplet")
    register_pair_loss("cube", semihard.fn, terms=semihard.terms, cost=OLD_CUBE)
    return "cube"


def _cfg(space="cvs", batch=128, symmetric=False, kind="semihard_triplet"):
    cfg = RunConfig()
    cfg.model.space, cfg.train.batch_size, cfg.loss.symmetric_inter, cfg.loss.kind = space, batch, symmetric, kind
    return cfg


def _pair_bytes(kind, batch, pairs, dim=512, **options):
    return get_pair_loss(kind).cost_for({**vars(RunConfig().loss), **options}).bytes(batch, pairs, dim)


def test_every_kind_declares_a_b_squared_cost_that_the_estimate_uses(toy):
    for kind in pair_loss_names():
        cost = get_pair_loss(kind).cost_for(vars(RunConfig().loss))
        assert cost.order == "B²" and cost.cube == 0 and cost.square > 0, kind
        (st,) = estimates(_cfg("cvs", 256, kind=kind), toy)
        group = st.live_pairs(256)
        assert st.pair_bytes(256) == cost.bytes(256, group, 512) == _pair_bytes(kind, 256, group), kind
        assert st.total(256) == st.pair_bytes(256) + st.fixed_bytes
    sym = _pair_bytes("semihard_triplet", 100, 1, symmetric_inter=True)
    assert sym == pytest.approx(4 / 3 * _pair_bytes("semihard_triplet", 100, 1), rel=0.01)  # 4 terms instead of 3


def test_pair_cost_by_hand():
    cost = PairCost(square=100, cube=10, row=8)
    assert cost.bytes(20, 3, 16) == 3 * (10 * 20**3 + 100 * 20**2 + 8 * 20 * 16)
    assert (cost.order, PairCost(square=1).order) == ("B³", "B²")


def _pairs(cfg, fs):
    return [list(p) for p in RunPlan.build(cfg, fs).pairs]


def test_pairs_per_stage_follow_the_plans(toy):
    assert [len(p) for p in _pairs(_cfg("cvs"), toy)] == [3]
    assert [len(p) for p in _pairs(_cfg("mcvs"), toy)] == [1, 2]   # [image, text], [audio]
    assert [len(p) for p in _pairs(_cfg("rvs"), toy)] == [1, 1]    # reference image
    assert [s.pairs for s in estimates(_cfg("mcvs", symmetric=True), toy)] == [1, 2]


def test_stage_estimate_by_hand(toy, cube_kind):
    (st,) = estimates(_cfg("cvs", kind=cube_kind), toy)
    banks = sum(4 * d * (toy.count(m, "train") + toy.count(m, "val")) for m, d in (("image", 16), ("text", 12), ("audio", 6)))
    d = 512  # branches (d_m*D + D + D*D + D), 3 aligned blocks of 4 D*D, classifier over 4 classes
    params = sum(dm * d + d + d * d + d for dm in (16, 12, 6)) + 3 * 4 * d * d + (d * 4 + 4)
    assert st.bank_bytes == banks and st.model_bytes == 16 * params
    assert st.live_pairs(300) == 1 and st.live_pairs(250) == 2 and st.live_pairs(200) == 3   # 827, 481, 248 MB a pair
    assert st.total(300) == 30 * 300**3 + 192 * 300**2 + banks + 16 * params
    assert st.total(32) == 3 * (30 * 32**3 + 192 * 32**2) + banks + 16 * params


@pytest.mark.parametrize("space", ["cvs", "mcvs", "rvs"])
@pytest.mark.parametrize("attention,rec,bn", [(True, 0.0, False), (False, 1.0, True), (True, 1.0, True)])
def test_parameter_count_matches_the_built_model(toy, space, attention, rec, bn):
    from cvs_tf.models.factory import build_model

    cfg = _cfg(space)
    cfg.model.dim, cfg.model.attention, cfg.loss.reconstruction_weight, cfg.model.use_batchnorm = 8, attention, rec, bn
    assert memory.model_parameters(cfg, toy, _pairs(cfg, toy)) == build_model(cfg, toy).count_params()


def _largest_by_hand(kind, pairs, fixed, budget, dim=512):
    """Walk B up while the live group of the kind's pairs (grouped as Objective.groups does) fits."""
    objective = Objective({"kind": kind})
    b = 2
    while True:
        group = min(pairs, objective.pairs_per_group(b + 1, dim))
        if objective.pair_bytes(b + 1, group, dim) + fixed > budget:
            return b
        b += 1


def test_batch_2000_is_refused_for_a_cube_kind_with_the_largest_batch_that_fits(toy, cube_kind):
    (st,) = estimates(_cfg("cvs", kind=cube_kind), toy)
    need = 30 * 2000**3 + 192 * 2000**2 + st.bank_bytes + st.model_bytes   # one pair live at a time
    fit = _largest_by_hand(cube_kind, 3, st.bank_bytes + st.model_bytes, 16 * GIB)
    assert 825 < fit < 835  # (16 GiB / 30)^(1/3) ~ 831
    with pytest.raises(ConfigError) as info:
        check_batch_memory(_cfg("cvs", 2000, kind=cube_kind), toy, available=(16 * GIB, "the host has"))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"batch size 2000 needs about {need / GIB:.1f} GiB in stage 1 (cube terms, 2000³ entries: "
                          "1 of its 3 pairs at a time"), msg
    assert "the host has 16.0 GiB available" in msg
    assert f"the largest batch size that fits for cube is {fit} " in msg
    check_batch_memory(_cfg("cvs", fit, kind=cube_kind), toy, available=(16 * GIB, "the host has"))
    with pytest.raises(ConfigError):
        check_batch_memory(_cfg("cvs", fit + 1, kind=cube_kind), toy, available=(16 * GIB, "the host has"))


@pytest.mark.parametrize("kind", ["semihard_triplet", "supcon", "infonce", "max_violation", "dscmr"])
def test_a_b_squared_kind_is_allowed_the_batch_the_cube_estimate_refuses(toy, cube_kind, kind):
    budget = (16 * GIB, "the host has")
    with pytest.raises(ConfigError, match=r"the largest batch size that fits for cube is 8\d\d "):
        check_batch_memory(_cfg("cvs", 2000, kind=cube_kind), toy, available=budget)
    check_batch_memory(_cfg("cvs", 2000, kind=kind), toy, available=budget)
    # its own refusal, further up, names its own largest batch: a square root, not a cube root
    (st,) = estimates(_cfg("cvs", 2000, kind=kind), toy)
    fit = memory.largest_batch([st], 16 * GIB, 1 << 20)
    assert fit > 2000 and st.total(fit) <= 16 * GIB < st.total(fit + 1)
    with pytest.raises(ConfigError, match=rf"^batch size {fit + 1} needs .* \({kind} terms, {fit + 1}² entries: .* "
                                          rf"the largest batch size that fits for {kind} is {fit} "):
        check_batch_memory(_cfg("cvs", fit + 1, kind=kind), toy, available=budget)


def test_the_largest_stage_decides(toy, cube_kind):
    """M-CVS: stage 2 (2 pairs, one live at a time, plus the audio bank) needs more than stage 1 (1 pair)."""
    with pytest.raises(ConfigError, match=r"in stage 2 \(cube terms, 1000³ entries: 1 of its 2 pairs at a time"):
        check_batch_memory(_cfg("mcvs", 1000, kind=cube_kind), toy, available=(8 * GIB, "the host has"))


def test_no_batch_fits_when_the_features_and_model_alone_exceed_the_budget(toy):
    with pytest.raises(ConfigError, match="no batch size fits: features and model alone need"):
        check_batch_memory(_cfg("cvs", 64), toy, available=(1000, "the host has"))
    cfg = _cfg("cvs", 128)
    cfg.model.dim = 200_000  # 12 blocks of D*D alone: ~7 TB
    with pytest.raises(ConfigError, match=r"no batch size fits: .* \(model.dim 200000;"):
        check_batch_memory(cfg, toy, available=(64 * GIB, "the host has"))


def test_the_switch_turns_the_check_off(toy, monkeypatch):
    monkeypatch.setenv("CVS_TF_MEMORY_CHECK", "off")
    check_batch_memory(_cfg("cvs", 20000), toy, available=(GIB, "the host has"))


def test_a_paired_batch_is_at_most_the_training_items():
    fs = load_dataset("tux12")  # 442 paired training items
    (st,) = estimates(_cfg("cvs", 2000), fs)
    n = fs.count("image", "train")
    assert st.effective_batch(2000) == n and st.total(2000) == st.total(n)
    assert st.total(n) == Objective().pair_bytes(n, st.live_pairs(n), 512) + st.fixed_bytes


@pytest.mark.parametrize("name", ["tux12", "digits10"])
@pytest.mark.parametrize("space", ["cvs", "mcvs", "rvs"])
def test_batch_128_fits_on_every_shipped_set(name, space):
    fs = load_dataset(name)
    cfg = _cfg(space, 128, symmetric=True)
    assert max(s.total(128) for s in estimates(cfg, fs)) < GIB
    check_batch_memory(cfg, fs, available=(2 * GIB, "the host has"))
    check_batch_memory(cfg, fs)  # against this machine's memory


class StandInShape:
    """The shape of a full-size synthetic stand-in (``cvs_tf.data synth NAME``, scale 1.0 as the experiments
    use it) without writing it: what the estimate reads (counts, dims, pairing, classes); train counts include
    the validation carve-out, so its bank bytes are the same."""

    def __init__(self, name: str):
        from cvs_tf.data.benchmarks import DATASET_SPECS
        from cvs_tf.data.synthetic import scaled_counts

        spec = DATASET_SPECS[name]
        self.name, self.num_classes, self.paired = name, spec.classes, spec.pairing == "instance"
        self.label_kind = "multi" if spec.multi_label else "single"
        self.modalities = list(spec.modalities)
        self._dims = {m: ms.dim for m, ms in spec.modalities.items()}
        self._counts = {m: {"train": tr, "val": 0, "test": te} for m, (tr, te) in scaled_counts(name, 1.0).items()}

    def dim(self, m):
        return self._dims[m]

    def count(self, m, split):
        return self._counts[m][split]


def _stand_ins():
    from cvs_tf.data.benchmarks import DATASET_SPECS

    return sorted(DATASET_SPECS)


@pytest.mark.parametrize("kind", ["semihard_triplet", "supcon", "infonce", "max_violation", "dscmr"])
def test_batch_1024_passes_on_every_shipped_set_and_stand_in(kind):
    """The issue's 24 GiB machine; every space, the symmetric inter term (the default kind's largest) and the
    instance term on: the pair terms stay under 2 GiB and the whole estimate fits."""
    sets = [load_dataset("tux12"), load_dataset("digits10")] + [StandInShape(n) for n in _stand_ins()]
    assert {"xmedia", "xmedianet", "pascal", "nuswide", "cub"} <= {fs.name for fs in sets}
    for fs in sets:
        for space in ("cvs", "mcvs", "rvs"):
            cfg = _cfg(space, 1024, symmetric=True, kind=kind)
            cfg.loss.instance_weight = 0.5
            stages = estimates(cfg, fs)
            assert max(s.pair_bytes(1024) for s in stages) < 2 * GIB, (fs.name, space)
            check_batch_memory(cfg, fs, available=(24 * GIB, "the host has"))


def test_the_cube_estimate_refused_batch_1024_on_the_xmedianet_stand_in(cube_kind):
    with pytest.raises(ConfigError, match=r"^batch size 1024 needs about 3[0-9]\.\d GiB .*fits for cube is 9\d\d "):
        check_batch_memory(_cfg("cvs", 1024, kind=cube_kind), StandInShape("xmedianet"), available=(24 * GIB, "the host has"))


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


@pytest.mark.trains
def test_cli_refuses_a_batch_that_cannot_fit_in_one_line_before_creating_the_run(tmp_path, monkeypatch, capsys):
    """A small budget, so that a regression would train a still-affordable batch instead of crashing."""
    from cvs_tf.cli.train import main
    from cvs_tf.utils.cli import run_cli

    ds = make_toy_featureset(tmp_path / "ds")
    cfg = _cfg("cvs", 1500)
    cfg.model.dim = 16  # as small.json in tests/cli/test_train.py
    (st,) = estimates(cfg, load_feature_set(ds))
    fit = _largest_by_hand("semihard_triplet", 3, st.fixed_bytes, 256 << 20, dim=16)
    (tmp_path / "small.json").write_text('{"model": {"dim": 16}}')
    monkeypatch.setattr(memory, "available_memory", lambda: (256 << 20, "the host has"))
    out = tmp_path / "run"
    code = run_cli(main, ["--dataset", str(ds), "--config", str(tmp_path / "small.json"), "--batch-size", "1500", "--epochs", "1", "--no-jit", "--quiet",
                          "--early-stopping", "none", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    need = -(-st.total(1500) // (1 << 20))
    assert err[0].startswith(f"error: batch size 1500 needs about {need} MiB in stage 1 (semihard_triplet terms, 1500² entries: "
                             f"{st.live_pairs(1500)} of its 3 pairs at a time"), err[0]
    assert f"the host has 256 MiB available; the largest batch size that fits for semihard_triplet is {fit} " in err[0]
    assert 2 < fit < 1500 and not out.exists()


def test_the_cross_batch_memory_adds_its_rows_as_candidates_and_its_queues_to_the_fixed_part(toy):
    (plain,) = estimates(_cfg("cvs", 64), toy)
    cfg = _cfg("cvs", 64)
    cfg.loss.xbm_size = 192
    (st,) = estimates(cfg, toy)
    assert st.live_pairs(64) == plain.live_pairs(64) == 3
    assert st.pair_bytes(64) == 4 * plain.pair_bytes(64)              # 64 x (64 + 192) entries instead of 64 x 64
    assert st.fixed_bytes - plain.fixed_bytes == 2 * 3 * 2 * 192 * (4 * 512 + 4)  # 3 pairs, 2 sides, 2 copies
    with pytest.raises(ConfigError, match=r"semihard_triplet terms, 64·256 entries"):
        check_batch_memory(cfg, toy, available=(st.total(64) - 1, "the host has"))
