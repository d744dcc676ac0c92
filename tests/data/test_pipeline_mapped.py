"""Mapped feature banks: a float32 .npy becomes a tensor over its file pages (no copy), released from the process after each batch."""

import numpy as np
import pytest

from cvs_tf.data.pipeline import FeatureBank, feature_dataset, mapped_tensor
from cvs_tf.data.store import load_feature_set, save_feature_set
from tests.data.proc_memory import mapped_kib, status_kib

MIB = 2**20


@pytest.fixture(scope="module")
def big_set(tmp_path_factory):
    """Image rows of 96 MiB (float32) and small float16 text rows, class-aligned, 4 classes."""
    rng = np.random.default_rng(0)
    n = 12288
    y = np.arange(n) % 4
    small = np.arange(8) % 4
    data = {"image": {"train": (rng.standard_normal((n, 2048), dtype=np.float32), y),
                      "val": (np.zeros((8, 2048), np.float32), small), "test": (np.zeros((8, 2048), np.float32), small)},
            "text": {"train": (rng.standard_normal((64, 8)).astype(np.float16), np.arange(64) % 4),
                     "val": (np.zeros((8, 8), np.float16), small), "test": (np.zeros((8, 8), np.float16), small)}}
    path = save_feature_set(tmp_path_factory.mktemp("big") / "s", "big", data, [f"c{i}" for i in range(4)],
                            label_kind="single", pairing="class", provenance={"synthetic": True})
    return load_feature_set(path, verify=False)


def test_a_float32_file_is_mapped_a_float16_one_copied(big_set):
    bank = FeatureBank(big_set, ["image", "text"])
    assert bank.mapped and len(bank._mappings) == 1                # image only
    assert mapped_tensor(big_set.x("text", "train")) is None        # float16: converted into one copy
    assert mapped_tensor(np.ones((4, 4), np.float32)) is None       # not a file
    x, y = next(iter(feature_dataset(bank, 16, seed=1)))
    idx = np.asarray(big_set.x("image", "train"))
    rows = [int(np.flatnonzero((idx == r).all(1))[0]) for r in x["image"].numpy()[:3]]
    np.testing.assert_array_equal(np.asarray(big_set.y("image", "train"))[rows], y["image"].numpy()[:3])
    assert FeatureBank(big_set, ["image"], mapped=False).mapped is False


def test_a_mapped_bank_adds_no_copy_and_its_pages_leave_after_each_batch(big_set):
    anon = status_kib("RssAnon")
    bank = FeatureBank(big_set, ["image", "text"])
    image_file = (big_set.path / "image.train.x.npy").resolve()
    assert (status_kib("RssAnon") - anon) * 1024 < 8 * MIB               # a copy would add 96 MiB
    it = iter(feature_dataset(bank, 64, seed=0))
    for _ in range(60):                                             # 3840 random rows: most pages touched
        next(it)
    assert mapped_kib(image_file) * 1024 < 32 * MIB                # released behind every batch (96 MiB if kept)
    total = float(bank.features["image"][:5].numpy().sum(dtype=np.float64))
    assert total == pytest.approx(float(np.asarray(big_set.x("image", "train"))[:5].sum(dtype=np.float64)))
    np.asarray(big_set.x("image", "train")).sum(dtype=np.float64)   # touching every page is seen by the probe
    assert mapped_kib(image_file) * 1024 > 64 * MIB
