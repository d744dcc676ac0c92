"""What ``python -m cvs_tf.data extract SPEC`` reads: a CSV or JSON manifest of items, or a folder ``DIR/<modality>/<class>/<file>``.

A manifest has the columns (JSON: keys of each item object) ``id``, ``class`` or ``classes``
(``;``-separated, or a JSON list: multi-label), an optional ``split`` (train, val or test), and one
column per modality, named after it, holding a path relative to the manifest's folder or, for
text, the text itself; its items are instance-paired. In a folder layout an item is
``<class>/<file stem>``; the set is instance-paired when every modality holds the same items, and
paired by class otherwise. A ``.txt`` file there is a text. A modality's kind comes from its
values' extensions (image, audio, mesh; text otherwise) unless an encoder is named for it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from cvs_tf.data.encoders import kind_of_path
from cvs_tf.data.manifest import SPLITS, FeatureSetError, modality_name_error, order_modalities

RESERVED = ("id", "class", "classes", "split")
TEXT_SUFFIXES = (".txt",)


@dataclass
class Spec:
    """Items per modality: ``{modality: [(id, value, from_file)]}``, with their classes and split."""

    path: Path
    base: Path
    items: dict[str, list[tuple[str, str, bool]]]
    classes_of: dict[str, list[str]]
    split_of: dict[str, str]
    multi: bool
    pairing: str
    sha256: str
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.items)

    @property
    def classes(self) -> list[str]:
        return sorted({c for cs in self.classes_of.values() for c in cs})


def _fail(path: Path, key: str, msg: str):
    raise FeatureSetError(f"{path}: {key}: {msg}")


def _rows(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        _fail(path, "spec", "not UTF-8 text")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            _fail(path, "spec", f"not valid JSON ({exc})")
        data = data.get("items") if isinstance(data, dict) else data
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            _fail(path, "spec", "a JSON manifest is a list of item objects (or {\"items\": [...]})")
        return data
    if path.suffix.lower() != ".csv":
        _fail(path, "spec", "not a manifest (give a .csv or .json file, or a folder DIR/<modality>/<class>/<file>)")
    reader = csv.DictReader(text.splitlines())
    rows = list(reader)
    if None in (reader.fieldnames or []) or any(None in r for r in rows):
        _fail(path, "spec", "a row has more cells than the header")
    return rows


def _classes(path: Path, row: dict, n: int) -> tuple[list[str], bool]:
    if "classes" in row:
        raw = row["classes"]
        names = raw if isinstance(raw, list) else str(raw or "").split(";")
        names = [str(c).strip() for c in names if str(c).strip()]
        multi = True
    else:
        names, multi = [str(row.get("class") or "").strip()], False
        names = [c for c in names if c]
    if not names:
        _fail(path, "class", f"item {n}: no class")
    return names, multi


def _modality_columns(path: Path, rows: list[dict]) -> list[str]:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    if "id" not in keys:
        _fail(path, "id", "missing column")
    if ("class" in keys) == ("classes" in keys):
        _fail(path, "class", "give one column: class (one per item) or classes (';'-separated)")
    mods = [k for k in keys if k not in RESERVED]
    for m in mods:
        if err := modality_name_error(m):
            _fail(path, "columns", err)
    if len(mods) < 2:
        _fail(path, "columns", f"{len(mods)} modality column(s) {mods}; a cross-modal space needs two or more")
    return order_modalities(mods)


def read_manifest_spec(path: Path) -> Spec:
    rows = _rows(path)
    if not rows:
        _fail(path, "spec", "no items")
    mods = _modality_columns(path, rows)
    items: dict[str, list] = {m: [] for m in mods}
    classes_of, split_of, multi = {}, {}, False
    for n, row in enumerate(rows, 1):
        item = str(row.get("id") or "").strip()
        if not item:
            _fail(path, "id", f"item {n}: empty id")
        if item in classes_of:
            _fail(path, "id", f"id {item!r} appears twice")
        classes_of[item], multi = _classes(path, row, n)
        split = str(row.get("split") or "").strip()
        if "split" in row and split not in SPLITS:
            _fail(path, "split", f"item {item!r}: split {split!r} (use train, val or test)")
        if split:
            split_of[item] = split
        for m in mods:
            items[m].append((item, str(row.get(m) if row.get(m) is not None else ""), False))
    _check_splits(path, split_of, len(rows))
    return Spec(path, path.parent, items, classes_of, split_of, multi, "instance",
                hashlib.sha256(path.read_bytes()).hexdigest())


def _check_splits(path: Path, split_of: dict, n: int) -> None:
    if split_of and (len(split_of) != n or not {"train", "test"} <= set(split_of.values())):
        _fail(path, "split", "give a split for every item, with train and test items (or no split column: "
                             "test and val are then carved)")


def read_folder_spec(root: Path) -> Spec:
    items: dict[str, list] = {}
    classes_of: dict[str, list[str]] = {}
    listing = hashlib.sha256()
    for mdir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if err := modality_name_error(mdir.name):
            _fail(mdir, "modality", err)
        for cdir in sorted(p for p in mdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for f in sorted(p for p in cdir.iterdir() if p.is_file() and not p.name.startswith(".")):
                item = f"{cdir.name}/{f.stem}"
                if any(i == item for i, _, _ in items.get(mdir.name, [])):
                    _fail(f, "file", f"two files for item {item!r} in {mdir.name}; keep one")
                items.setdefault(mdir.name, []).append((item, str(f.relative_to(root)), True))
                classes_of[item] = [cdir.name]
                st = f.stat()
                listing.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if len(items) < 2:
        _fail(root, "layout", f"{len(items)} modality folder(s) holding <class>/<file> files; "
                              "a cross-modal space needs two or more (DIR/<modality>/<class>/<file>)")
    ids = [sorted(i for i, _, _ in v) for v in items.values()]
    pairing = "instance" if all(i == ids[0] for i in ids) else "class"
    items = {m: items[m] for m in order_modalities(items)}
    return Spec(root, root, items, classes_of, {}, False, pairing, listing.hexdigest())


def read_spec(path: str | Path) -> Spec:
    """The items of a manifest (CSV, JSON) or folder layout at ``path``."""
    path = Path(path)
    if not path.exists():
        raise FeatureSetError(f"{path}: no such file or directory")
    return read_folder_spec(path) if path.is_dir() else read_manifest_spec(path)


def modality_kind(spec: Spec, m: str) -> str:
    """image, audio or mesh when every value of ``m`` has such an extension; text otherwise."""
    kinds = set()
    for _, value, from_file in spec.items[m]:
        if from_file and Path(value).suffix.lower() in TEXT_SUFFIXES:
            kinds.add("text")
        elif value.strip():
            kinds.add(kind_of_path(value) or "text")
    if len(kinds) > 1 and kinds != {"text"}:
        found = ", ".join(sorted(kinds))
        raise FeatureSetError(f"{spec.path}: {m}: values of several kinds ({found}); give files of one kind, "
                              f"or --encoder {m}=NAME")
    kind = next(iter(kinds), "text")
    if kind == "text" and any(from_file and Path(v).suffix.lower() not in TEXT_SUFFIXES for _, v, from_file in spec.items[m]):
        bad = next(v for _, v, f in spec.items[m] if f and Path(v).suffix.lower() not in TEXT_SUFFIXES)
        raise FeatureSetError(f"{spec.base / bad}: file: unknown kind of file (image, audio, mesh or .txt text)")
    return kind
