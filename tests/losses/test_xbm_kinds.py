"""The pair-loss kinds with a cross-batch memory: masked rows change nothing, valid rows are candidates, refusals."""

import numpy as np
import pytest

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.losses import PairCost, get_pair_loss, register_pair_loss, registry
from cvs_tf.losses.registry import Memory, memory_kinds
from tests.losses.kind_refs import OPTIONS, random_batch, same

ALL_OPTIONS = {**OPTIONS, "margins": (0.3, 0.4, 0.5), "symmetric_inter": True}
KINDS = ["dscmr", "infonce", "max_violation", "semihard_triplet", "supcon"]


def _memory(seed, n=4, valid=None, multi_hot=False):
    """A memory of n rows per side for the 2 stacked pairs of :func:`random_batch` (d = 3, 3 classes)."""
    yx, ex, yy, ey = random_batch(100 + seed, b=n, multi_hot=multi_hot)
    valid = np.ones((2, n), bool) if valid is None else np.broadcast_to(np.asarray(valid, bool), (2, n))
    return Memory(yx, ex, yy, ey, valid)


def _close(a, b, **kw):
    for term in a:
        np.testing.assert_allclose(np.asarray(a[term]), np.asarray(b[term]), rtol=1e-5, atol=1e-6, err_msg=term, **kw)


def test_every_built_in_kind_takes_a_memory():
    assert set(KINDS) <= set(memory_kinds())


@pytest.mark.parametrize("multi_hot", [False, True], ids=["ids", "multi_hot"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_memory_without_valid_rows_changes_nothing(kind, multi_hot):
    yx, ex, yy, ey = random_batch(0, multi_hot=multi_hot)
    loss = get_pair_loss(kind)
    _close(loss(yx, ex, yy, ey, ALL_OPTIONS),
           loss(yx, ex, yy, ey, ALL_OPTIONS, _memory(0, valid=[False] * 4, multi_hot=multi_hot)))


@pytest.mark.parametrize("kind", KINDS)
def test_only_the_valid_rows_count_and_they_change_the_loss(kind):
    yx, ex, yy, ey = random_batch(1)
    loss = get_pair_loss(kind)
    full = _memory(1, n=5, valid=[True, False, True, False, False])
    kept = Memory(*(np.asarray(f)[:, [0, 2]] for f in full))
    with_rows = loss(yx, ex, yy, ey, ALL_OPTIONS, full)
    _close(with_rows, loss(yx, ex, yy, ey, ALL_OPTIONS, kept))
    without = loss(yx, ex, yy, ey, ALL_OPTIONS)
    assert np.max(np.abs(np.asarray(with_rows["total"]) - np.asarray(without["total"]))) > 1e-4


def _semi_hard(anchors, la, cands, lc, keep, margin):
    """Naive semi-hard triplet mean over (anchor, positive) pairs among the kept candidates (triplet.py's rules)."""
    d = ((anchors[:, None, :] - cands[None, :, :]) ** 2).sum(-1)
    total, pairs = 0.0, 0
    for i in range(len(anchors)):
        pos = [k for k in range(len(cands)) if keep[i, k] and same(la[i], lc[k])]
        neg = [j for j in range(len(cands)) if keep[i, j] and not same(la[i], lc[j])]
        for k in pos:
            farther = [d[i, j] for j in neg if d[i, j] > d[i, k]]
            d_an = min(farther) if farther else (max(d[i, j] for j in neg) if neg else 0.0)
            total, pairs = total + max(d[i, k] - d_an + margin, 0.0), pairs + 1
    return total / pairs if pairs else 0.0


def test_semihard_triplet_mines_the_batch_and_the_memory_like_a_naive_loop():
    yx, ex, yy, ey = random_batch(2, b=6)
    mem = _memory(2, n=5, valid=[True, True, False, True, True])
    out = get_pair_loss("semihard_triplet")(yx, ex, yy, ey, ALL_OPTIONS, mem)
    m1, m2, m3 = ALL_OPTIONS["margins"]
    for p in range(2):
        keep_self = np.concatenate([~np.eye(6, dtype=bool), np.tile(mem.valid[p], (6, 1))], 1)
        keep = np.concatenate([np.ones((6, 6), bool), np.tile(mem.valid[p], (6, 1))], 1)
        cx, lcx = np.concatenate([ex[p], mem.ex[p]]), np.concatenate([yx[p], mem.yx[p]])
        cy, lcy = np.concatenate([ey[p], mem.ey[p]]), np.concatenate([yy[p], mem.yy[p]])
        want = {"intra_{a}": _semi_hard(ex[p], yx[p], cx, lcx, keep_self, m1),
                "intra_{b}": _semi_hard(ey[p], yy[p], cy, lcy, keep_self, m2),
                "inter": 0.5 * (_semi_hard(ex[p], yx[p], cy, lcy, keep, m3) + _semi_hard(ey[p], yy[p], cx, lcx, keep, m3))}
        for term, value in want.items():
            np.testing.assert_allclose(out[term][p], value, rtol=1e-5, atol=1e-6, err_msg=f"{term} pair {p}")


def test_infonce_counts_the_memory_rows_of_other_classes_as_negatives():
    yx, ex, yy, ey = random_batch(3)
    mem = _memory(3, n=4, valid=[True, True, True, False])
    out = get_pair_loss("infonce")(yx, ex, yy, ey, ALL_OPTIONS, mem)
    tau = ALL_OPTIONS["temperature"]
    for p in range(2):
        def way(ea, la, e, le, qe, ql, p=p):
            nll = []
            for i in range(len(ea)):
                logits = [ea[i] @ e[i] / tau] + [ea[i] @ e[j] / tau for j in range(len(e)) if j != i and not same(la[i], le[j])]
                logits += [ea[i] @ qe[j] / tau for j in range(len(qe)) if mem.valid[p][j] and not same(la[i], ql[j])]
                nll.append(-(logits[0] - np.log(np.exp(logits).sum())))
            return np.mean(nll)
        want = way(ex[p], yx[p], ey[p], yy[p], mem.ey[p], mem.yy[p])
        np.testing.assert_allclose(out["{a}_to_{b}"][p], want, rtol=1e-5, atol=1e-6)
        want = way(ey[p], yy[p], ex[p], yx[p], mem.ex[p], mem.yx[p])
        np.testing.assert_allclose(out["{b}_to_{a}"][p], want, rtol=1e-5, atol=1e-6)


def test_the_cost_counts_the_memory_rows_as_candidates():
    cost = PairCost(square=10, cube=1, row=2)
    assert cost.bytes(4, 1, 3, memory=6) == 1 * 4 * 10**2 + 10 * 4 * 10 + 2 * 10 * 3
    assert cost.bytes(4, 2, 3) == 2 * (64 + 160 + 24)


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_a_kind_without_memory_is_refused_by_the_call_and_by_the_config(scratch_registry):
    register_pair_loss("plain", lambda yx, ex, yy, ey, o: {"t": ex[..., 0, 0], "total": ex[..., 0, 0]}, terms="t")
    yx, ex, yy, ey = random_batch(4)
    assert "total" in get_pair_loss("plain")(yx, ex, yy, ey, {})
    with pytest.raises(ValueError, match="takes no cross-batch memory"):
        get_pair_loss("plain")(yx, ex, yy, ey, {}, _memory(4))
    cfg = RunConfig()
    cfg.loss.kind, cfg.loss.xbm_size = "plain", 64
    with pytest.raises(ConfigError, match="loss.xbm_size 64: the pair loss 'plain' takes no cross-batch memory"):
        cfg.validate()
    cfg.loss.xbm_size = 0
    cfg.validate()


@pytest.mark.parametrize("field,value", [("xbm_size", -1), ("xbm_warmup", -5)])
def test_negative_sizes_are_refused(field, value):
    cfg = RunConfig()
    setattr(cfg.loss, field, value)
    with pytest.raises(ConfigError, match=f"loss.{field} must be >= 0"):
        cfg.validate()

