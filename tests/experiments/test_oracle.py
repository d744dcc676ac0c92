"""The oracle-pairs diagnostic (experiments only): same-class partners drawn with the test labels, its LEAKS LABELS title, and that the leak inflates an attention model's numbers."""

import numpy as np
import pytest

from cvs_tf.evaluation.protocols import LEAK_TITLE, parse_protocol
from cvs_tf.evaluation.table import cross_modal_table
from experiments.oracle import ORACLE, oracle_table, partners

N_CLASSES, DIM = 4, 4


class ToySet:
    """The FeatureSet calls oracle_table makes: class signal on dimension c plus noise."""

    label_kind, name, data_label = "single", "toy", "toy data"

    def __init__(self, seed=0, n=40):
        rng = np.random.default_rng(seed)
        self.modalities = ["text", "image"]
        self._y = {m: np.arange(n) % N_CLASSES for m in self.modalities}
        self._x = {m: (0.7 * np.eye(DIM)[y] + 0.6 * rng.normal(size=(n, DIM))).astype(np.float32)
                   for m, y in self._y.items()}

    def x(self, m, split):
        return self._x[m]

    def y(self, m, split):
        return self._y[m]


class ToyModel:
    """The protocol contract with identity branches and one AlignedAttention whose α peaks on the pair's class."""

    modalities = ["image", "text"]

    def __init__(self, attention=True):
        self.layer = None
        if attention:
            from cvs_tf.layers import AlignedAttention

            self.layer = AlignedAttention()
            self.layer.build(((None, DIM), (None, DIM)))
            eye = np.eye(DIM, dtype=np.float32)
            self.layer.set_weights([4 * eye, 4 * eye, 0 * eye, 12 * eye])  # w_a, w_b, w_ab, w_e

    def branch_output(self, m, x):
        return np.asarray(x, np.float32)

    def embed(self, m, x):
        x = np.asarray(x, np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def attention_block(self, a, b):
        if self.layer is None or a == b:
            return None
        return self.layer, a != "image"  # the layer's first input is the image


def _independent(fs):
    return cross_modal_table({m: (fs.x(m, "test"), fs.y(m, "test")) for m in fs.modalities}, k=10,
                             modalities=fs.modalities)


def test_partners_share_the_label_and_are_missing_only_without_one():
    rng = np.random.default_rng(0)
    y_from, y_to = np.array([0, 1, 2, 1, 0]), np.array([1, 0, 1, 0, 3])
    idx = partners(y_from, y_to, rng)
    assert idx[2] == -1 and (y_to[idx[idx >= 0]] == y_from[idx >= 0]).all()


def test_the_leak_inflates_the_attention_model_and_says_so_in_the_title():
    fs, model = ToySet(), ToyModel()
    leak = oracle_table(model, fs, k=10, modalities=fs.modalities, seed=0)
    honest = _independent(fs)
    assert LEAK_TITLE in leak.attrs["title"] and leak.attrs["protocol"] == ORACLE
    assert leak.attrs["fallback_cells"] == [] and leak.attrs["unpaired"] == 0
    assert leak.attrs["overall_mean"] > honest.attrs["overall_mean"] + 0.02  # the answer chose α (0.572 vs 0.525)
    again = oracle_table(model, fs, k=10, modalities=fs.modalities, seed=0)
    assert again.equals(leak)  # partners drawn from the seed
    with pytest.raises(ValueError, match="LEAKS LABELS"):  # still never offered by the library
        parse_protocol(ORACLE)


def test_without_a_block_every_cell_is_the_independent_one():
    fs = ToySet(seed=1)
    leak = oracle_table(ToyModel(attention=False), fs, k=10, modalities=fs.modalities, seed=0)
    assert len(leak.attrs["fallback_cells"]) == 2
    assert np.allclose(leak.to_numpy(dtype=float), _independent(fs).to_numpy(dtype=float), equal_nan=True)


def test_multi_label_data_is_refused():
    fs = ToySet()
    fs.label_kind = "multi"
    with pytest.raises(ValueError, match="single-label"):
        oracle_table(ToyModel(), fs, k=10, modalities=fs.modalities)
