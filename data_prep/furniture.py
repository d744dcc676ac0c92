"""Build the Furniture benchmark (image, text, 3D) from the Sweet Home 3D catalogues in Debian's sweethome3d-furniture.

The package holds five furniture catalogues (``usr/share/sweethome3d/furniture/*.sh3f``, zip
archives). Each piece of furniture has an icon, a name, tags, a catalogue category and an OBJ
mesh, listed in the archive's ``PluginFurnitureCatalog.properties`` (``name#N``, ``tags#N``,
``category#N``, ``icon#N``, ``model#N``, optional ``modelRotation#N``). One piece is one item,
so the set is instance-paired: row ``i`` of every modality in a split is the same piece. The build
writes a JSON manifest of the pieces and extracts it with ``cvs_tf.data.extract``
(:func:`data_prep.build.extract_spec`), naming the registry's encoders. Modalities:

* ``image`` -- EfficientNet-Lite0 feature of the icon (a 128x128 PNG on white; 1280-d), the
  encoder Tux-12 uses (``efficientnet-lite0``);
* ``text``  -- MiniLM embedding of ``"<name>. <tags>"`` (``"<name>"`` when there are no tags;
  384-d; ``minilm``);
* ``3d``    -- :func:`cvs_tf.data.mesh.mesh_descriptors` of the OBJ mesh (``shape-descriptors``;
  105-d, no model), after the catalogue's ``modelRotation`` (which turns the model y-up, as Sweet
  Home 3D shows it): ``extract`` applies no transform, so a rotated mesh is staged as an OFF file
  that reads back bit for bit (:meth:`data_prep.build.BaseExtractors.stage_mesh`).

Classes are the catalogue ``category`` with at least 20 pieces; they are never derived from the
names or tags, which are the text modality (``docs/datasets-real.md``). Split as Tux-12: seeded,
class-stratified 70/30 train/test, then 10 % of train carved as ``val``. Features are float16.

Usage::

    python -m data_prep.furniture --out cvs_tf/datasets/furniture --overwrite   # what `make data-furniture` runs
    python -m data_prep.furniture --out /tmp/f --limit 3                          # 3 pieces per class, quick
    python -m data_prep.furniture --out /tmp/f --compare cvs_tf/datasets/furniture  # rebuild and check
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvs_tf.data import mesh as meshes
from cvs_tf.data.store import sha256_file
from cvs_tf.utils.atomic import atomic_dir
from cvs_tf.utils.cli import CliError, run_cli
from data_prep import tux12
from data_prep import tuxdigits_common as common
from data_prep.build import BaseExtractors, extract_rows, publish, scratch

NAME = "furniture"
VERSION = "1"
PACKAGE = "sweethome3d-furniture"
CATALOG_DIR = "usr/share/sweethome3d/furniture"
PROPERTIES = "PluginFurnitureCatalog.properties"
MIN_PER_CLASS = 20
DEFAULT_OUT = "cvs_tf/datasets/furniture"
LICENSE = ("per catalogue (see provenance.catalogues): public domain (Blend Swap CC-0) or Creative Commons "
           "Attribution 3.0 (Blend Swap CC-BY, Kator Legaz, Reallusion, Scopia); Debian package sweethome3d-furniture")
MODALITIES = ("image", "text", "3d")
_UNICODE = re.compile(r"\\u([0-9a-fA-F]{4})")
_PIECE_KEYS = ("id", "name", "tags", "category", "icon", "model", "modelRotation")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


@dataclass(frozen=True)
class Piece:
    """One piece of furniture; ``id`` is its catalogue id (``Scopia#bed1``), unique across the package."""

    id: str
    catalog: str
    category: str
    name: str
    tags: str
    icon: Path
    model: Path
    rotation: tuple[float, ...] | None  # row-major 3x3, applied to the vertices

    @property
    def text(self) -> str:
        return f"{self.name}. {self.tags}" if self.tags else self.name


def _unescape(s: str) -> str:
    s = _UNICODE.sub(lambda m: chr(int(m.group(1), 16)), s)
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), s)


def parse_properties(text: str) -> dict[str, str]:
    """A Java ``.properties`` text as a dict (comments, ``\\`` line continuations, ``\\uXXXX`` escapes)."""
    out: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        line, pending = pending + line, ""
        m = re.match(r"((?:\\.|[^=:\s\\])*)\s*[=:\s]?\s*(.*)$", line)
        out[_unescape(m.group(1))] = _unescape(m.group(2))
    return out


def _rotation(value: str | None, where: str) -> tuple[float, ...] | None:
    if not value:
        return None
    try:
        r = tuple(float(t) for t in value.split())
    except ValueError:
        r = ()
    if len(r) != 9:
        raise CliError(f"{where}: modelRotation must be 9 numbers, got {value!r}")
    return r


def unpack_catalog(sh3f: Path, cache: Path) -> Path:
    """The archive unpacked under ``<cache>/sh3f/<name>_<sha256[:12]>`` (atomically; reused when present)."""
    dest = cache / "sh3f" / f"{sh3f.stem}_{sha256_file(sh3f)[:12]}"
    if (dest / ".unpacked").is_file():
        return dest
    with atomic_dir(dest, overwrite=True) as tmp:
        try:
            with zipfile.ZipFile(sh3f) as z:
                z.extractall(tmp)
        except (zipfile.BadZipFile, OSError) as exc:
            raise CliError(f"{sh3f}: not a readable catalogue archive ({exc})") from None
        (tmp / ".unpacked").write_text(sh3f.name + "\n")
    return dest


def read_catalog(root: Path, name: str) -> tuple[dict[str, str], list[Piece]]:
    """The catalogue header (``id``, ``name``, ``version``, ``license``, ...) and its pieces, in ``#N`` order."""
    props_file = root / PROPERTIES
    if not props_file.is_file():
        raise CliError(f"{name}: no {PROPERTIES} in the archive")
    props = parse_properties(props_file.read_text(encoding="latin-1"))
    header = {k: v for k, v in props.items() if "#" not in k}
    numbers = sorted(int(k[3:]) for k in props if re.fullmatch(r"id#\d+", k))
    pieces = []
    for n in numbers:
        where = f"{name} {PROPERTIES} #{n}"
        f = {key: props.get(f"{key}#{n}", "").strip() for key in _PIECE_KEYS}
        if not f["model"] or not f["icon"] or not f["category"]:
            raise CliError(f"{where}: no model, icon or category")
        pieces.append(Piece(f["id"], name, f["category"], f["name"], f["tags"], root / f["icon"].lstrip("/"),
                            root / f["model"].lstrip("/"), _rotation(f["modelRotation"], where)))
    return header, pieces


def discover(catalog_dir: Path, cache: Path) -> tuple[dict[str, dict], list[Piece]]:
    """Every ``.sh3f`` catalogue under ``catalog_dir``: headers by archive name, and all pieces sorted by id."""
    archives = sorted(Path(catalog_dir).glob("*.sh3f"))
    if not archives:
        raise CliError(f"{catalog_dir}: no .sh3f catalogue archives")
    headers, pieces = {}, []
    for sh3f in archives:
        header, found = read_catalog(unpack_catalog(sh3f, cache), sh3f.name)
        headers[sh3f.name] = {**{k: header.get(k, "") for k in ("id", "name", "version", "license")},
                              "pieces": len(found), "sha256": sha256_file(sh3f)}
        pieces.extend(found)
    dup = [i for i, c in Counter(p.id for p in pieces).items() if c > 1]
    if dup:
        raise CliError(f"{catalog_dir}: piece id(s) {', '.join(dup[:5])} appear more than once")
    return headers, sorted(pieces, key=lambda p: p.id)


def select(pieces: Sequence[Piece], min_per_class: int = MIN_PER_CLASS,
           limit: int | None = None) -> tuple[list[str], list[Piece], dict[str, int]]:
    """Tux-12's rule on categories: the kept classes (sorted), their pieces (at most ``limit`` per
    class), and the dropped categories with their counts."""
    classes, kept = tux12.select(pieces, min_per_class, limit)
    counts = Counter(p.category for p in pieces)
    return classes, kept, {c: n for c, n in sorted(counts.items()) if c not in classes}


# --------------------------------------------------------------------------- extraction


def piece_mesh(piece: Piece) -> tuple[np.ndarray, np.ndarray]:
    """The piece's vertices (after its catalogue rotation) and triangles."""
    try:
        v, f = meshes.load_mesh(piece.model)
    except meshes.MeshError as exc:
        raise CliError(f"{piece.id}: {exc}") from None
    if piece.rotation is not None:
        v = v @ np.asarray(piece.rotation, dtype=np.float64).reshape(3, 3).T
    return v, f


class Extractors(BaseExtractors):
    """The real encoders and staging (a test may pass an object with the same methods)."""

    def __init__(self, cache: Path, threads: int, log: common.Progress):
        super().__init__(cache, threads, log)
        self.info = {"3d": meshes.MESH_DESCRIPTOR_INFO}

    def encoders(self, modalities: Sequence[str]) -> dict:
        encs = super().encoders(modalities)
        self.info["image"] = {**self.info["image"], "input_source": "catalogue icon (PNG), composited on white"}
        return encs


def stage_mesh(piece: Piece, extractors, dest: Path) -> Path:
    """The piece's mesh as ``extract`` reads it: its OBJ as it is, or with ``modelRotation`` applied, as an exact copy."""
    if piece.rotation is None:
        return piece.model
    return extractors.stage_mesh(*piece_mesh(piece), dest)


def manifest_rows(pieces: Sequence[Piece], extractors, staged: Path) -> list[dict]:
    """The items of the manifest ``extract`` reads, one per piece: its icon, its text and its mesh (rotated ones staged)."""
    staged.mkdir(parents=True)
    rows = []
    for k, p in enumerate(pieces):
        mesh = stage_mesh(p, extractors, staged / f"{k:05d}.off")
        rows.append({"id": p.id, "class": p.category, "image": str(extractors.stage_image(p.icon, staged / f"{k:05d}.png").resolve()),
                     "text": p.text, "3d": str(Path(mesh).resolve())})
    return rows


def extract(pieces: Sequence[Piece], extractors, folder: Path, log: common.Progress) -> dict[str, np.ndarray]:
    """Features of every piece through ``cvs_tf.data.extract``: modality -> (N, d) float32, rows in ``pieces`` order."""
    log(f"staging {len(pieces)} pieces ({sum(p.rotation is not None for p in pieces)} rotated meshes)")
    rows = manifest_rows(pieces, extractors, folder / "staged")
    log("extract: EfficientNet-Lite0 icons, MiniLM names and tags, shape descriptors of the meshes")
    return extract_rows(rows, extractors.encoders(MODALITIES), folder, log)


def assemble(features: Mapping[str, np.ndarray], labels: np.ndarray, ids: Sequence[str], seed: int = 0) -> dict:
    """Tux-12's split (stratified 70/30, paired 10 % validation); item ids under ``"piece"``."""
    data = tux12.assemble(features, labels, ids, seed)
    data["item_ids"] = {"piece": data["item_ids"]["stamp"]}
    return data


# --------------------------------------------------------------------------- command line


def resolve_catalogs(args, cache: Path, log: common.Progress) -> tuple[Path, dict[str, str], dict[str, str]]:
    """The catalogue folder, the Debian package version and the .deb's sha256."""
    if args.furniture_dir:
        root = Path(args.furniture_dir)
        if not root.is_dir():
            raise CliError(f"--furniture-dir {root}: no such directory")
        return root, {PACKAGE: "unknown (--furniture-dir)"}, {}
    pkgs = common.ensure_packages([PACKAGE], cache, allow_download=not args.no_download, log=log)
    root = pkgs[PACKAGE].path(CATALOG_DIR)
    if not root.is_dir():
        raise CliError(f"{PACKAGE} {pkgs[PACKAGE].version}: no {CATALOG_DIR} inside; {common.install_hint([PACKAGE])}")
    deb = common.cached_deb(PACKAGE, cache / "deb")
    sha = {deb.name: sha256_file(deb)} if pkgs[PACKAGE].origin == "cache" and deb is not None else {}
    return root, {PACKAGE: pkgs[PACKAGE].version}, sha


def parser():
    p = common.base_parser("python -m data_prep.furniture", __doc__.splitlines()[0], DEFAULT_OUT)
    p.add_argument("--furniture-dir", default=None,
                   help="a folder of Sweet Home 3D .sh3f catalogues to use instead of the Debian package")
    return p


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: Sequence[str] | None = None, *,
         make_extractors: Callable[[Path, int, common.Progress], object] | None = None) -> int:
    args = parser().parse_args(argv)
    common.check_args(args)
    log = common.Progress(NAME, args.quiet)
    if make_extractors is None:
        from data_prep import extractors as ex

        ex.require(["image", "text"])
        make_extractors = Extractors
    cache = Path(args.cache) if args.cache else common.DEFAULT_CACHE
    root, debs, deb_sha = resolve_catalogs(args, cache, log)

    catalogs, pieces = discover(root, cache)
    classes, pieces, dropped = select(pieces, MIN_PER_CLASS, args.limit)
    if len(classes) < 2:
        raise CliError(f"{root}: found {len(classes)} categor(ies) with >= {MIN_PER_CLASS} pieces; need 2")
    counts = Counter(p.category for p in pieces)
    log(f"{len(pieces)} pieces in {len(classes)} classes: " + ", ".join(f"{c} {counts[c]}" for c in classes))

    extractors = make_extractors(cache, args.threads, log)
    with scratch(cache, NAME) as folder:
        feats = extract(pieces, extractors, folder, log)
    labels = np.array([classes.index(p.category) for p in pieces], dtype=np.int32)
    data = assemble(feats, labels, [p.id for p in pieces], args.seed)

    from data_prep import extractors as ex

    provenance = {
        "synthetic": False,
        "source": f"Sweet Home 3D furniture catalogues from the Debian package {PACKAGE}",
        "license": LICENSE,
        "debian_packages": debs,
        "deb_sha256": deb_sha,
        "catalogues": catalogs,
        "python_packages": {**ex.package_versions(["image", "text"]), "trimesh": _version("trimesh")},
        "extractors": getattr(extractors, "info", {}),
        "converter": "data_prep.furniture",
        "converter_version": VERSION,
        "selection": {
            "classes": f"catalogue category (category#N) with >= {MIN_PER_CLASS} pieces; never names or tags",
            "dropped_categories": dropped,
            "text": "name#N, then '. ' and tags#N when there are tags",
            "mesh": "model#N (OBJ), vertices rotated by modelRotation#N where given",
            "limit_per_class": args.limit,
            "class_counts": {c: counts[c] for c in classes},
        },
        "split": {"test_fraction": tux12.TEST_FRACTION, "seed": args.seed, "stratified": True},
        "feature_dtype": "float16",
        "torch_threads": args.threads,
    }
    return publish(args, NAME, data, classes, pairing="instance", provenance=provenance,
                   val_fraction=tux12.VAL_FRACTION, log=log)


if __name__ == "__main__":
    sys.exit(run_cli(main))
