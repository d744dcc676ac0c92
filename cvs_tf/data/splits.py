"""The validation carve-out: a seeded, class-stratified share of train held out as ``val`` (never of test)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cvs_tf.data.manifest import FeatureSetError, check_fraction


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of a seeded, class-stratified holdout of ``fraction`` of the rows.

    For multi-hot labels the stratum is the first active class (or -1 for an all-zero row).
    Each class with at least 2 items gives ``round(fraction * n_c)`` items (at least 1 when
    ``fraction > 0``, and never all of them), so every class keeps training items.
    """
    labels = np.asarray(labels)
    strata = labels if labels.ndim == 1 else np.where(labels.any(1), labels.argmax(1), -1)
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(strata), dtype=bool)
    if fraction <= 0:
        return mask
    for c in np.unique(strata):
        idx = np.flatnonzero(strata == c)
        if len(idx) < 2:
            continue
        n = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        mask[rng.choice(idx, size=n, replace=False)] = True
    return mask


def carve_validation(
    splits: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
    fraction: float = 0.1,
    seed: int = 0,
    paired: bool = False,
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Split each modality's ``train`` into ``train`` + ``val``; ``test`` is passed through untouched.

    ``splits`` maps modality -> {"train": (x, y), "test": (x, y)}. With ``paired=True`` the same
    rows are held out from every modality (they must have equal train counts and labels).
    """
    check_fraction(fraction)
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    mods = list(splits)
    shared_mask = None
    if paired:
        n = {len(splits[m]["train"][0]) for m in mods}
        if len(n) != 1:
            raise FeatureSetError(f"instance-paired set has unequal train counts {sorted(n)}")
        shared_mask = stratified_holdout(splits[mods[0]]["train"][1], fraction, seed)
    for i, m in enumerate(mods):
        x, y = splits[m]["train"]
        mask = shared_mask if paired else stratified_holdout(y, fraction, seed + 7919 * i)
        out[m] = {
            "train": (x[~mask], y[~mask]),
            "val": (x[mask], y[mask]),
            "test": splits[m]["test"],
        }
    return out
