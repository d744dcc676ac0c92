"""Synthetic stand-ins for XMedia, XMediaNet, Pascal, NUS-WIDE and CUB: same modalities, dims, counts and classes, fake features.

The real benchmark features are licensed and cannot be downloaded here, so ``python -m cvs_tf.data
synth NAME`` writes a feature set with each dataset's published modalities, feature dimensions,
split sizes and class counts (:data:`cvs_tf.data.benchmarks.DATASET_SPECS`), filled by a
class-conditional generator:

* every class ``c`` has a centre ``mu_c`` in a shared ``LATENT_DIM``-d latent space;
* an item of class ``c`` has latent ``z = mu_c + SPREAD * e`` (instance-paired sets share one
  ``z`` across the modalities of an item; class-aligned sets draw ``z`` per modality);
* modality ``m`` sees ``z`` through its own random map: a projection onto ``rank`` latent
  directions plus modality-specific latent noise, then a random 2-layer network
  ``act(tanh(v W1 + b1) W2 + b2 + noise * e)`` whose output has the published dimension;
* the modalities differ in how much they see: image and text see most of the latent with
  little noise, video and 3d less, audio (29-d MFCC in XMedia) the least with the most noise,
  so retrieval quality varies across modalities as on the real data.

The numbers are deterministic: the same name, scale and seed give byte-identical arrays
(on the same numpy/BLAS build). Nothing here resembles the real features beyond shapes and
labels; results on these sets are always labelled "synthetic stand-in" (the manifest says
``provenance.synthetic = true``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvs_tf.data.benchmarks import DATASET_SPECS, NAMES, DatasetSpec  # noqa: F401 (re-exported)
from cvs_tf.data.store import FeatureSetError, check_fraction, save_feature_set, stratified_holdout

GENERATOR_VERSION = "1"
LATENT_DIM = 64
HIDDEN = 256
SPREAD = 1.4  # within-class spread of the shared latent (class centres are unit Gaussians)
CHUNK = 4096  # rows generated at once (keeps full-size XMediaNet at its final size in memory)


@dataclass(frozen=True)
class View:
    """How a modality sees the latent: rank of its projection, latent noise, feature noise, activation."""

    rank: int
    view_noise: float
    noise: float
    activation: str = "linear"  # "relu": non-negative CNN-like features


VIEWS = {
    "image": View(rank=32, view_noise=0.8, noise=1.0, activation="relu"),
    "text": View(rank=32, view_noise=0.8, noise=1.0),
    "video": View(rank=16, view_noise=1.0, noise=1.0, activation="relu"),
    "3d": View(rank=16, view_noise=1.0, noise=1.0),
    "audio": View(rank=6, view_noise=1.4, noise=1.5),
}




def _spec(name: str) -> DatasetSpec:
    if name not in DATASET_SPECS:
        raise FeatureSetError(f"{name}: no synthetic stand-in (choose from {', '.join(NAMES)})")
    return DATASET_SPECS[name]


def class_split(spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """Class ids that appear in train and in test (all of them, unless the set is zero-shot)."""
    every = np.arange(spec.classes)
    if spec.seen:
        return every[: spec.seen], every[spec.seen:]
    return every, every


def scaled_counts(name: str, scale: float = 1.0) -> dict[str, tuple[int, int]]:
    """(train, test) per modality at ``scale``: ``round(n * scale)``, but at least 2 train items
    per train class (so validation can take one) and 1 test item per test class."""
    spec = _spec(name)
    if not 0 < scale <= 1:
        raise FeatureSetError(f"{name}: scale: must be in (0, 1], got {scale}")
    tr_cls, te_cls = class_split(spec)
    out = {}
    for m, ms in spec.modalities.items():
        ntr = max(int(np.floor(ms.train * scale + 0.5)), 2 * len(tr_cls))
        nte = max(int(np.floor(ms.test * scale + 0.5)), len(te_cls))
        out[m] = (ntr, nte)
    return out


class _Streams:
    """Independent seeded generators, one per (purpose, modality, split): order of use never matters."""

    PURPOSES = {"world": 0, "map": 1, "labels": 2, "latent": 3, "noise": 4, "holdout": 5}

    def __init__(self, name: str, seed: int):
        self.key = [int(seed), zlib.crc32(name.encode())]

    def rng(self, purpose: str, *ids: int) -> np.random.Generator:
        return np.random.default_rng(self.key + [self.PURPOSES[purpose], *ids])

    def seed(self, purpose: str, *ids: int) -> int:
        return int(self.rng(purpose, *ids).integers(2**31 - 1))


class _ModalityMap:
    """A random non-linear map from the shared latent to one modality's features."""

    def __init__(self, rng: np.random.Generator, view: View, dim: int):
        self.view, self.dim = view, dim
        q, _ = np.linalg.qr(rng.standard_normal((LATENT_DIM, LATENT_DIM)))
        self.proj = q[:, : view.rank]  # orthonormal: the directions this modality sees
        self.w1 = rng.standard_normal((view.rank, HIDDEN)) * (1.5 / np.sqrt(view.rank))
        self.b1 = rng.standard_normal(HIDDEN) * 0.3
        self.w2 = (rng.standard_normal((HIDDEN, dim)) * (2.0 / np.sqrt(HIDDEN))).astype(np.float32)
        self.b2 = (rng.standard_normal(dim) * 0.2).astype(np.float32)

    def __call__(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        v = z @ self.proj + self.view.view_noise * rng.standard_normal((len(z), self.view.rank))
        h = np.tanh(v @ self.w1 + self.b1).astype(np.float32)
        x = h @ self.w2 + self.b2
        x += np.float32(self.view.noise) * rng.standard_normal(x.shape, dtype=np.float32)
        if self.view.activation == "relu":
            np.maximum(x, 0, out=x)
        return x


def _labels(rng: np.random.Generator, classes: np.ndarray, n: int) -> np.ndarray:
    """Balanced class ids (every class n // K or n // K + 1 times), in random order."""
    return rng.permutation(classes[np.arange(n) % len(classes)])


def _multi_hot(rng: np.random.Generator, primary: np.ndarray, n_classes: int) -> np.ndarray:
    """The primary class plus 0, 1 or 2 other classes (probabilities 0.5, 0.3, 0.2)."""
    y = np.zeros((len(primary), n_classes), dtype=np.uint8)
    y[np.arange(len(primary)), primary] = 1
    extra = rng.choice(3, size=len(primary), p=[0.5, 0.3, 0.2])
    for i in np.flatnonzero(extra):
        others = np.delete(np.arange(n_classes), primary[i])
        y[i, rng.choice(others, size=extra[i], replace=False)] = 1
    return y


def _latent(centres: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Item latents: the (mean of the) class centre(s) plus isotropic spread."""
    base = centres[y] if y.ndim == 1 else (y @ centres) / y.sum(1, keepdims=True)
    return base + SPREAD * rng.standard_normal(base.shape)


def _features(fmap: _ModalityMap, centres, y, z, latent_rng, noise_rng) -> np.ndarray:
    """Features of one (modality, split), generated CHUNK rows at a time into one float32 array."""
    x = np.empty((len(y), fmap.dim), dtype=np.float32)
    for start in range(0, len(y), CHUNK):
        stop = min(start + CHUNK, len(y))
        zc = z[start:stop] if z is not None else _latent(centres, y[start:stop], latent_rng)
        x[start:stop] = fmap(zc, noise_rng)
    return x


def make_synthetic(name: str, scale: float = 1.0, seed: int = 0, *, multi_label: bool = False,
                   val_fraction: float = 0.1) -> dict:
    """Generate a stand-in; returns ``save_feature_set`` keyword arguments (``data``, ``classes``, ...)."""
    spec = _spec(name)
    if multi_label and not spec.multi_label:
        raise FeatureSetError(f"{name}: multi_label: only {', '.join(n for n, s in DATASET_SPECS.items() if s.multi_label)} has a multi-label stand-in")
    check_fraction(val_fraction, f"{name}: val_fraction")  # 0: no validation split
    counts = scaled_counts(name, scale)
    streams = _Streams(name, seed)
    centres = streams.rng("world").standard_normal((spec.classes, LATENT_DIM))
    tr_cls, te_cls = class_split(spec)
    paired = spec.pairing == "instance"
    mods = list(spec.modalities)

    def split_labels(mi: int) -> dict[str, np.ndarray]:
        """Labels of train/val/test for modality index mi (0 for every modality when paired)."""
        ntr, nte = counts[mods[mi]]
        rng = streams.rng("labels", mi)
        ytr, yte = _labels(rng, tr_cls, ntr), _labels(rng, te_cls, nte)
        if multi_label:
            ytr, yte = _multi_hot(rng, ytr, spec.classes), _multi_hot(rng, yte, spec.classes)
        mask = stratified_holdout(ytr, val_fraction, streams.seed("holdout", mi))
        return {"train": ytr[~mask], "val": ytr[mask], "test": yte}

    shared = split_labels(0) if paired else None
    shared_z = None
    if paired:
        shared_z = {s: _latent(centres, y, streams.rng("latent", 0, si)) for si, (s, y) in enumerate(shared.items())}
    data = {}
    for mi, m in enumerate(mods):
        fmap = _ModalityMap(streams.rng("map", mi), VIEWS[m], spec.modalities[m].dim)
        labels = shared if paired else split_labels(mi)
        data[m] = {}
        for si, (s, y) in enumerate(labels.items()):
            z = shared_z[s] if paired else None
            x = _features(fmap, centres, y, z, streams.rng("latent", mi + 1, si), streams.rng("noise", mi, si))
            data[m][s] = (x, y)
    width = len(str(spec.classes - 1))
    extra = {}
    if spec.seen:
        extra["zero_shot"] = {"seen": [int(c) for c in tr_cls], "unseen": [int(c) for c in te_cls]}
    return {
        "name": name,
        "data": data,
        "classes": [f"class{c:0{max(2, width)}d}" for c in range(spec.classes)],
        "label_kind": "multi" if multi_label else "single",
        "pairing": spec.pairing,
        "provenance": {
            "synthetic": True,
            "note": f"synthetic stand-in for {spec.title}: class-conditional generator, not real features",
            "generator": __name__,
            "generator_version": GENERATOR_VERSION,
            "seed": int(seed),
            "scale": float(scale),
            "spec_notes": list(spec.notes),
            "source_files": [],
        },
        "validation": {"fraction": val_fraction, "seed": int(seed), "stratified": True, "carved_from": "train"},
        "extra": extra,
    }


def write_synthetic(name: str, out: str | Path, scale: float = 1.0, seed: int = 0, **kwargs) -> Path:
    """Generate a stand-in and write it atomically at ``out`` (which must not exist)."""
    out = Path(out)
    if out.exists():
        raise FeatureSetError(f"{out}: output directory already exists (remove it first)")
    made = make_synthetic(name, scale, seed, **kwargs)
    return save_feature_set(
        out, made["name"], made["data"], made["classes"], label_kind=made["label_kind"],
        pairing=made["pairing"], provenance=made["provenance"], validation=made["validation"],
        extra=made["extra"],
    )
