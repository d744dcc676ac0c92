"""Build a run's HTML report from its records and model, and write it atomically."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from cvs_tf.report import html as h
from cvs_tf.report import sections
from cvs_tf.report.records import ReportError, read_records, tensorboard_scalars

REPORT_FILE = "report.html"
GENERATOR = '<meta name="generator" content="cvs_tf.report">'
DEFAULT_BASELINES = ("posterior", "cca", "label", "chance")


def _quiet(_message: str) -> None:
    pass


def _baselines(fs, mods, names: Sequence[str], k, seed: int, tables: dict | None = None) -> tuple[dict, str]:
    """``({label: test table}, note)``: the baselines on the same test split (``tables``: already computed at
    this cut-off, ``{name: table}``), or ``({}, why not)``."""
    from cvs_tf.evaluation.baselines import BASELINE_LABELS, baseline_tables, strongest_summary

    if not names and not tables:
        return {}, "baselines not computed (--baselines none)"
    try:
        if not tables or any(df.attrs.get("k") != k for df in tables.values()):
            tables, _ = baseline_tables(fs, names or DEFAULT_BASELINES, modalities=mods, k=k, seed=seed)
    except ValueError as exc:
        return {}, f"baselines: {exc}"
    note = ("baselines on the same test split and protocol, hyper-parameters chosen on validation (the posterior "
            "product's by cross-validation on train); " + " ".join(strongest_summary(tables)))
    return {BASELINE_LABELS.get(b, b): df for b, df in tables.items()}, note


def _load(run_dir: Path):
    from cvs_tf.training.run_dir import RunDirError, load_run

    try:
        model, fs, _ = load_run(run_dir)
    except RunDirError as exc:
        raise ReportError(str(exc)) from None
    return model, fs


def _calibration(rec, model, fs, seed: int) -> tuple[dict | None, bool]:
    if rec.calibration is not None:
        return rec.calibration, False
    from cvs_tf.evaluation.calibration import calibrate_model

    return calibrate_model(model, fs, split="val", seed=seed), True


def build_report(run_dir: str | os.PathLike, *, media: str | os.PathLike | None = None,
                 baselines: Sequence[str] = DEFAULT_BASELINES, seed: int = 0,
                 log: Callable[[str], None] = _quiet, tables: dict | None = None) -> str:
    """The self-contained HTML report of a finished run (see docs/report.md); :class:`ReportError` in one line
    for a missing, unfinished or damaged run, or unusable ``media``."""
    from cvs_tf.report.analysis import embed_space
    from cvs_tf.report.media import media_source

    run_dir = Path(run_dir)
    rec = read_records(run_dir)
    model, fs = _load(run_dir)
    try:
        source = media_source(fs, media)
    except (OSError, ValueError) as exc:
        raise ReportError(f"--media: {' '.join(str(exc).split())}") from None
    log("embedding the test split")
    space = embed_space(model, fs, "test")
    if len(space.modalities) < 2:
        raise ReportError(f"{run_dir}: fewer than two of the model's modalities have test items in {fs.name}")
    k = rec.metrics.get("k") or 50
    log("baselines")
    base, note = _baselines(fs, space.modalities, baselines, k, seed, tables)
    curves, wall = tensorboard_scalars(run_dir)
    log("figures")
    parts = [sections.summary(rec, fs, wall), sections.map_section(rec, base, note),
             sections.recall_section(rec, base), sections.loss_section(curves),
             sections.per_class_section(space, k, fs.data_label), sections.confusion_section(space, fs.data_label)]
    log("projector")
    parts.append(sections.projector_section(run_dir, model, fs))
    parts.append(sections.calibration_section(*_calibration(rec, model, fs, seed)))
    log("galleries")
    parts.append(sections.gallery_section(space, source, fs.data_label, seed))
    banner = (f"SYNTHETIC STAND-IN: every number on this page comes from synthetic features ({fs.name}), "
              "not from real data." if fs.synthetic else None)
    title = f"cvs_tf report: {run_dir.resolve().name} ({rec.space} on {fs.name}, {fs.data_label})"
    return h.page(title, banner, parts).replace("<head>", "<head>" + GENERATOR, 1)


def is_report_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a report this command wrote (what ``--overwrite`` may replace)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(400)
    except OSError:
        return False
    return head.startswith("<!DOCTYPE html>") and GENERATOR in head


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, overwrite: bool = False,
                 error: type[Exception] = ReportError, **kw) -> Path:
    """Build the report and write it to ``out`` (default ``RUN_DIR/report.html``, which is always replaced when
    it is a report; another existing file only with ``overwrite``). Checked and locked before it is built."""
    from cvs_tf.utils.output import OutputFiles

    own = out is None
    path = Path(run_dir) / REPORT_FILE if own else Path(out)
    if not Path(run_dir).is_dir():
        raise error(f"{run_dir}: no such run directory")
    with OutputFiles([path], noun="report", recognise=is_report_file, overwrite=overwrite or own,
                     error=error) as files:
        try:
            text = build_report(run_dir, **kw)
        except ReportError as exc:
            raise error(str(exc)) from None
        with files.write(path) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    return path
