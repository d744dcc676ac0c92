"""The text summary of a feature set (``python -m cvs_tf.data inspect``, and after every write)."""

from __future__ import annotations

from cvs_tf.data.store import SPLITS, FeatureSet

__all__ = ["format_summary"]


def format_summary(fs: FeatureSet) -> str:
    """The ``inspect`` table: header lines, then one row per modality with dim and counts per split."""
    m = fs.manifest
    val = m.get("validation", {})
    fraction = val.get("fraction")
    if fraction == 0:
        val_text = "none (val fraction 0: the whole training split is used for training)"
    elif isinstance(fraction, (int, float)):
        val_text = f"{fraction:.0%} of train, stratified, seed {val.get('seed')}"
    else:
        val_text = str(val.get("note", "provided by the source"))
    empty = [mod for mod in fs.modalities if not fs.count(mod, "val")]
    if fraction != 0 and empty:
        val_text += f" (no val items: {', '.join(empty)})"
    prov = m["provenance"]
    source = prov.get("generator") or prov.get("converter") or "unknown"
    lines = [
        f"dataset     {fs.name}  [{fs.data_label}]",
        f"path        {fs.path}",
        f"classes     {fs.num_classes} ({'multi-hot' if fs.label_kind == 'multi' else 'single-label'})",
        f"pairing     {'instance-paired' if fs.paired else 'class-aligned (paired by class only)'}",
        f"validation  {val_text}",
        f"source      {source}" + (f" (seed {prov['seed']}, scale {prov.get('scale')})" if prov.get("synthetic") and "seed" in prov else ""),
    ]
    if "zero_shot" in m:
        zs = m["zero_shot"]
        lines.append(f"zero-shot   {len(zs['seen'])} seen classes (train/val) / {len(zs['unseen'])} unseen (test)")
    rows = fs.summary_rows()
    header = ["modality", "dim", *SPLITS]
    table = [header] + [[str(r[h]) for h in header] for r in rows]
    table.append(["total", "", *(str(sum(r[s] for r in rows)) for s in SPLITS)])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines.append(f"modalities  {len(rows)}")
    for row in table:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)
