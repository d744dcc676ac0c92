"""Load-time checks of an export's ``export.json``: every field's JSON type, and artifact paths kept inside the export."""

from __future__ import annotations

from pathlib import Path

from cvs_tf.utils.fields import Fields, inside


class ExportError(ValueError):
    """An export is missing, corrupt, or used with inputs it cannot embed."""


def check_export_manifest(mpath: Path, manifest: dict) -> None:
    """Every field :class:`Export` reads has the right JSON type (ExportError naming the file and field);
    artifact paths stay inside the export directory."""
    from cvs_tf.data.manifest import modality_name_error

    f = Fields(mpath, manifest, error=ExportError)
    f.get("dim", "integer", low=1)
    f.get("stage", "integer", low=1)
    f.get("space", "string", "null", required=False)
    f.strings("formats", required=False)
    mods = f.sub("modalities")
    if not mods.obj:
        f.fail("modalities", "empty (an export holds at least one modality)")
    for m in mods.obj:
        if err := modality_name_error(m):
            f.fail("modalities", err)
        entry = mods.sub(m)
        entry.get("input_dim", "integer", low=1)
        entry.get("weights_sha256", "string")
        for key in ("savedmodel", "onnx"):
            rel = entry.get(key, "string", required=key == "savedmodel")
            if rel is not None:
                inside(mpath.parent, rel, where=f"{mpath}: {entry.name(key)}", error=ExportError)
        enc = entry.sub("encoder", required=False, nullable=True)
        if enc is not None and (rel := enc.get("savedmodel", "string", "null", required=False)) is not None:
            inside(mpath.parent, rel, where=f"{mpath}: {enc.name('savedmodel')}", error=ExportError)
    order = f.strings("modality_order", required=False)
    if order is not None and sorted(order) != sorted(mods.obj):
        f.fail("modality_order", f"lists {order}, but modalities has {sorted(mods.obj)}")
    ds = f.sub("dataset", required=False, nullable=True)
    if ds is not None:
        ds.strings("classes", required=False, nullable=True)
        ds.get("label_kind", "string", "null", required=False, choices=("single", "multi"))
    run = f.sub("run", required=False, nullable=True)
    if run is not None:
        run.get("name", "string", "null", required=False)
