"""Where an experiment's dataset comes from: ``--data DIR``, the library's dataset lookup (``$CVS_TF_DATA``, embedded sets), or a synthetic stand-in.

The stand-in is generated once into the git-ignored cache ``data_cache/synth/<name>-s<scale>-seed0``;
every result on it is labelled "synthetic stand-in — not comparable to the thesis".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cvs_tf.data.registry import DATA_ENV, EMBEDDED_ROOT, dataset_path
from cvs_tf.data.store import FeatureSet, FeatureSetError, load_feature_set
from experiments.errors import ExperimentError
from experiments.schema import DataSpec, ExperimentSpec

SYNTH_LABEL = "synthetic stand-in — not comparable to the thesis"
REAL_LABEL = "real features"
SYNTH_DATA_SEED = 0  # every stand-in is generated with this seed; model seeds vary per run
SPLITS = ("train", "val", "test")


@dataclass
class ResolvedData:
    """Where one dataset of an experiment came from."""

    spec: DataSpec
    path: Path
    source: str  # "--data", "$CVS_TF_DATA", "embedded", "synthetic"
    synthetic: bool
    scale: float | None  # stand-in scale (None for real data)
    fs: FeatureSet | None = field(default=None, repr=False)
    baselines: dict | None = None  # classical baselines on its test split, when the experiment asks for them

    @property
    def label(self) -> str:
        return SYNTH_LABEL if self.synthetic else REAL_LABEL

    def featureset(self) -> FeatureSet:
        if self.fs is None:
            self.fs = load_feature_set(self.path)
        return self.fs

    def record(self) -> dict:
        fs = self.featureset()
        rec = {"dataset": self.spec.name, "title": self.spec.label, "path": str(self.path), "source": self.source,
               "synthetic": self.synthetic, "data_label": self.label, "manifest_sha256": fs.manifest_sha256,
               "classes": fs.num_classes, "pairing": fs.manifest["pairing"],
               "counts": {m: {s: fs.count(m, s) for s in SPLITS} for m in fs.modalities}}
        if self.synthetic:
            rec.update(scale=self.scale, generator_seed=SYNTH_DATA_SEED)
        if self.baselines:
            rec["baselines"] = self.baselines
        return rec

    def describe(self) -> str:
        return describe_record(self.spec, self.record())


@dataclass
class StoredData:
    """A dataset as recorded in ``results/NAME.json``: enough to re-render a table without the data."""

    spec: DataSpec
    rec: dict

    @property
    def synthetic(self) -> bool:
        return bool(self.rec["synthetic"])

    @property
    def label(self) -> str:
        return self.rec["data_label"]

    def record(self) -> dict:
        return self.rec

    def describe(self) -> str:
        return describe_record(self.spec, self.rec)


def describe_record(spec: DataSpec, rec: dict) -> str:
    """One line on where a dataset came from and its sizes, from its record."""
    counts = rec["counts"]
    mods = [m for m in (spec.modalities or list(counts)) if m in counts]
    sizes = ", ".join(f"{m} {counts[m]['train']}/{counts[m]['val']}/{counts[m]['test']}" for m in mods)
    path = rel(Path(rec["path"]))
    how = (f"synthetic stand-in of {spec.label} at scale {rec['scale']:g} (generator seed {rec['generator_seed']}), "
           f"cached at `{path}`" if rec["synthetic"] else f"real features from `{path}` ({rec['source']})")
    return f"{how}; {rec['classes']} classes, pairing `{rec['pairing']}`; items train/val/test: {sizes}"


def rel(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _manifest_name(path: Path) -> str | None:
    try:
        return json.loads((path / "manifest.json").read_text()).get("name")
    except (OSError, json.JSONDecodeError):
        return None


def synthetic_path(cache: Path, spec: DataSpec, scale: float) -> Path:
    """Cache folder of a stand-in: ``<cache>/<name>-s<scale>-seed0[-multi]``."""
    return Path(cache) / f"{spec.name}-s{scale:g}-seed{SYNTH_DATA_SEED}{'-multi' if spec.multi_label else ''}"


def ensure_synthetic(cache: Path, spec: DataSpec, scale: float, log=print) -> Path:
    """Generate the stand-in into the cache unless it is there (safe when two runs race)."""
    from cvs_tf.data.synthetic import write_synthetic

    out = synthetic_path(cache, spec, scale)
    if (out / "manifest.json").is_file():
        return out
    log(f"generating the synthetic stand-in {spec.name} (scale {scale:g}) into {rel(out)} ...")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_synthetic(spec.name, out, scale=scale, seed=SYNTH_DATA_SEED, multi_label=spec.multi_label)
    except (FeatureSetError, OSError):
        if not (out / "manifest.json").is_file():  # not a lost race: a real error
            raise
    return out


def _from_data_arg(spec: DataSpec, data) -> Path | None:
    """The set of ``spec`` inside ``--data DIR``: DIR itself (a set of that name) or DIR/<name>."""
    root = Path(data)
    if (root / "manifest.json").is_file():
        return root if _manifest_name(root) == spec.name else None
    return root / spec.name if (root / spec.name / "manifest.json").is_file() else None


def _source(path: Path, name: str) -> str:
    """How the library's lookup (:func:`cvs_tf.data.registry.dataset_path`) found the set called ``name``."""
    env = os.environ.get(DATA_ENV)
    if env and path == Path(env) / name:
        return f"${DATA_ENV}"
    return "embedded" if path.parent == EMBEDDED_ROOT else "working directory"


def resolve_data(spec: DataSpec, *, data: str | os.PathLike | None, cache: Path, quick: bool,
                 log=print) -> ResolvedData:
    """Real features if they can be found (``--data``, ``$CVS_TF_DATA``, embedded), else the stand-in.

    ``data`` is either one converted feature set (a folder with ``manifest.json``; it is used for
    the dataset of the same name) or a folder holding converted sets by name (``DIR/xmedia``).
    A set the library finds by name is used next; a ``real_only`` set that it cannot find is an error.
    """
    path = _from_data_arg(spec, data) if data is not None else None
    if path is not None:
        return ResolvedData(spec, path, "--data", False, None)
    try:
        path = dataset_path(spec.name)
    except FeatureSetError as exc:
        if spec.real_only:
            raise ExperimentError(f"{spec.name}: real dataset not found ({exc})") from None
    else:
        return ResolvedData(spec, path, _source(path, spec.name), False, None)
    scale = spec.quick_scale if quick else spec.scale
    return ResolvedData(spec, ensure_synthetic(cache, spec, scale, log), "synthetic", True, scale)


def check_data_arg(data: str | os.PathLike | None, specs: list[DataSpec], experiment: str) -> None:
    """A single-set ``--data DIR`` must hold one of the experiment's datasets (else it is a mistake)."""
    if data is None:
        return
    root = Path(data)
    if not root.is_dir():
        raise ExperimentError(f"--data {data}: no such directory")
    wanted = [s.name for s in specs]
    if (root / "manifest.json").is_file():
        name = _manifest_name(root)
        if name not in wanted:
            raise ExperimentError(f"--data {data}: holds dataset {name!r}, but {experiment} needs {' or '.join(wanted)}")
        return
    stand_ins = [s.name for s in specs if not s.real_only]
    if stand_ins and not any((root / n / "manifest.json").is_file() for n in stand_ins):
        raise ExperimentError(f"--data {data}: neither a converted feature set nor a folder holding "
                              f"{' or '.join(f'{n}/' for n in stand_ins)} (convert with `python -m cvs_tf.data convert`)")


def missing_real_data(exp: ExperimentSpec, data: str | None) -> str | None:
    """Why a real-only dataset of ``exp`` cannot be found (None when all are there)."""
    for d in exp.datasets:
        if d.real_only:
            try:
                resolve_data(d, data=data, cache=Path("."), quick=False, log=lambda m: None)
            except ExperimentError as exc:
                return str(exc)
    return None


__all__ = ["REAL_LABEL", "SYNTH_LABEL", "ResolvedData", "StoredData", "check_data_arg", "describe_record",
           "ensure_synthetic", "missing_real_data", "resolve_data", "synthetic_path"]
