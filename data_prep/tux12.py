"""Build the Tux-12 benchmark (image, text, speech, MFCC audio) from the Tux Paint stamps in Debian's tuxpaint-stamps-default.

One stamp is one item, so the set is instance-paired: row ``i`` of every modality in a split is
the same stamp. The build writes a JSON manifest of the stamps and extracts it with
``cvs_tf.data.extract`` (:func:`data_prep.build.extract_spec`), naming the registry's offline
encoders; SVG pictures are first rendered to PNG and the ogg clips decoded to 16 kHz WAV, both
losslessly (:class:`data_prep.build.BaseExtractors`). Modalities:

* ``image``  -- EfficientNet-Lite0 feature of the rendered stamp (1280-d);
* ``text``   -- MiniLM embedding of the English caption, the first line of ``<stamp>.txt`` (384-d);
* ``speech`` -- Whisper-base encoder feature of the French spoken description
  ``<stamp>_desc_fr.ogg`` (1024-d);
* ``audio``  -- 60-d MFCC statistics of the same French clip: a second, classic audio modality
  (the thesis' XMedia audio is MFCC), deliberately the weak one.

Classes are the top-level stamp folders (``animals``, ``food``, ...) with at least 20 stamps that
carry all of image, caption and French description; ``symbols/alphabets`` and the pre-mirrored
``*_mirror`` images are left out. Where a stamp has both SVG and PNG, the SVG is used (as Tux
Paint does). Split: seeded, class-stratified 70/30 train/test, then 10 % of train carved as
``val`` (same rows in every modality). Features are stored as float16.

Usage::

    python -m data_prep.tux12 --out cvs_tf/datasets/tux12 --overwrite   # what `make data-tux12` runs
    python -m data_prep.tux12 --out /tmp/t --limit 3                      # 3 stamps per class, quick
    python -m data_prep.tux12 --out /tmp/t --compare cvs_tf/datasets/tux12  # rebuild and check
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvs_tf.data.store import carve_validation
from cvs_tf.report.media import read_caption  # the English caption of a stamp's .txt (stdlib only)
from cvs_tf.utils.cli import CliError, run_cli
from data_prep import tuxdigits_common as common
from data_prep.build import BaseExtractors, extract_rows, publish, scratch

NAME = "tux12"
VERSION = "1"
PACKAGE = "tuxpaint-stamps-default"
STAMPS_DIR = "usr/share/tuxpaint/stamps"
SPEECH_LANG = "fr"
MIN_PER_CLASS = 20
EXCLUDED_DIRS = ("alphabets",)
TEST_FRACTION = 0.3
VAL_FRACTION = 0.1
DEFAULT_OUT = "cvs_tf/datasets/tux12"
LICENSE = "GPL-2 (Tux Paint stamps, tuxpaint-stamps-default; see its debian/copyright)"
MODALITIES = ("image", "text", "speech", "audio")


@dataclass(frozen=True)
class Stamp:
    """One stamp with all three sources; ``id`` is its path below the stamps folder, without suffix."""

    id: str
    category: str
    image: Path
    caption: str
    speech: Path


def discover(stamps_root: Path, lang: str = SPEECH_LANG) -> list[Stamp]:
    """Every stamp with an image, an English caption and a ``_desc_<lang>.ogg``, sorted by id."""
    stamps_root = Path(stamps_root)
    images: dict[Path, dict[str, Path]] = {}
    for p in stamps_root.rglob("*"):
        if p.suffix.lower() not in (".png", ".svg") or not p.is_file():
            continue
        rel = p.relative_to(stamps_root)
        if any(part in EXCLUDED_DIRS for part in rel.parts) or rel.stem.endswith("_mirror") or len(rel.parts) < 2:
            continue
        images.setdefault(p.with_suffix(""), {})[p.suffix.lower()] = p
    out = []
    for stem, files in images.items():
        txt = stem.with_suffix(".txt")
        speech = stem.parent / f"{stem.name}_desc_{lang}.ogg"
        if not txt.is_file() or not speech.is_file():
            continue
        caption = read_caption(txt)
        if not caption:
            continue
        rel = stem.relative_to(stamps_root).as_posix()
        out.append(Stamp(rel, rel.split("/")[0], files.get(".svg", files.get(".png")), caption, speech))
    return sorted(out, key=lambda s: s.id)


def select(stamps: Sequence[Stamp], min_per_class: int = MIN_PER_CLASS,
           limit: int | None = None) -> tuple[list[str], list[Stamp]]:
    """Classes with at least ``min_per_class`` stamps (sorted) and their stamps (at most ``limit`` per class)."""
    counts = Counter(s.category for s in stamps)
    classes = sorted(c for c, n in counts.items() if n >= min_per_class)
    kept, taken = [], Counter()
    for s in stamps:
        if s.category in classes and (limit is None or taken[s.category] < limit):
            kept.append(s)
            taken[s.category] += 1
    return classes, kept


# --------------------------------------------------------------------------- extraction


class Extractors(BaseExtractors):
    """The real encoders and staging (a test may pass an object with the same methods)."""


def manifest_rows(stamps: Sequence[Stamp], extractors, staged: Path, log: common.Progress) -> list[dict]:
    """The items of the manifest ``extract`` reads, one per stamp: the stamp's picture (an SVG staged as a
    PNG), its caption, and its French description (staged as a WAV) for both ``speech`` and ``audio``."""
    staged.mkdir(parents=True)
    rows = []
    for k, s in enumerate(stamps):
        wav = str(extractors.stage_audio(s.speech, staged / f"{k:05d}.wav").resolve())
        rows.append({"id": s.id, "class": s.category, "image": str(extractors.stage_image(s.image, staged / f"{k:05d}.png").resolve()),
                     "text": s.caption, "speech": wav, "audio": wav})
        log.every("staged", k + 1, len(stamps), 100)
    return rows


def extract(stamps: Sequence[Stamp], extractors, folder: Path, log: common.Progress) -> dict[str, np.ndarray]:
    """Features of every stamp through ``cvs_tf.data.extract``: modality -> (N, d) float32, rows in ``stamps`` order."""
    log(f"staging {len(stamps)} stamps (SVG to PNG, ogg to WAV)")
    rows = manifest_rows(stamps, extractors, folder / "staged", log)
    log("extract: EfficientNet-Lite0 pictures, MiniLM captions, Whisper-base and MFCC descriptions")
    return extract_rows(rows, extractors.encoders(MODALITIES), folder, log)


def assemble(features: Mapping[str, np.ndarray], labels: np.ndarray, ids: Sequence[str],
             seed: int = 0) -> dict:
    """Stratified 70/30 split, then the paired 10 % validation carve-out.

    Returns modality -> split -> (x float32, y int32), plus ``"item_ids"`` -> {"stamp": split -> ids}.
    """
    labels = np.asarray(labels, dtype=np.int32)
    rows = common.split_rows(len(labels), labels, TEST_FRACTION, seed)
    carved = carve_validation(
        {"rows": {s: (rows[s][:, None], labels[rows[s]]) for s in ("train", "test")}},
        VAL_FRACTION, seed, paired=True)["rows"]
    out: dict = {}
    for m, x in features.items():
        out[m] = {s: (x[carved[s][0][:, 0]], carved[s][1]) for s in carved}
    out["item_ids"] = {"stamp": {s: [ids[int(i)] for i in carved[s][0][:, 0]] for s in carved}}
    return out


# --------------------------------------------------------------------------- command line


def resolve_stamps(args, cache: Path, log: common.Progress) -> tuple[Path, dict[str, str]]:
    """The stamps folder and the Debian package versions it came from."""
    if args.stamps_dir:
        root = Path(args.stamps_dir)
        if not root.is_dir():
            raise CliError(f"--stamps-dir {root}: no such directory")
        return root, {PACKAGE: "unknown (--stamps-dir)"}
    pkgs = common.ensure_packages([PACKAGE], cache, allow_download=not args.no_download, log=log)
    root = pkgs[PACKAGE].path(STAMPS_DIR)
    if not root.is_dir():
        raise CliError(f"{PACKAGE} {pkgs[PACKAGE].version}: no {STAMPS_DIR} inside; {common.install_hint([PACKAGE])}")
    return root, {PACKAGE: pkgs[PACKAGE].version}


def parser():
    p = common.base_parser("python -m data_prep.tux12", __doc__.splitlines()[0], DEFAULT_OUT)
    p.add_argument("--stamps-dir", default=None,
                   help="an unpacked Tux Paint stamps folder to use instead of the Debian package")
    return p


def main(argv: Sequence[str] | None = None, *,
         make_extractors: Callable[[Path, int, common.Progress], object] | None = None) -> int:
    args = parser().parse_args(argv)
    common.check_args(args)
    log = common.Progress(NAME, args.quiet)
    if make_extractors is None:
        from data_prep import extractors as ex

        ex.require(["image", "text", "speech", "audio"])
        make_extractors = Extractors
    cache = Path(args.cache) if args.cache else common.DEFAULT_CACHE
    root, debs = resolve_stamps(args, cache, log)

    classes, stamps = select(discover(root), MIN_PER_CLASS, args.limit)
    if len(classes) < 2:
        raise CliError(f"{root}: found {len(classes)} class(es) with >= {MIN_PER_CLASS} complete stamps; need 2")
    counts = Counter(s.category for s in stamps)
    log(f"{len(stamps)} stamps in {len(classes)} classes: " + ", ".join(f"{c} {counts[c]}" for c in classes))

    extractors = make_extractors(cache, args.threads, log)
    with scratch(cache, NAME) as folder:
        feats = extract(stamps, extractors, folder, log)
    labels = np.array([classes.index(s.category) for s in stamps], dtype=np.int32)
    data = assemble(feats, labels, [s.id for s in stamps], args.seed)

    from data_prep import extractors as ex

    provenance = {
        "synthetic": False,
        "source": f"Tux Paint stamps from the Debian package {PACKAGE}",
        "license": LICENSE,
        "debian_packages": debs,
        "python_packages": ex.package_versions(["image", "text", "speech"]),
        "extractors": getattr(extractors, "info", {}),
        "converter": "data_prep.tux12",
        "converter_version": VERSION,
        "selection": {
            "classes": f"top-level stamp folders with >= {MIN_PER_CLASS} stamps having image, English caption "
                       f"and _desc_{SPEECH_LANG}.ogg",
            "excluded": ["symbols/alphabets", "*_mirror images"],
            "svg_over_png": True,
            "speech_language": SPEECH_LANG,
            "limit_per_class": args.limit,
            "class_counts": {c: counts[c] for c in classes},
        },
        "split": {"test_fraction": TEST_FRACTION, "seed": args.seed, "stratified": True},
        "feature_dtype": "float16",
        "torch_threads": args.threads,
    }
    return publish(args, NAME, data, classes, pairing="instance", provenance=provenance,
                   val_fraction=VAL_FRACTION, log=log)


if __name__ == "__main__":
    sys.exit(run_cli(main))
