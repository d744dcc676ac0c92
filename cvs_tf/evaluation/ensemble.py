"""Seed ensembles: several trained runs of one space scored as one, by the mean of their cosines.

Member ``j`` embeds item ``x`` of modality ``m`` as the unit vector ``e_j(x)``. The ensemble embeds
it as

.. math:: E(x) = \\frac{1}{\\sqrt{n}} [e_1(x); \\dots; e_n(x)],

a unit vector whose dot product with another item's is :math:`\\frac{1}{n}\\sum_j e_j(x)^\\top e_j(y)`:
the mean of the members' cosines. Any ranking metric of :mod:`cvs_tf.evaluation.table` then applies
to the ``{modality: (embeddings, labels)}`` mapping. Only the ``independent`` protocol applies
(each item embedded alone); labels are carried for scoring only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ensemble_embeddings(models: Sequence, fs, split: str, modalities: Sequence[str]) -> dict:
    """``{modality: (E, labels)}`` of ``split`` for the ensemble of ``models`` (see the module docstring)."""
    if not models:
        raise ValueError("an ensemble needs at least one model")
    out = {}
    for m in modalities:
        x = fs.x(m, split)
        parts = []
        for model in models:
            e = np.asarray(model.embed(m, x), dtype=np.float32)
            norm = np.linalg.norm(e, axis=1, keepdims=True)
            parts.append(e / np.maximum(norm, 1e-12))
        out[m] = (np.concatenate(parts, axis=1) / np.float32(np.sqrt(len(models))), fs.y(m, split))
    return out


def check_members(first: dict, others: Sequence[tuple[str, dict]], modalities: Sequence[str],
                  member_modalities: Sequence[Sequence[str]]) -> None:
    """Raise ValueError unless every member run trained on the first run's data (manifest sha256)
    and embeds all of ``modalities``."""
    sha = first["resolved"]["dataset_manifest_sha256"]
    for (where, cfg), mods in zip(others, member_modalities):
        if cfg["resolved"]["dataset_manifest_sha256"] != sha:
            raise ValueError(f"{where}: trained on other data (manifest sha256 "
                             f"{cfg['resolved']['dataset_manifest_sha256'][:12]}… vs {sha[:12]}…)")
        missing = [m for m in modalities if m not in mods]
        if missing:
            raise ValueError(f"{where}: has no branch for {', '.join(missing)}")


__all__ = ["check_members", "ensemble_embeddings"]
