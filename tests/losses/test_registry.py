"""The pair-loss registry: registration rules, lookup errors, the default kind and ``loss.kind`` in run configs."""

import json

import numpy as np
import pytest

from cvs_tf.config import ConfigError, LossConfig, RunConfig
from cvs_tf.losses import (
    DEFAULT_PAIR_LOSS,
    get_pair_loss,
    pair_loss_names,
    pair_triplet_loss,
    register_pair_loss,
    registry,
    semihard_triplet,
)


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test are dropped after it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def _zero(yx, ex, yy, ey, options):
    z = ex[:, 0, 0] * 0.0
    return {"t": z, "total": z}


def test_default_kind_is_the_semihard_triplet_with_todays_names():
    assert DEFAULT_PAIR_LOSS == LossConfig().kind == "semihard_triplet"
    kind = get_pair_loss(DEFAULT_PAIR_LOSS)
    assert kind.fn is semihard_triplet and kind.total_name == "triplet"
    assert kind.term_names("image", "text") == {"intra_{a}": "intra_image", "intra_{b}": "intra_text",
                                                "inter": "inter"}
    assert DEFAULT_PAIR_LOSS in pair_loss_names()


def test_register_as_call_and_as_decorator(scratch_registry):
    assert register_pair_loss("zero", _zero, terms="t") is _zero
    assert get_pair_loss("zero").terms == ("t",) and get_pair_loss("zero").total_name == "zero"

    @register_pair_loss("zero2", terms=["t"], total_name="z")
    def zero2(yx, ex, yy, ey, options):
        return _zero(yx, ex, yy, ey, options)

    assert get_pair_loss("zero2").fn is zero2 and get_pair_loss("zero2").total_name == "z"
    assert pair_loss_names() == sorted(pair_loss_names()) and {"zero", "zero2"} <= set(pair_loss_names())


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match=r"^unknown pair loss 'nope' \(known: .*semihard_triplet") as err:
        get_pair_loss("nope")
    assert "\n" not in str(err.value)


def test_a_taken_name_needs_replace(scratch_registry):
    register_pair_loss("zero", _zero, terms="t")
    register_pair_loss("zero", _zero, terms="t")  # the same function again: harmless
    with pytest.raises(ValueError, match="already registered"):
        register_pair_loss("zero", lambda *a: None, terms="t")
    with pytest.raises(ValueError, match="already registered"):
        register_pair_loss(DEFAULT_PAIR_LOSS, _zero, terms="t")
    other = lambda *a: None  # noqa: E731
    register_pair_loss("zero", other, terms="t", replace=True)
    assert get_pair_loss("zero").fn is other


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "a.b"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "loss"}, "name"),
    ({"total_name": "classification"}, "total_name"),
    ({"total_name": "val_x"}, "total_name"),
    ({"terms": ("x.y",)}, "term"),
    ({"terms": ("total",)}, "term"),
    ({"terms": ("t_{c}",)}, r"only \{a\} and \{b\}"),
    ({"terms": ("t_{",)}, r"only \{a\} and \{b\}"),
    ({"terms": ("t", "t")}, "repeated"),
    ({"fn": 3}, "callable"),
])
def test_bad_registrations_are_refused(scratch_registry, kwargs, match):
    args = {"name": "bad", "fn": _zero, "terms": ("t",), **kwargs}
    with pytest.raises(ValueError, match=match):
        register_pair_loss(args.pop("name"), args.pop("fn"), **args)
    assert "bad" not in pair_loss_names()


def test_a_kind_must_return_exactly_its_declared_terms(scratch_registry):
    register_pair_loss("liar", lambda yx, ex, yy, ey, o: {"t": ex[:, 0, 0]}, terms=("t",))
    e = np.zeros((1, 2, 3), "float32")
    with pytest.raises(ValueError, match=r"pair loss 'liar' returned terms \['t'\], declared \['t'\] plus 'total'"):
        get_pair_loss("liar")(np.zeros((1, 2)), e, np.zeros((1, 2)), e, {})


def test_pair_triplet_loss_is_the_default_kind_on_one_pair():
    rng = np.random.default_rng(3)
    lx, ly = rng.integers(0, 3, size=9), rng.integers(0, 3, size=9)
    ex, ey = rng.normal(size=(9, 4)).astype("float32"), rng.normal(size=(9, 4)).astype("float32")
    options = {**vars(LossConfig()), "symmetric_inter": True}
    stacked = semihard_triplet(lx[None], ex[None], ly[None], ey[None], options)
    single = pair_triplet_loss(lx, ex, ly, ey, symmetric=True)
    assert single.keys() == {"intra_x", "intra_y", "inter", "total"}
    for t, v in stacked.items():
        np.testing.assert_allclose(single[t.format(a="x", b="y")], v[0], rtol=1e-6)


def test_config_kind_defaults_and_is_checked_against_the_registry(tmp_path, scratch_registry):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"loss": {"gammas": [0.25, 0.25, 0.5]}}))  # written before loss.kind existed
    assert RunConfig.from_file(old).validate().loss.kind == DEFAULT_PAIR_LOSS
    cfg = RunConfig.from_dict({"loss": {"kind": "nope"}})
    with pytest.raises(ConfigError, match=r"^loss.kind must be a registered pair loss \(.*semihard_triplet.*\), "
                                          r"got 'nope'$"):
        cfg.validate()
    register_pair_loss("zero", _zero, terms="t")
    assert RunConfig.from_dict({"loss": {"kind": "zero"}}).validate().loss.kind == "zero"
    with pytest.raises(ConfigError, match="loss.kind: expected a string"):
        RunConfig.from_dict({"loss": {"kind": 3}})


def test_loss_defaults_live_in_loss_config_only():
    """The model's and pair_triplet_loss's defaults are LossConfig's (changing one place changes them all)."""
    import inspect

    from cvs_tf.models.objective import loss_options

    assert loss_options() == vars(LossConfig())
    assert loss_options({"beta": 2.0})["beta"] == 2.0
    sig = inspect.signature(pair_triplet_loss).parameters
    d = LossConfig()
    assert (sig["gammas"].default, sig["margins"].default, sig["symmetric"].default) == (
        d.gammas, d.margins, d.symmetric_inter)


def test_a_module_in_kinds_is_a_builtin_kind(tmp_path, monkeypatch, scratch_registry):
    """One file in cvs_tf/losses/kinds/ registers a kind (here the package path points at a scratch folder)."""
    import sys

    from cvs_tf.losses import kinds

    (tmp_path / "file_kind.py").write_text(
        "from cvs_tf.losses import register_pair_loss\n"
        "register_pair_loss('file_kind', lambda yx, ex, yy, ey, o: {'t': ex[:, 0, 0], 'total': ex[:, 0, 0]}, terms='t')\n")
    (tmp_path / "_helpers.py").write_text("raise AssertionError('a _module is not a kind')\n")
    monkeypatch.setattr(kinds, "__path__", [str(tmp_path)])
    monkeypatch.delitem(sys.modules, "cvs_tf.losses.kinds.file_kind", raising=False)
    kinds.import_builtin_kinds()
    assert "file_kind" in pair_loss_names() and get_pair_loss("file_kind").terms == ("t",)
    sys.modules.pop("cvs_tf.losses.kinds.file_kind", None)
