"""The experiment runner: resolves data (real or synthetic stand-in), trains variants over seeds with Trainer, evaluates and writes tables.

Every experiment kind uses the same pieces, nothing is copied per table:

* :func:`resolve_data` -- where a dataset comes from: ``--data DIR`` (a converted set, or a
  folder of them by name), ``$CVS_TF_DATA/<name>``, an embedded real set (Tux-12, Digits-10), or
  else the synthetic stand-in, generated once into the git-ignored cache
  ``data_cache/synth/<name>-s<scale>-seed0``;
* :class:`ExperimentTrainer` -- the library ``Trainer`` (early stopping and model selection on
  the validation split only), optionally on an in-memory feature set (a class view) and from
  given initial weights, without the resume checkpoints an experiment does not need;
* :class:`Context` -- one invocation: seeds, --quick, output folders, ``train`` and ``evaluate``;
* :func:`aggregate` / :func:`grid_markdown` / :func:`write_outputs` -- mean ± std over seeds
  beside the thesis value and the difference, as ``results/NAME.{md,csv,json}``.

The ``cross_modal`` kind (Tables 5–11, Figure 25 and the real-data tables) lives here; the
class-incremental kinds in :mod:`experiments.incremental`, the figure kinds in
:mod:`experiments.figures`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cvs_tf.data.registry import DATA_ENV, dataset_path
from cvs_tf.data.store import FeatureSet, FeatureSetError, load_feature_set, order_modalities
from cvs_tf.training.trainer import Checkpoint, Trainer, write_json
from experiments.spec import DataSpec, ExperimentSpec, SpecError, VariantSpec

SYNTH_LABEL = "synthetic stand-in — not comparable to the thesis"
REAL_LABEL = "real features"
SYNTH_DATA_SEED = 0  # every stand-in is generated with this seed; model seeds vary per run
DASH = "—"
MEAN = "mean"


class ExperimentError(ValueError):
    """An experiment cannot run (missing data, inconsistent config); the message says what to do."""


# --------------------------------------------------------------------------- data


@dataclass
class ResolvedData:
    """Where one dataset of an experiment came from."""

    spec: DataSpec
    path: Path
    source: str  # "--data", "$CVS_TF_DATA", "embedded", "synthetic"
    synthetic: bool
    scale: float | None  # stand-in scale (None for real data)
    fs: FeatureSet | None = field(default=None, repr=False)

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
               "counts": {m: {s: fs.count(m, s) for s in ("train", "val", "test")} for m in fs.modalities}}
        if self.synthetic:
            rec.update(scale=self.scale, generator_seed=SYNTH_DATA_SEED)
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
    path = _rel(Path(rec["path"]))
    how = (f"synthetic stand-in of {spec.label} at scale {rec['scale']:g} (generator seed {rec['generator_seed']}), "
           f"cached at `{path}`" if rec["synthetic"] else f"real features from `{path}` ({rec['source']})")
    return f"{how}; {rec['classes']} classes, pairing `{rec['pairing']}`; items train/val/test: {sizes}"


def _rel(path: Path) -> str:
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
    log(f"generating the synthetic stand-in {spec.name} (scale {scale:g}) into {_rel(out)} ...")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_synthetic(spec.name, out, scale=scale, seed=SYNTH_DATA_SEED, multi_label=spec.multi_label)
    except (FeatureSetError, OSError):
        if not (out / "manifest.json").is_file():  # not a lost race: a real error
            raise
    return out


def resolve_data(spec: DataSpec, *, data: str | os.PathLike | None, cache: Path, quick: bool,
                 log=print) -> ResolvedData:
    """Real features if they can be found (``--data``, ``$CVS_TF_DATA``, embedded), else the stand-in.

    ``data`` is either one converted feature set (a folder with ``manifest.json``; it is used for
    the dataset of the same name) or a folder holding converted sets by name (``DIR/xmedia``).
    """
    if data is not None:
        root = Path(data)
        if (root / "manifest.json").is_file():
            if _manifest_name(root) == spec.name:
                return ResolvedData(spec, root, "--data", False, None)
        elif (root / spec.name / "manifest.json").is_file():
            return ResolvedData(spec, root / spec.name, "--data", False, None)
    env = os.environ.get(DATA_ENV)
    if env and (Path(env) / spec.name / "manifest.json").is_file():
        return ResolvedData(spec, Path(env) / spec.name, f"${DATA_ENV}", False, None)
    if spec.real_only:
        try:
            path = dataset_path(spec.name)
        except FeatureSetError as exc:
            raise ExperimentError(f"{spec.name}: real dataset not found ({exc})") from None
        return ResolvedData(spec, path, "embedded", False, None)
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


# --------------------------------------------------------------------------- training


class _NoCheckpoint(Checkpoint):
    """Experiments never resume, so the per-epoch resume state (hundreds of MB per run) is not written."""

    def exists(self) -> bool:
        return False

    def save(self, model, state, best_weights) -> None:
        return None

    def best_weights(self):
        return None


class ExperimentTrainer(Trainer):
    """The library Trainer, optionally on a given feature set (e.g. a class view) and from given weights.

    Early stopping and the choice of the best epoch stay the Trainer's own, on the validation
    split of the feature set it trains on; the test split is never looked at before the end.
    """

    def __init__(self, config, run_dir, *, featureset: FeatureSet | None = None, init_weights=None, **kwargs):
        super().__init__(config, run_dir, **kwargs)
        self.checkpoint = _NoCheckpoint(self.run_dir)
        self._given_fs = featureset
        self._init_weights = init_weights

    def _load_data(self):
        if self._given_fs is None:
            return super()._load_data()
        self.fs = self._given_fs
        self.dataset_dir = self._given_fs.path

    def _build(self):
        super()._build()
        if self._init_weights is not None:
            self.model.set_weights(self._init_weights)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


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

    def run_config(self, variant: VariantSpec, data: ResolvedData, seed: int):
        return self.exp.run_config(variant, data.spec, dataset=str(data.path), seed=seed, quick=self.quick)

    def train(self, data: ResolvedData, variant: VariantSpec, seed: int, *, run_dir: Path | None = None,
              featureset: FeatureSet | None = None, init_weights=None, callbacks=None, config=None):
        """Train one (dataset, variant, seed) into a fresh run directory; returns the finished trainer."""
        cfg = config or self.run_config(variant, data, seed)
        run_dir = Path(run_dir or self.run_root / data.spec.name / slug(variant.name) / f"seed{seed}")
        if run_dir.exists():
            shutil.rmtree(run_dir)
        self.log(f"[{self.exp.name}] {data.spec.name} / {variant.name} / seed {seed} -> {_rel(run_dir)}")
        t0 = time.time()
        trainer = ExperimentTrainer(cfg, run_dir, featureset=featureset, init_weights=init_weights, verbose=0,
                                    callbacks=callbacks, log=lambda m: self.log("    " + m))
        trainer.run()
        trainer.wall_s = time.time() - t0
        if not self.keep_models:
            for p in (run_dir / "stages").glob("*/model.keras"):
                p.unlink()
        return trainer

    def evaluate(self, trainer, *, featureset: FeatureSet | None = None, modalities=None) -> dict[str, pd.DataFrame]:
        """Test-split mAP@k tables of the trained model, one per protocol of the experiment."""
        from cvs_tf.evaluation.table import cross_modal_table

        fs = featureset or trainer.fs
        mods = list(modalities or order_modalities(trainer.model.modalities))  # thesis order: I, T, A, V, 3D
        out = {}
        for p in self.exp.protocols:
            own = trainer.tables["test"]
            if (p == "independent" and featureset is None and self.exp.k == trainer.config.train.eval_k
                    and list(own.attrs["modalities"]) == mods):
                out[p] = trainer.tables["test"]  # the Trainer's own final table: same numbers
            else:
                out[p] = cross_modal_table(trainer.model, split="test", k=self.exp.k, protocol=p,
                                           dataset=fs, modalities=mods)
        return out

    def training_note(self) -> str:
        t = {**self.exp.train, **(self.exp.quick.train if self.quick else {})}
        from cvs_tf.config import TrainConfig

        d = TrainConfig()
        get = lambda k: t.get(k, getattr(d, k))  # noqa: E731
        steps = f"{get('steps_per_epoch')} steps" if get("steps_per_epoch") else "one pass over the data"
        stop = ("no early stopping (every epoch runs; the epoch with the best validation mAP is kept)"
                if get("early_stopping") == "none" else
                f"early stopping on `{get('early_stopping')}` of the validation split (patience {get('patience')}), "
                "best validation epoch kept")
        return (f"training: up to {get('epochs')} epochs per stage ({steps} each), batch {get('batch_size')}, "
                f"Adam lr {get('lr')}, {stop}; the test split is used only for the numbers below")


# --------------------------------------------------------------------------- aggregation


def cell_key(q: str, r: str) -> str:
    """Thesis cell key of a table position: ``image>text``, ``image>mean``, ``mean>text``, ``mean``."""
    return MEAN if q == MEAN and r == MEAN else f"{q}>{r}"


def aggregate(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Element-wise mean and sample standard deviation (n - 1; NaN for one seed) of same-shaped tables."""
    stack = np.stack([f.to_numpy(dtype=float) for f in frames])
    valid = ~np.isnan(stack).all(0)
    mean = np.full(stack.shape[1:], np.nan)
    std = np.full(stack.shape[1:], np.nan)
    mean[valid] = stack[:, valid].mean(0)
    if len(frames) > 1:
        std[valid] = stack[:, valid].std(0, ddof=1)
    like = frames[0]
    return (pd.DataFrame(mean, index=like.index, columns=like.columns),
            pd.DataFrame(std, index=like.index, columns=like.columns))


def fmt(v, digits: int = 3) -> str:
    return DASH if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def fmt_signed(v, digits: int = 3) -> str:
    return DASH if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.{digits}f}".replace("-", "−")


def fmt_mean_std(m, s, digits: int = 3) -> str:
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return DASH
    if s is None or (isinstance(s, float) and math.isnan(s)):  # one seed: no spread to show
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def cell_text(m, s, thesis) -> str:
    """One grid cell: ``ours mean ± std / thesis / ours − thesis`` (thesis parts only when known)."""
    ours = fmt_mean_std(m, s)
    if ours == DASH or thesis is None:
        return ours
    return f"{ours} / {thesis:.3f} / {fmt_signed(m - thesis)}"


CELL_LEGEND = ("each cell: our mean ± sample std over seeds / thesis value / ours − thesis "
               "(the thesis parts appear only where the thesis reports that cell; — on the diagonal)")


def markdown_table(header: list[str], rows: list[list[str]], align_first_left: bool = True) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join((["---"] if align_first_left else ["---:"]) + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def grid_markdown(mean: pd.DataFrame, std: pd.DataFrame, thesis: dict | None) -> str:
    """Query × retrieval grid with row/column means, each cell ours ± std beside the thesis value."""
    thesis = thesis or {}
    header = ["query \\ retrieval"] + [str(c) for c in mean.columns]
    rows = []
    for q in mean.index:
        row = [f"**{q}**" if q == MEAN else str(q)]
        for r in mean.columns:
            row.append(cell_text(mean.at[q, r], std.at[q, r], thesis.get(cell_key(q, r))))
        rows.append(row)
    return markdown_table(header, rows)


def long_rows(mean: pd.DataFrame, std: pd.DataFrame, frames: list[pd.DataFrame], thesis: dict | None,
              **context) -> list[dict]:
    """CSV rows: one per table cell with mean, std, seeds, thesis value and difference."""
    thesis = thesis or {}
    rows = []
    for q in mean.index:
        for r in mean.columns:
            m = mean.at[q, r]
            if np.isnan(m):
                continue
            t = thesis.get(cell_key(q, r))
            rows.append({**context, "query": q, "retrieval": r, "mean": m, "std": std.at[q, r], "n_seeds": len(frames),
                         "thesis": t, "diff": None if t is None else m - t,
                         "per_seed": ";".join(f"{f.at[q, r]:.6f}" for f in frames)})
    return rows


def clean_json(obj):
    """NaN -> None, numpy scalars -> Python, recursively (for strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_outputs(ctx: Context, markdown: str, rows: list[dict], record: dict) -> dict[str, Path]:
    """Write ``results/NAME.md``, ``.csv`` and ``.json`` (atomically) and return their paths."""
    out = Path(ctx.results)
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"{ctx.exp.name}.{ext}" for ext in ("md", "csv", "json")}
    tmp = paths["md"].with_name(f".{ctx.exp.name}.md.tmp")
    tmp.write_text(markdown.rstrip("\n") + "\n")
    os.replace(tmp, paths["md"])
    tmp = paths["csv"].with_name(f".{ctx.exp.name}.csv.tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, paths["csv"])
    write_json(paths["json"], clean_json(record))
    return paths


def figure_path(ctx: Context, suffix: str = "") -> Path:
    Path(ctx.results).mkdir(parents=True, exist_ok=True)
    return Path(ctx.results) / f"{ctx.exp.name}{suffix}.png"


def header_markdown(ctx: Context, datas: list[ResolvedData], extra: list[str] | None = None) -> list[str]:
    """Title (with the data label), then the protocol, seeds, data, training and command lines."""
    exp = ctx.exp
    labels = {d.label for d in datas}
    label = labels.pop() if len(labels) == 1 else "mixed: " + "; ".join(f"{d.spec.label}: {d.label}" for d in datas)
    title = f"## {exp.title} — {label}" if datas else f"## {exp.title}"
    lines = [title, ""]
    if ctx.quick:
        lines += ["**Quick run** (`--quick`: scaled data, few epochs): a smoke test, not a result.", ""]
    if exp.protocols and exp.kind in ("cross_modal", "incremental", "projection"):
        lines.append(f"- protocol: {', '.join(exp.protocols)} (no label and no ground-truth pairing at test time); "
                     f"metric mAP@{exp.k} on the test split")
    if ctx.seeds and exp.kind not in ("blocks", "plan"):
        lines.append(f"- seeds: {', '.join(map(str, ctx.seeds))} ({len(ctx.seeds)} run(s) per variant; "
                     "± is the sample standard deviation over seeds, left out for one seed)")
    for d in datas:
        lines.append(f"- data ({d.spec.label}): {d.describe()}")
    if exp.kind in ("cross_modal", "incremental", "projection", "loss_curves", "timing"):
        lines.append(f"- {ctx.training_note()}")
    if exp.thesis_ref:
        lines.append(f"- thesis reference: {exp.thesis_ref}")
    lines += [f"- {n}" for n in exp.notes + list(extra or [])]
    lines.append(f"- command: `{ctx.command}`")
    return lines + [""]


def base_record(ctx: Context, datas: list[ResolvedData]) -> dict:
    import cvs_tf

    return {
        "format": "cvs_tf.experiment", "format_version": 1,
        "experiment": ctx.exp.name, "title": ctx.exp.title, "kind": ctx.exp.kind, "quick": ctx.quick,
        "seeds": ctx.seeds, "protocols": ctx.exp.protocols, "k": ctx.exp.k, "command": ctx.command,
        "data": [d.record() for d in datas], "package_version": cvs_tf.__version__,
        "spec": ctx.exp.to_dict(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


# --------------------------------------------------------------------------- claims


def check_claims(ctx: Context, overall: dict[str, list[float]], data) -> tuple[list[str], list[dict]]:
    """Decide each thesis claim on our per-seed overall means; Markdown lines and JSON records.

    ``greater`` (a beats b) is decided on the paired per-seed differences: it **holds** when their
    mean is positive by more than two standard errors, **does not hold** when it is negative by
    more than two, and is **not resolved** in between (the seeds disagree more than the gap).
    With one seed there is no noise estimate and the sign decides, which the line says.
    ``close`` holds when |a − b| is within ``tolerance`` of b.
    """
    lines, recs = [], []
    for c in ctx.exp.claims:
        a, b = np.asarray(overall[c.a]), np.asarray(overall[c.b])
        ma, mb = float(a.mean()), float(b.mean())
        diff = a - b
        n = len(diff)
        sd = float(diff.std(ddof=1)) if n > 1 else float("nan")
        sd_txt = f" ± {sd:.3f}" if n > 1 else ""
        if c.kind == "greater":
            d = float(diff.mean())
            if n > 1:
                se = sd / math.sqrt(n)
                verdict = "holds" if d > 2 * se else "does not hold" if d < -2 * se else "not resolved"
                why = f"2 standard errors = {2 * se:.3f}"
            else:
                verdict, why = ("holds" if d > 0 else "does not hold"), "one seed: no noise estimate"
            detail = (f"{c.a} {ma:.3f} vs {c.b} {mb:.3f}: paired difference {fmt_signed(d)}{sd_txt} over {n} seed(s) "
                      f"({why}); {c.a} is higher in {int((diff > 0).sum())}/{n} seeds")
        else:
            gap = abs(ma - mb) / mb if mb else float("inf")
            verdict = "holds" if gap <= c.tolerance else "does not hold"
            detail = (f"{c.a} {ma:.3f} vs {c.b} {mb:.3f}: gap {100 * gap:.1f}% of {c.b} "
                      f"(rule: within {100 * c.tolerance:.0f}%); difference {fmt_signed(ma - mb)}{sd_txt}")
        where = " (on a synthetic stand-in: says nothing about the thesis)" if data.synthetic else ""
        lines.append(f"- {c.text}: **{verdict}** on {data.spec.label}{where} — {detail}.")
        recs.append({"claim": c.text, "kind": c.kind, "a": c.a, "b": c.b, "dataset": data.spec.name,
                     "verdict": verdict, "holds": verdict == "holds", "a_mean": ma, "b_mean": mb,
                     "a_per_seed": a.tolist(), "b_per_seed": b.tolist(),
                     "tolerance": c.tolerance if c.kind == "close" else None})
    return lines, recs


# --------------------------------------------------------------------------- cross-modal tables


def run_cross_modal(ctx: Context) -> dict:
    """Tables 5–11, Figure 25 and the real-data tables: variants × seeds per dataset, mAP grids."""
    exp = ctx.exp
    datas = [ctx.resolve(d) for d in exp.datasets]
    runs = []
    for data in datas:
        for v in exp.variants:
            for seed in ctx.seeds:
                tr = ctx.train(data, v, seed)
                tables = ctx.evaluate(tr)
                best = [{"stage": h["stage"], "best_epoch": h["best_epoch"], "epochs_run": len(h["epochs"])}
                        for h in json.loads((tr.run_dir / "history.json").read_text())["stages"]]
                runs.append({"dataset": data.spec.name, "variant": v.name, "seed": seed, "run_dir": str(tr.run_dir),
                             "wall_s": round(tr.wall_s, 1), "stages": best,
                             "tables": {p: _json_table(df) for p, df in tables.items()}})
    return render_cross_modal(ctx, datas, runs)


def render_cross_modal(ctx: Context, datas: list, runs: list[dict]) -> dict:
    """Markdown, CSV rows and JSON record of a cross-modal experiment from its per-run tables."""
    exp = ctx.exp
    md = header_markdown(ctx, datas, [CELL_LEGEND])
    rows, claims, summaries = [], [], []
    for data in datas:
        thesis = data.spec.thesis
        per = {}  # (variant, protocol) -> [df per seed]
        for r in sorted((r for r in runs if r["dataset"] == data.spec.name), key=lambda r: r["seed"]):
            for p, rec in r["tables"].items():
                per.setdefault((r["variant"], p), []).append(table_from_record(rec))
        md += [f"### {data.spec.label} ({data.label})", ""]
        for p in exp.protocols:
            overall = {}
            srows = []
            for v in exp.variants:
                frames = per[(v.name, p)]
                mean, std = aggregate(frames)
                t = thesis.get(v.name)
                if len(exp.variants) > 1 or len(exp.protocols) > 1:
                    md += [f"#### {v.name} — protocol {p}", ""]
                fallback = sorted({f"{q}→{r}" for f in frames for q, r in f.attrs.get("fallback_cells", [])})
                md += [grid_markdown(mean, std, t), ""]
                n_pairs = len(mean.index) - 1
                if fallback and len(fallback) == n_pairs * (n_pairs - 1):
                    md += ["- every cell scored with the independent protocol: this space has no attention block "
                           "to pass the pairs through", ""]
                elif fallback:
                    md += [f"- scored with the independent protocol (no attention block links the pair): {', '.join(fallback)}", ""]
                rows += long_rows(mean, std, frames, t, experiment=exp.name, dataset=data.spec.name,
                                  data_label=data.label, variant=v.name, protocol=p, k=exp.k)
                overall[v.name] = [float(f.attrs["overall_mean"]) for f in frames]
                tm = (t or {}).get(MEAN)
                srows.append({"variant": v.name, "mean": mean.at[MEAN, MEAN], "std": std.at[MEAN, MEAN],
                              "thesis": tm, "per_seed": overall[v.name]})
            md += [f"#### Overall mean mAP@{exp.k} ({p}) — {data.spec.label}", "",
                   markdown_table(["variant", "ours (mean ± std)", "thesis", "ours − thesis", "per seed"],
                                  [[s["variant"], fmt_mean_std(s["mean"], s["std"]), fmt(s["thesis"]),
                                    fmt_signed(None if s["thesis"] is None else s["mean"] - s["thesis"]),
                                    ", ".join(f"{x:.3f}" for x in s["per_seed"])] for s in srows]), ""]
            if data.spec.context:
                md += ["Published peers on the same data (context only, not run here): "
                       + "; ".join(f"{name}: " + ", ".join(f"{k.replace('>', '→')} {v:.3f}" for k, v in cells.items())
                                   for name, cells in data.spec.context.items()), ""]
            summaries.append({"dataset": data.spec.name, "protocol": p, "variants": srows})
            if exp.claims:
                lines, recs = check_claims(ctx, overall, data)
                md += [f"#### The thesis's claims on these numbers ({p})", ""] + lines + [""]
                claims += [{**r, "protocol": p} for r in recs]
        if exp.options.get("figure") == "bars":
            from experiments.figures import plot_variant_bars

            path = figure_path(ctx, "" if len(datas) == 1 else f"-{data.spec.name}")
            plot_variant_bars(summaries[-len(exp.protocols)]["variants"], path,
                              title=f"{exp.title}\n{data.spec.label} ({data.label})", k=exp.k)
            md += [f"![{exp.name}]({path.name})", ""]
    record = {**base_record(ctx, datas), "runs": runs, "summary": summaries, "claims": claims}
    return {"markdown": "\n".join(md), "rows": rows, "record": record}


def _json_table(df: pd.DataFrame) -> dict:
    from cvs_tf.evaluation.table import table_record

    return table_record(df)


def table_from_record(rec: dict) -> pd.DataFrame:
    """A table back from its JSON record (``table_record``), values and attrs."""
    from cvs_tf.evaluation.table import table_from_matrix

    mods = rec["modalities"]
    values = [[np.nan if rec["matrix"][q][r] is None else rec["matrix"][q][r] for r in mods] for q in mods]
    return table_from_matrix(values, mods, proto=rec["protocol"], split=rec["split"],
                             k=None if rec["k"] == "all" else rec["k"], data_label=rec["data_label"],
                             fallback=rec.get("fallback_cells", []))


# --------------------------------------------------------------------------- dispatch


def kind_runner(kind: str):
    if kind == "cross_modal":
        return run_cross_modal
    if kind in ("plan", "incremental"):
        from experiments import incremental

        return {"plan": incremental.run_plan, "incremental": incremental.run_incremental}[kind]
    from experiments import figures

    return {"blocks": figures.run_blocks, "timing": figures.run_timing, "projection": figures.run_projection,
            "loss_curves": figures.run_loss_curves}[kind]


def run_experiment(ctx: Context) -> dict[str, Path]:
    """Run one experiment end to end and write its outputs; returns the written paths."""
    check_data_arg(ctx.data, ctx.exp.datasets, ctx.exp.name)
    t0 = time.time()
    out = kind_runner(ctx.exp.kind)(ctx)
    return _finish(ctx, out, (time.time() - t0) / 60)


def _finish(ctx: Context, out: dict, minutes: float) -> dict[str, Path]:
    md = out["markdown"].rstrip("\n") + f"\n\n_Wall time of this experiment: {minutes:.1f} min._\n"
    out["record"]["wall_min"] = round(minutes, 2)
    return write_outputs(ctx, md, out["rows"], out["record"])


def rerender(name: str, results: Path) -> dict[str, Path]:
    """Rewrite ``results/NAME.{md,csv,json}`` (and its figure) from the runs recorded in its JSON, without
    training: the spec, seeds, data records and per-run tables are the stored ones."""
    from experiments.spec import spec_from_dict

    path = Path(results) / f"{name}.json"
    try:
        rec = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no results to render (run the experiment first)") from None
    if rec.get("format") != "cvs_tf.experiment" or rec.get("kind") != "cross_modal":
        raise ExperimentError(f"{path}: only cross-modal experiment results can be re-rendered")
    exp = spec_from_dict(rec["spec"], str(path.name))
    by_name = {d["dataset"]: d for d in rec["data"]}
    datas = [StoredData(d, by_name[d.name]) for d in exp.datasets]
    ctx = Context(exp=exp, quick=rec["quick"], seeds=rec["seeds"], results=Path(results), command=rec["command"])
    out = render_cross_modal(ctx, datas, rec["runs"])
    out["record"].update(created=rec["created"], rendered=time.strftime("%Y-%m-%dT%H:%M:%S"))
    return _finish(ctx, out, rec.get("wall_min") or 0.0)


def missing_real_data(exp: ExperimentSpec, data: str | None) -> str | None:
    """Why a real-only dataset of ``exp`` cannot be found (None when all are there)."""
    for d in exp.datasets:
        if d.real_only:
            try:
                resolve_data(d, data=data, cache=Path("."), quick=False, log=lambda m: None)
            except ExperimentError as exc:
                return str(exc)
    return None


__all__ = ["Context", "ExperimentError", "ExperimentTrainer", "ResolvedData", "SpecError", "aggregate",
           "check_data_arg", "grid_markdown", "resolve_data", "run_experiment", "SYNTH_LABEL", "REAL_LABEL"]
