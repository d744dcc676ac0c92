"""One invocation of one experiment: its spec, seeds, data and output folders; trains runs through the library Trainer and evaluates them.

Early stopping and the choice of the best epoch stay the Trainer's own, on the validation split
of the feature set it trains on (which may be a class view); the test split is read only after
training (the Trainer's final tables, :meth:`Context.evaluate`). Experiments never resume: no checkpoints.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cvs_tf.config import RunConfig
from cvs_tf.data.store import FeatureSet, order_modalities
from cvs_tf.evaluation.protocols import parse_protocol
from cvs_tf.training.trainer import Trainer, TrainResult
from experiments.data import ResolvedData, rel, resolve_data
from experiments.oracle import is_oracle, oracle_table
from experiments.schema import DataSpec, ExperimentSpec, VariantSpec


def code_version() -> str:
    """``git <short commit>`` of this checkout (``+ uncommitted changes`` when tracked files differ); "" without git."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"git {head}" + (" + uncommitted changes" if dirty else "") if head else ""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


@dataclass
class TrainedRun:
    """A finished run: the Trainer's result, the config and feature set it trained on, its wall time."""

    result: TrainResult
    config: RunConfig
    fs: FeatureSet
    wall_s: float

    @property
    def model(self):
        return self.result.model

    @property
    def run_dir(self) -> Path:
        return Path(self.result.run_dir)


@dataclass
class Context:
    """One invocation of one experiment: its spec, seeds, data source, output folders and logger."""

    exp: ExperimentSpec
    quick: bool = False
    seeds: list[int] = field(default_factory=lambda: [0])
    data: str | None = None
    results: Path = Path("results")
    runs: Path = Path("runs/experiments")
    cache: Path = Path("data_cache/synth")
    keep_models: bool = False
    command: str = ""
    batch: str = ""  # the command that ran this experiment among others ("" when it ran alone)
    code: str = ""  # the code version that ran it (code_version())
    log: Callable[[str], None] = print
    _resolved: dict = field(default_factory=dict)

    @property
    def run_root(self) -> Path:
        return Path(self.runs) / (self.exp.name + ("-quick" if self.quick else ""))

    def resolve(self, spec: DataSpec) -> ResolvedData:
        if spec.name not in self._resolved:
            self._resolved[spec.name] = resolve_data(spec, data=self.data, cache=Path(self.cache),
                                                     quick=self.quick, log=self.log)
        return self._resolved[spec.name]

    def run_config(self, variant: VariantSpec, data: ResolvedData, seed: int) -> RunConfig:
        return self.exp.run_config(variant, data.spec, dataset=str(data.path), seed=seed, quick=self.quick)

    def run_dir(self, data: ResolvedData, variant: VariantSpec, seed: int) -> Path:
        """The default run folder of one (dataset, variant, seed)."""
        return self.run_root / data.spec.name / slug(variant.name) / f"seed{seed}"

    def train(self, data: ResolvedData, variant: VariantSpec, seed: int, *, run_dir: Path | None = None,
              featureset: FeatureSet | None = None, init_weights=None, callbacks=None,
              config: RunConfig | None = None) -> TrainedRun:
        """Train one (dataset, variant, seed) into a fresh run directory, optionally on ``featureset``
        (instead of the dataset itself) and from ``init_weights``."""
        cfg = config or self.run_config(variant, data, seed)
        run_dir = Path(run_dir or self.run_dir(data, variant, seed))
        if run_dir.exists():
            shutil.rmtree(run_dir)
        self.log(f"[{self.exp.name}] {data.spec.name} / {variant.name} / seed {seed} -> {rel(run_dir)}")
        fs = featureset if featureset is not None else data.featureset()
        t0 = time.time()
        trainer = Trainer(cfg, run_dir, featureset=fs, init_weights=init_weights, checkpoint=False, verbose=0,
                          callbacks=callbacks, log=lambda m: self.log("    " + m))
        result = trainer.run()
        wall = time.time() - t0
        if not self.keep_models:
            for p in (run_dir / "stages").glob("*/model.keras"):
                p.unlink()
        return TrainedRun(result, cfg, fs, wall)

    def evaluate(self, run: TrainedRun, *, featureset: FeatureSet | None = None,
                 modalities=None) -> dict[str, pd.DataFrame]:
        """Test-split mAP@k tables of a trained model, one per protocol of the experiment."""
        from cvs_tf.evaluation.table import cross_modal_table

        fs = featureset or run.fs
        mods = list(modalities or order_modalities(run.model.modalities))  # thesis order: I, T, A, V, 3D
        own = run.result.tables.get("test")
        out = {}
        for p in self.exp.protocols:
            if is_oracle(p):  # the label-leaking diagnostic: partners drawn per run seed
                out[p] = oracle_table(run.model, fs, k=self.exp.k, modalities=mods, seed=run.config.train.seed)
            elif (own is not None and not parse_protocol(p).uses_attention and featureset is None
                    and self.exp.k == run.config.train.eval_k and list(own.attrs["modalities"]) == mods):
                out[p] = own  # the Trainer's own final table: same numbers
            else:
                out[p] = cross_modal_table(run.model, split="test", k=self.exp.k, protocol=p, dataset=fs,
                                           modalities=mods)
        return out


__all__ = ["Context", "TrainedRun", "code_version", "slug"]
