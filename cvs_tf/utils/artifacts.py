"""Self-describing artifact directories (exports, gallery indexes): reading their manifest (writing: cvs_tf.utils.output)."""

from __future__ import annotations

import json
from pathlib import Path


def read_manifest(path: Path, manifest_name: str, *, fmt: str, version: int, required: tuple[str, ...],
                  noun: str, hint: str, error=ValueError) -> tuple[dict, bytes]:
    """``(manifest, its bytes)`` of the artifact directory ``path``, checked for its ``format``,
    ``format_version`` and ``required`` keys; ``error`` (one line naming the file) otherwise.
    ``hint`` says how to make one (shown when the manifest is missing)."""
    path = Path(path)
    mpath = path / manifest_name
    if not path.is_dir():
        raise error(f"{path}: no such {noun} directory")
    if not mpath.is_file():
        raise error(f"{mpath}: missing (not a cvs_tf {noun}; {hint})")
    blob = mpath.read_bytes()
    try:
        manifest = json.loads(blob)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{mpath}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise error(f"{mpath}: format is not {fmt!r}")
    if manifest.get("format_version") != version:
        raise error(f"{mpath}: unsupported format_version {manifest.get('format_version')!r}")
    for key in required:
        if key not in manifest:
            raise error(f"{mpath}: {key}: missing field")
    return manifest, blob
