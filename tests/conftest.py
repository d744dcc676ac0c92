"""Shared pytest fixtures: quiet TF logs, fixed seeds, and small synthetic feature sets."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from cvs_tf.data.store import carve_validation, save_feature_set


def make_toy_featureset(path, *, modalities=None, n_classes=4, n_train=40, n_test=12,
                        paired=False, seed=0, label_kind="single", name="toy"):
    """A tiny separable feature set written with the real store (for tests)."""
    rng = np.random.default_rng(seed)
    modalities = modalities or {"image": 16, "text": 12, "audio": 6}
    centers = rng.normal(size=(n_classes, 8))
    data = {}
    ytr = np.arange(n_train) % n_classes
    yte = np.arange(n_test) % n_classes
    for i, (m, d) in enumerate(modalities.items()):
        proj = rng.normal(size=(8, d))
        cnt_tr = n_train if paired else n_train + 4 * i
        cnt_te = n_test if paired else n_test + n_classes * (i % 2)
        a = ytr if paired else np.arange(cnt_tr) % n_classes
        b = yte if paired else np.arange(cnt_te) % n_classes
        xtr = centers[a] @ proj + 0.3 * rng.normal(size=(cnt_tr, d))
        xte = centers[b] @ proj + 0.3 * rng.normal(size=(cnt_te, d))
        if label_kind == "multi":
            a = np.eye(n_classes, dtype=np.uint8)[a]
            b = np.eye(n_classes, dtype=np.uint8)[b]
        data[m] = {"train": (xtr.astype(np.float32), a), "test": (xte.astype(np.float32), b)}
    data = carve_validation(data, 0.1, seed, paired=paired)
    return save_feature_set(
        path, name, data, [f"class{c}" for c in range(n_classes)],
        label_kind=label_kind, pairing="instance" if paired else "class",
        provenance={"synthetic": True, "converter": "tests.conftest"},
        validation={"fraction": 0.1, "seed": seed},
    )


@pytest.fixture
def toy_set(tmp_path):
    """Path of a small class-aligned 3-modality feature set."""
    return make_toy_featureset(tmp_path / "toy")
