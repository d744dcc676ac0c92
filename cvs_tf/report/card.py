"""``MODEL_CARD.md``: what a trained space is, what it was trained on and how good it is, from the run's own records.

Written into every finished run directory (by the trainer, with ``calibration.json``) and into every
export (beside ``export.json``). Every number comes from ``metrics.json`` and ``calibration.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MODEL_CARD = "MODEL_CARD.md"
CARD_PRECISION = 0.9


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _extractors(fs) -> dict:
    return ((fs.manifest.get("provenance") or {}).get("extractors") or {}) if fs is not None else {}


def _modalities(mods: list[str], fs, dims: dict) -> list[str]:
    lines = ["| modality | input dim | feature extractor (as recorded by the set's builder) |", "|---|---|---|"]
    ex = _extractors(fs)
    for m in mods:
        name = (ex.get(m) or {}).get("name") if isinstance(ex.get(m), dict) else None
        dim = dims.get(m) or (fs.dim(m) if fs is not None and m in fs.modalities else "?")
        lines.append(f"| {m} | {dim} | {name or 'not recorded'} |")
    return lines


def _data(resolved: dict, fs, data_label: str) -> list[str]:
    lines = [f"- set: {resolved.get('dataset_name')} ({data_label}); manifest sha256 "
             f"`{resolved.get('dataset_manifest_sha256')}`"]
    if fs is not None:
        counts = "; ".join(f"{m} {fs.count(m, 'train')}/{fs.count(m, 'val')}/{fs.count(m, 'test')}" for m in fs.modalities)
        lines += [f"- {fs.num_classes} classes: {', '.join(fs.classes)}",
                  f"- paired by {'instance (row i of every modality is one item)' if fs.paired else 'class only'}; "
                  f"labels {fs.label_kind}",
                  f"- items train/val/test: {counts}"]
        src = (fs.manifest.get("provenance") or {}).get("source")
        if src:
            lines.append(f"- source: {src}")
    return lines


def _chance(fs, mods: list[str], k) -> float | None:
    from cvs_tf.evaluation.metrics import chance_map_at_k

    if fs is None or any(fs.count(m, "test") == 0 for m in mods):
        return None
    return float(np.mean([chance_map_at_k(fs.y(q, "test"), fs.y(r, "test"), k) for q in mods for r in mods if q != r]))


def _metrics(metrics: dict, fs, mods: list[str]) -> list[str]:
    lines = []
    for split in ("test", "val"):
        rec = metrics.get(split)
        if isinstance(rec, dict):
            lines.append(f"- {rec['metric']}, {rec['protocol']} protocol, {split} split: overall mean "
                         f"**{_f(rec.get('overall_mean'))}** over {rec.get('n_pairs')} ordered pairs")
    test = metrics.get("test")
    if isinstance(test, dict):
        lines += ["", f"| query → retrieved | test {test['metric']} |", "|---|---|"]
        lines += [f"| {q}→{r} | {_f(test['matrix'][q][r])} |" for q in test["modalities"] for r in test["modalities"]
                  if q != r]
        chance = _chance(fs, test["modalities"], metrics.get("k") or 50)
        if chance is not None:
            lines.append(f"\n- baseline: chance (random ranking, exact expectation) {test['metric']} {_f(chance)} on the "
                         "same test split; the learned baselines (posterior product, CCA, label space) are in "
                         "`python -m cvs_tf.report RUN_DIR` and `make baselines`")
    recall = (metrics.get("recall") or {}).get("test")
    if recall:
        from cvs_tf.evaluation.baselines import recall_means

        r = recall_means(recall)
        lines.append(f"- instance level, test split, independent protocol, means over the ordered pairs: R@1 {_f(r['1'])}, "
                     f"R@5 {_f(r['5'])}, R@10 {_f(r['10'])}, median rank {r['median_rank']:.1f}")
    return lines


def _calibration(cal: dict | None) -> list[str]:
    if not cal:
        return ["No calibration (no validation split): a score's precision is unknown."]
    lines = [f"Cosine-score thresholds for precision ≥ {CARD_PRECISION:g} (same class), {cal['split']} split, "
             f"{cal['protocol']} protocol; in brackets the precision reached on the held-apart half of the queries:", ""]
    for q in cal["modalities"]:
        for r in cal["modalities"]:
            if q != r:
                rec = cal["pairs"][q][r]
                t = rec["thresholds"].get(str(CARD_PRECISION))
                chk = (rec["check"].get(str(CARD_PRECISION)) or {}).get("precision")
                got = "no held-apart pair above it" if chk is None else f"{chk:.3f}"
                lines.append(f"- {q}→{r}: " + ("unreachable on validation" if t is None else f"{t:.3f} ({got})"))
    lines += ["", "`python -m cvs_tf.search ... --min-precision P` returns only results above the matching threshold."]
    return lines


def _limitations(metrics: dict, data_label: str, paired: bool | None) -> list[str]:
    lines = []
    if "synthetic" in data_label:
        lines.append("- **Synthetic stand-in data**: these numbers say nothing about real data.")
    test = metrics.get("test")
    if isinstance(test, dict) and test.get("row_means"):
        rows = {m: v for m, v in test["row_means"].items() if v is not None}
        if rows:
            weak = min(rows, key=rows.get)
            lines.append(f"- Weakest modality as a query: {weak} (test row mean {_f(rows[weak])}); expect poorer "
                         "results from and to it.")
    if paired:
        lines.append("- Trained and measured at class level (mAP) and at instance level (R@K of exact partners).")
    else:
        lines.append("- Class level only: the set pairs items by class, so nothing shows whether the space finds an "
                     "item's exact counterpart.")
    lines.append("- Inputs must be produced by the same feature extractors, with the same dims, as the training set.")
    return lines


def model_card(run_dir: str | Path, *, fs=None, export: dict | None = None) -> str:
    """The Markdown model card of a finished run (``export``: the export's manifest, for an export's card)."""
    from cvs_tf.evaluation.calibration import CALIBRATION_FILE, read_calibration

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    resolved, model = config.get("resolved") or {}, config.get("model") or {}
    data_label = metrics.get("data_label") or resolved.get("data_label") or ""
    stages = resolved.get("stages") or []
    mods = list(dict.fromkeys(m for s in stages for m in s))
    dims = {m: e.get("input_dim") for m, e in (export or {}).get("modalities", {}).items()}
    cal = read_calibration(run_dir / CALIBRATION_FILE) if export is None else export.get("calibration")
    title = f"# Model card: {run_dir.resolve().name}" + (" (export)" if export else "")
    out = [title, ""]
    if "synthetic" in data_label:
        out += ["> **Synthetic stand-in**: trained and measured on synthetic features, not real data.", ""]
    out += ["## What it is", "",
            f"A {model.get('space')} cross-modal embedding space (cvs_tf {resolved.get('package_version')}): every "
            f"modality's features map to one {model.get('dim')}-dimensional unit vector, and items of the same class "
            "lie close whatever their modality (stages: " + " → ".join("+".join(s) for s in stages) + ").",
            "Intended use: cross-modal retrieval by cosine similarity (a query of one modality ranks the items of "
            "another) on data like the training set's classes and feature extractors. Not for classes or extractors "
            "it was not trained on.", "", "## Modalities and feature extractors", ""]
    out += _modalities(mods, fs, dims)
    out += ["", "## Training data", ""] + _data(resolved, fs, data_label)
    train = config.get("train") or {}
    out += [f"- recipe: loss {config.get('loss', {}).get('kind')}, epochs ≤ {train.get('epochs')}, seed "
            f"{resolved.get('seed', train.get('seed'))}, model selection on the {train.get('select', 'val')} split"]
    out += ["", "## Metrics", ""] + _metrics(metrics, fs, mods)
    out += ["", "## Calibrated scores", ""] + _calibration(cal)
    out += ["", "## Limitations", ""] + _limitations(metrics, data_label, None if fs is None else fs.paired)
    return "\n".join(out) + "\n"


def write_model_card(run_dir: str | Path, path: str | Path | None = None, *, fs=None,
                     export: dict | None = None) -> Path:
    """Write the model card atomically (default ``RUN_DIR/MODEL_CARD.md``)."""
    from cvs_tf.utils.atomic import atomic_file

    path = Path(path) if path is not None else Path(run_dir) / MODEL_CARD
    text = model_card(run_dir, fs=fs, export=export)
    with atomic_file(path) as f:
        f.write(text)
    return path


def finish_run(run_dir: str | Path, model, fs, *, seed: int = 0) -> None:
    """What the trainer writes last into a finished run: ``calibration.json`` (validation split) and ``MODEL_CARD.md``."""
    from cvs_tf.evaluation.calibration import CALIBRATION_FILE, calibrate_model, write_calibration

    cal = calibrate_model(model, fs, split="val", seed=seed)
    if cal is not None:
        write_calibration(Path(run_dir) / CALIBRATION_FILE, cal)
    write_model_card(run_dir, fs=fs)
