"""Helpers of the extension tests: toy feature sets sharing classes, small finished source runs, directory hashes."""

import hashlib
from pathlib import Path

from cvs_tf.config import RunConfig
from cvs_tf.data.store import load_feature_set
from cvs_tf.training.trainer import Trainer
from tests.helpers import make_toy_featureset, tiny_config

#: the source runs' set (image, text) and the new modalities' sets: each shares one modality with it
DIMS = {"image": 16, "text": 12, "audio": 6}


def toy_sets(root: Path) -> dict:
    """``{"d1": image+text, "d2": text+audio, "d3": image+audio}`` (paths), the same four classes."""
    sets = {"d1": ("image", "text"), "d2": ("text", "audio"), "d3": ("image", "audio")}
    return {name: make_toy_featureset(root / name, modalities={m: DIMS[m] for m in mods}, seed=i, name=f"toy-{name}")
            for i, (name, mods) in enumerate(sets.items())}


def source_config(space: str, dataset, **model) -> RunConfig:
    short = {"dataset": str(dataset), "epochs": 1, "batch_size": 8, "steps_per_epoch": 2, "early_stopping": "none"}
    return tiny_config(space, dim=8, train=short, **model).validate()


def train_source(space: str, dataset, out: Path, **model) -> Path:
    """A finished two-modality run of ``space`` on ``dataset`` (one short epoch per stage)."""
    Trainer(source_config(space, dataset, **model), out, featureset=load_feature_set(dataset), checkpoint=False,
            verbose=0, log=lambda m: None).run()
    return out


def tree_hashes(root: Path) -> dict:
    """sha256 of every file under ``root`` (and the set of its entries, folders included)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(Path(root).rglob("*"))}
