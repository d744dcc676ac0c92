"""The report's sections, each ``(anchor, heading, inner HTML)``; a section whose inputs are missing says so."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from cvs_tf.report import analysis, figures
from cvs_tf.report import html as h


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def summary(rec, fs, wall_s) -> tuple[str, str, str]:
    from cvs_tf.report.records import summary_rows

    rows = summary_rows(rec, fs)
    rows.append(("training wall time", f"{wall_s:.0f} s (first to last TensorBoard event)" if wall_s else
                 "not recorded (no readable TensorBoard events)"))
    for st in (rec.history or {}).get("stages", []):
        rows.append((f"stage {st.get('stage')} ({st.get('name')})",
                     f"{len(st.get('epochs') or [])} epochs, best epoch {st.get('best_epoch')} by {st.get('monitor')}"))
    notes = h.missing("; ".join(rec.notes)) if rec.notes else ""
    return "summary", "Run summary", h.kv_table(rows) + notes


def _matrix(record: dict) -> tuple[np.ndarray, list[str]]:
    mods = record["modalities"]
    mat = np.array([[np.nan if record["matrix"][q][r] is None else record["matrix"][q][r] for r in mods] for q in mods])
    return mat, mods


def map_section(rec, baselines: dict, baseline_note: str) -> tuple[str, str, str]:
    """The class-level mAP matrix as a heat map, and each pair beside the baselines."""
    out = []
    for split in ("test", "val"):
        record = rec.metrics.get(split)
        if not isinstance(record, dict):
            continue
        mat, mods = _matrix(record)
        out.append(h.protocol(f"{record['metric']}, {record['protocol']} protocol, {split} split "
                              f"({record.get('data_label')}); rows: query modality, columns: retrieved modality; "
                              f"overall mean of {record.get('n_pairs')} ordered pairs {_fmt(record.get('overall_mean'))}"))
        out.append(h.figure(figures.heatmap(mat, mods, mods, record.get("title") or record["metric"],
                                            xlabel="retrieved", ylabel="query"), f"{split} mAP heat map"))
        if split == "test":
            pairs = [(q, r) for q in mods for r in mods if q != r]
            header = ["pair", "this run"] + list(baselines)
            rows = [[f"{q}→{r}", _fmt(record["matrix"][q][r])] + [_fmt(df.at[q, r]) for df in baselines.values()]
                    for q, r in pairs]
            rows.append(["overall mean", _fmt(record.get("overall_mean"))]
                        + [_fmt(df.attrs["overall_mean"]) for df in baselines.values()])
            out.append(h.grid(header, rows))
            out.append(h.protocol(baseline_note) if baselines else h.missing(baseline_note))
    return "map", "Class-level mAP", "\n".join(out) or h.missing("metrics.json holds no mAP table")


def recall_section(rec, baselines: dict) -> tuple[str, str, str]:
    from cvs_tf.evaluation.baselines import recall_means
    from cvs_tf.evaluation.recall_format import recall_rows

    record = (rec.metrics.get("recall") or {}).get("test")
    if not record:
        why = "the set is paired by class only (no exact partners)" if "recall" not in rec.metrics else "no test recall"
        return "recall", "Instance-level recall", h.missing(why)
    header, rows = recall_rows(record)
    text_rows = [[r[0]] + [f"{v:.1f}" if i == len(r) - 1 else f"{v:.3f}" for i, v in enumerate(r[1:], 1)] for r in rows]
    out = [h.protocol(f"R@K and median rank of each query's own partner, independent protocol, test split "
                      f"({rec.data_label})"), h.grid(header, text_rows)]
    base = {name: recall_means(df.attrs["recall"]) for name, df in baselines.items() if "recall" in df.attrs}
    if base:
        out.append(h.protocol("baselines, means over the ordered pairs (test split)"))
        out.append(h.grid(["method", "R@1", "R@5", "R@10", "median rank"],
                          [[n, _fmt(m["1"]), _fmt(m["5"]), _fmt(m["10"]), f"{m['median_rank']:.1f}"]
                           for n, m in base.items()]))
    return "recall", "Instance-level recall", "\n".join(out)


def loss_section(curves: dict) -> tuple[str, str, str]:
    uri = figures.loss_curves(curves) if curves else None
    if uri is None:
        return "losses", "Loss curves", h.missing("no readable TensorBoard events under RUN_DIR/tensorboard")
    return "losses", "Loss curves", (h.protocol("per loss component and stage, per epoch, read from the run's "
                                                "TensorBoard events (train and validation splits)")
                                     + h.figure(uri, "loss curves"))


def per_class_section(space, k, data_label: str) -> tuple[str, str, str]:
    labels, per = analysis.per_class_ap(space, k=k)
    mat = np.array([per[p] for p in labels]).T
    uri = figures.heatmap(mat, space.classes, labels, f"AP@{k} per query class and ordered pair",
                          xlabel="query → retrieved", ylabel="query class")
    return "per-class", "Per-class AP", (h.protocol(f"mean AP@{k} of the queries of each class, independent protocol, "
                                                     f"{space.split} split ({data_label})") + h.figure(uri, "per-class AP"))


def confusion_section(space, data_label: str) -> tuple[str, str, str]:
    conf = analysis.retrieved_class_confusion(space)
    uri = figures.confusion_grid(conf, space.classes, analysis.CONFUSION_TOP)
    return "confusion", "Retrieved-class confusion", (
        h.protocol(f"share of each class among the top {analysis.CONFUSION_TOP} results, per query class, "
                   f"independent protocol, {space.split} split ({data_label})") + h.figure(uri, "confusion"))


def projector_section(run_dir: Path, model, fs) -> tuple[str, str, str]:
    from cvs_tf.evaluation.projector import PNG_FILE, PROJECTOR_DIR, plot_space, projector_contents

    title = "The space before and after training"
    png = run_dir / PROJECTOR_DIR / PNG_FILE
    if png.is_file():
        note = "from RUN_DIR/projector/space.png (python -m cvs_tf.evaluate --projector)"
        return "projector", title, h.protocol(note) + h.figure(figures.png_file_uri(png), "projector")
    from cvs_tf.training.run_dir import read_run_config

    if read_run_config(run_dir)[1].get("extended_from") is not None:
        return "projector", title, h.missing("an extended run has no 'before' space of its own (its initial weights "
                                             "are partly the source run's trained ones)")
    try:
        c = projector_contents(run_dir, model, fs, split="test", png=True)
    except ValueError as exc:
        return "projector", title, h.missing(str(exc))
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_space(Path(tmp) / PNG_FILE, c["tensors"], c["meta"], c["seed"], c["title"])
        uri = figures.png_file_uri(path)
    note = (f"PCA and t-SNE of every test item, before (the run's initial weights) and after training "
            f"({fs.data_label}); colour = class, marker = modality")
    return "projector", title, h.protocol(note) + h.figure(uri, "projector")


def calibration_section(calibration: dict | None, computed: bool) -> tuple[str, str, str]:
    title = "Calibrated scores"
    if not calibration:
        return "calibration", title, h.missing("no validation split to calibrate on")
    c = calibration
    mods = c["modalities"]
    header = ["pair", "base rate"] + [f"t @ P≥{p:g} (check)" for p in c["precisions"]]
    rows = []
    for q in mods:
        for r in mods:
            rec = c["pairs"][q][r]
            cells = []
            for p in c["precisions"]:
                t, chk = rec["thresholds"].get(str(p)), rec["check"].get(str(p)) or {}
                got = "no pair above it" if chk.get("precision") is None else f"{chk['precision']:.3f}"
                cells.append("unreachable" if t is None else f"{t:.3f} ({got})")
            rows.append([f"{q}→{r}", _fmt(rec.get("base_rate"))] + cells)
    where = "computed by the report (the run has no calibration.json)" if computed else "RUN_DIR/calibration.json"
    note = (f"cosine-score thresholds reaching each precision (same class = match), {c['protocol']} protocol, "
            f"{c['split']} split ({c.get('data_label')}): fit on half the queries, in brackets the precision reached "
            f"on the other half (tolerance {c['tolerance']}); {where}")
    return "calibration", title, (h.protocol(note) + h.grid(header, rows)
                                  + h.figure(figures.calibration_grid(c), "score distributions"))


def gallery_section(space, media, data_label: str, seed: int) -> tuple[str, str, str]:
    entries = analysis.gallery(space, seed=seed)
    body = h.gallery(entries, media, analysis.GALLERY_K)
    note = (f"{analysis.GALLERY_QUERIES} seeded test queries per ordered pair and their top {analysis.GALLERY_K} "
            f"(independent protocol, {data_label}); ✓ = same class"
            + (", 'partner' = the query's own partner" if space.paired else "")
            + f"; media: {media.where}" + (f", {media.found} of {media.asked} items found" if media.root else ""))
    return "galleries", "Qualitative galleries", h.protocol(note) + body
