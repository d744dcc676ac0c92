"""Build the Digits-10 benchmark (handwritten image, spoken digit, written number word, MFCC audio), paired by class only.

Sources (all offline):

* ``image``  -- scikit-learn's bundled 8x8 handwritten digits (``load_digits``, 1,797 images):
  the 64 pixel intensities divided by 16, so features lie in [0, 1] (exact in float16).
* ``speech`` -- spoken digits 0-9 through the Whisper-base encoder (1024-d): the Tux Paint
  ``symbols/math`` clips (``N.ogg``, ``N_<lang>.ogg`` and ``N_desc_<lang>.ogg``, from
  ``tuxpaint-stamps-default``) and eight Asterisk voices (``asterisk-core-sounds-{en,es,fr,it,ru}-wav``,
  ``asterisk-prompt-es-co``, ``asterisk-prompt-fr-armelle``, ``asterisk-prompt-it-menardi-wav``).
* ``audio``  -- 60-d MFCC statistics of the same clips (same rows and split as ``speech``).
* ``text``   -- the written number words of Tux Paint's ``symbols/math/N.txt`` in every language
  it carries (the English first line and each ``<lang>.utf8=`` line), embedded with MiniLM
  (384-d). Identical strings within a digit (e.g. Spanish/Galician "Tres.") are kept once.

The words and clips are written as a folder layout ``DIR/<modality>/<digit>/<k>.<ext>`` (each clip
decoded to a 16 kHz WAV first, losslessly) and extracted with ``cvs_tf.data.extract``
(:func:`data_prep.build.extract_spec`), naming the registry's offline encoders.
Modalities have different counts and are paired only by class (pairing ``class``), like XMedia.
Each source is split on its own: seeded, class-stratified 70/30 train/test, then 10 % of train as
``val``. Features are stored as float16.

Usage::

    python -m data_prep.digits10 --out cvs_tf/datasets/digits10 --overwrite   # `make data-digits10`
    python -m data_prep.digits10 --out /tmp/d --limit 3                        # quick
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvs_tf.data.store import carve_validation
from cvs_tf.utils.cli import CliError, run_cli
from data_prep import tuxdigits_common as common
from data_prep.build import BaseExtractors, extract_spec, publish, scratch
from data_prep.tux12 import PACKAGE as TUX_PACKAGE
from data_prep.tux12 import STAMPS_DIR

NAME = "digits10"
VERSION = "1"
CLASSES = [str(d) for d in range(10)]
MATH_DIR = STAMPS_DIR + "/symbols/math"
TEST_FRACTION = 0.3
VAL_FRACTION = 0.1
DEFAULT_OUT = "cvs_tf/datasets/digits10"
SOUNDS = "usr/share/asterisk/sounds"

#: Asterisk voices: (Debian package, digits folder, language, speaker, license of the recordings).
VOICES = [
    ("asterisk-core-sounds-en-wav", f"{SOUNDS}/en_US_f_Allison/digits", "en", "Allison Smith", "CC-BY-SA-3.0"),
    ("asterisk-core-sounds-es-wav", f"{SOUNDS}/es_MX_f_Allison/digits", "es", "Allison Smith", "CC-BY-SA-3.0"),
    ("asterisk-core-sounds-fr-wav", f"{SOUNDS}/fr_CA_f_June/digits", "fr", "June Wallack", "CC-BY-SA-3.0"),
    ("asterisk-core-sounds-it-wav", f"{SOUNDS}/it_IT_m_Carlo/digits", "it", "Carlo Flora", "CC-BY-3.0"),
    ("asterisk-core-sounds-ru-wav", f"{SOUNDS}/ru_RU_f_IvrvoiceRU/digits", "ru", "Maxim Topal (IVR Voice RU)", "CC-BY-3.0"),
    ("asterisk-prompt-es-co", f"{SOUNDS}/es/digits", "es", "July E. Jimenez (Avatar Ltda.)", "GPL-2"),
    ("asterisk-prompt-fr-armelle", f"{SOUNDS}/fr/digits", "fr", "Armelle Desjardins, (c) 2006 Michel Gutierrez",
     "BSD-style (redistribution with notice; see the package's debian/copyright)"),
    ("asterisk-prompt-it-menardi-wav", f"{SOUNDS}/it_IT_f_Menardi/digits", "it",
     "Marco Menardi and Paola Dal Zot (voip.ammdomus.it)", "CC-BY-SA-3.0 (Italian); attribution required"),
]
PACKAGES = [TUX_PACKAGE] + [v[0] for v in VOICES]
AUDIO_SUFFIXES = (".wav", ".gsm", ".ogg")
_MATH_CLIP = re.compile(r"^(\d)(?:_(desc_)?([A-Za-z]{2,3}(?:_[A-Za-z]{2})?))?\.ogg$")
_LANG_LINE = re.compile(r"^([A-Za-z]{2,3}(?:_[A-Za-z]{2})?(?:@[A-Za-z]+)?)\.utf8=(.*)$")


@dataclass(frozen=True)
class Clip:
    """One spoken digit: ``id`` names its source (``tuxpaint:...`` or ``asterisk:<package>:...``)."""

    id: str
    digit: int
    path: Path


@dataclass(frozen=True)
class Word:
    """One written number word: ``id`` is ``<digit>/<language>``."""

    id: str
    digit: int
    text: str


def math_clips(math_dir: Path) -> list[Clip]:
    """Tux Paint's spoken digits: ``N.ogg``, ``N_<lang>.ogg`` and ``N_desc_<lang>.ogg``, sorted by id."""
    out = []
    for p in sorted(Path(math_dir).glob("*.ogg")):
        m = _MATH_CLIP.match(p.name)
        if m:
            out.append(Clip(f"tuxpaint:symbols/math/{p.name}", int(m.group(1)), p))
    return out


def asterisk_clips(package: str, digits_dir: Path) -> list[Clip]:
    """One voice's ``0``-``9`` recordings (wav preferred over gsm); a missing digit is an error."""
    out = []
    for d in range(10):
        files = [Path(digits_dir) / f"{d}{s}" for s in AUDIO_SUFFIXES]
        found = [f for f in files if f.is_file()]
        if not found:
            raise CliError(f"{package}: no recording of digit {d} in {digits_dir}")
        out.append(Clip(f"asterisk:{package}:{found[0].name}", d, found[0]))
    return out


def math_words(math_dir: Path) -> list[Word]:
    """Written number words of ``N.txt`` (English first line, then ``<lang>.utf8=``), deduplicated per digit."""
    out = []
    for d in range(10):
        txt = Path(math_dir) / f"{d}.txt"
        if not txt.is_file():
            raise CliError(f"{txt}: missing (Tux Paint symbols/math caption)")
        seen: set[str] = set()
        for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if not line:
                continue
            m = _LANG_LINE.match(line)
            lang, text = (m.group(1), m.group(2).strip()) if m else ("en", line)
            if text and text not in seen:
                seen.add(text)
                out.append(Word(f"{d}/{lang}", d, text))
    return out


def limit_per_class(items: Sequence, labels: Sequence[int], limit: int | None) -> list[int]:
    """Indices of the first ``limit`` items of each class (all items when ``limit`` is None)."""
    taken: Counter = Counter()
    keep = []
    for i, y in enumerate(labels):
        if limit is None or taken[y] < limit:
            keep.append(i)
            taken[y] += 1
    return keep


def split_source(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Row indices of train/val/test for one source: stratified 70/30, then 10 % of train as val."""
    labels = np.asarray(labels, dtype=np.int32)
    rows = common.split_rows(len(labels), labels, TEST_FRACTION, seed)
    carved = carve_validation({"rows": {s: (rows[s][:, None], labels[rows[s]]) for s in ("train", "test")}},
                              VAL_FRACTION, seed)["rows"]
    return {s: carved[s][0][:, 0] for s in carved}


#: Split seed offset per source; ``speech`` and ``audio`` share the clips and their split.
SOURCE_SEED = {"image": 0, "text": 1, "clips": 2}
SOURCE_OF = {"image": "image", "text": "text", "speech": "clips", "audio": "clips"}


def assemble(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], ids: dict[str, list[str]],
             seed: int = 0) -> dict:
    """modality -> split -> (x, y), plus ``"item_ids"`` -> modality -> split -> ids.

    ``labels`` and ``ids`` are keyed by source (``image``, ``text``, ``clips``).
    """
    rows = {src: split_source(labels[src], seed + off) for src, off in SOURCE_SEED.items() if src in labels}
    out: dict = {"item_ids": {}}
    for m, x in features.items():
        src = SOURCE_OF[m]
        y = np.asarray(labels[src], dtype=np.int32)
        out[m] = {s: (x[r], y[r]) for s, r in rows[src].items()}
        out["item_ids"][m] = {s: [ids[src][int(i)] for i in r] for s, r in rows[src].items()}
    return out


# --------------------------------------------------------------------------- extraction


class Extractors(BaseExtractors):
    """The real encoders and staging (a test may pass an object with the same methods)."""


def write_folder(words: Sequence[Word], clips: Sequence[Clip], extractors, root: Path, log: common.Progress) -> Path:
    """The folder layout ``extract`` reads, ``root/<modality>/<digit>/<k>.<ext>``: word ``k`` as a .txt
    file, clip ``k`` staged as a 16 kHz WAV under both ``speech`` and ``audio``."""
    for k, w in enumerate(words):
        (root / "text" / str(w.digit)).mkdir(parents=True, exist_ok=True)
        (root / "text" / str(w.digit) / f"{k:05d}.txt").write_text(w.text, encoding="utf-8")
    for k, c in enumerate(clips):
        for m in ("speech", "audio"):
            (root / m / str(c.digit)).mkdir(parents=True, exist_ok=True)
        wav = extractors.stage_audio(c.path, root / "speech" / str(c.digit) / f"{k:05d}.wav")
        shutil.copyfile(wav, root / "audio" / str(c.digit) / f"{k:05d}.wav")
        log.every("staged clips", k + 1, len(clips), 100)
    return root


def extract(words: Sequence[Word], clips: Sequence[Clip], extractors, folder: Path,
            log: common.Progress) -> dict[str, np.ndarray]:
    """MiniLM words, Whisper-base and MFCC clips through ``cvs_tf.data.extract``: modality -> (N, d), rows in input order."""
    root = write_folder(words, clips, extractors, folder / "media", log)
    log(f"extract: MiniLM, {len(words)} words; Whisper-base and MFCC, {len(clips)} clips")
    feats = extract_spec(root, extractors.encoders(["text", "speech", "audio"]), folder / "partial", log)
    rows = {"text": [f"{w.digit}/{k:05d}" for k, w in enumerate(words)],
            "speech": [f"{c.digit}/{k:05d}" for k, c in enumerate(clips)]}
    rows["audio"] = rows["speech"]
    return {m: np.stack([feats[m][i] for i in ids]) for m, ids in rows.items()}


def load_images(limit: int | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's digits: features (N, 64) in [0, 1], labels, ids ``sklearn:<row>``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = limit_per_class(d.target, d.target, limit)
    x = (d.data[keep] / 16.0).astype(np.float32)
    return x, d.target[keep].astype(np.int32), [f"sklearn:{i}" for i in keep]


# --------------------------------------------------------------------------- command line


def resolve_sources(args, cache: Path, log: common.Progress) -> tuple[Path, list[tuple[str, Path]], dict[str, str]]:
    """The Tux Paint math folder, the Asterisk (package, digits folder) list, and package versions."""
    if args.sources_dir:
        root = Path(args.sources_dir)
        if not root.is_dir():
            raise CliError(f"--sources-dir {root}: no such directory")
        math = root / MATH_DIR
        voices = [(v[0], root / v[1]) for v in VOICES if (root / v[1]).is_dir()]
        return math, voices, {p: "unknown (--sources-dir)" for p in PACKAGES}
    pkgs = common.ensure_packages(PACKAGES, cache, allow_download=not args.no_download, log=log)
    math = pkgs[TUX_PACKAGE].path(MATH_DIR)
    voices = [(v[0], pkgs[v[0]].path(v[1])) for v in VOICES]
    for name, folder in [(TUX_PACKAGE, math)] + voices:
        if not folder.is_dir():
            raise CliError(f"{name} {pkgs[name].version}: {folder} missing; {common.install_hint([name])}")
    return math, voices, {p: pkgs[p].version for p in PACKAGES}


def parser():
    p = common.base_parser("python -m data_prep.digits10", __doc__.splitlines()[0], DEFAULT_OUT)
    p.add_argument("--sources-dir", default=None,
                   help="a folder holding usr/share/tuxpaint/... and usr/share/asterisk/... instead of the Debian packages")
    return p


def clips_and_words(math: Path, voices, limit: int | None) -> tuple[list, list]:
    """The spoken clips (Tux Paint and every Asterisk voice) and number words, at most ``limit`` per
    digit; every digit must have both."""
    clips = math_clips(math)
    for package, folder in voices:
        clips.extend(asterisk_clips(package, folder))
    clips = [clips[i] for i in limit_per_class(clips, [c.digit for c in clips], limit)]
    words = math_words(math)
    words = [words[i] for i in limit_per_class(words, [w.digit for w in words], limit)]
    for what, items in (("spoken clips", clips), ("number words", words)):
        missing = sorted(set(range(10)) - {i.digit for i in items})
        if missing:
            raise CliError(f"{math}: no {what} for digit(s) {missing}")
    return clips, words


def main(argv: Sequence[str] | None = None, *,
         make_extractors: Callable[[Path, int, common.Progress], object] | None = None) -> int:
    args = parser().parse_args(argv)
    common.check_args(args)
    log = common.Progress(NAME, args.quiet)
    from data_prep import extractors as ex

    if make_extractors is None:
        ex.require(["text", "speech", "audio", "digits"])
        make_extractors = Extractors
    else:
        ex.require(["digits"])
    cache = Path(args.cache) if args.cache else common.DEFAULT_CACHE
    math, voices, debs = resolve_sources(args, cache, log)
    clips, words = clips_and_words(math, voices, args.limit)
    img_x, img_y, img_ids = load_images(args.limit)
    log(f"{len(img_y)} images, {len(clips)} spoken clips ({len(voices)} Asterisk voices + Tux Paint), "
        f"{len(words)} number words")

    extractors = make_extractors(cache, args.threads, log)
    with scratch(cache, NAME) as folder:
        features = {"image": img_x, **extract(words, clips, extractors, folder, log)}
    labels = {"image": img_y, "text": np.array([w.digit for w in words]), "clips": np.array([c.digit for c in clips])}
    ids = {"image": img_ids, "text": [w.id for w in words], "clips": [c.id for c in clips]}
    data = assemble({m: np.asarray(x, np.float32) for m, x in features.items()}, labels, ids, args.seed)

    provenance = {
        "synthetic": False,
        "source": "scikit-learn load_digits (image); Tux Paint symbols/math and Asterisk digit prompts "
                  "(speech, audio); Tux Paint number words (text)",
        "license": {
            "image": "scikit-learn BSD-3-Clause; data: UCI Optical Recognition of Handwritten Digits (CC BY 4.0)",
            "text": "GPL-2 (tuxpaint-stamps-default)",
            "speech": "GPL-2 (Tux Paint clips); Asterisk voices as listed under voices",
        },
        "voices": [{"package": v[0], "language": v[2], "speaker": v[3], "license": v[4]} for v in VOICES],
        "debian_packages": debs,
        "python_packages": {**ex.package_versions(["text", "speech", "digits"])},
        "extractors": {"image": {"name": "raw 8x8 pixels / 16", "dim": 64}, **getattr(extractors, "info", {})},
        "converter": "data_prep.digits10",
        "converter_version": VERSION,
        "selection": {"limit_per_class": args.limit,
                      "counts": {"image": len(img_y), "speech": len(clips), "text": len(words)}},
        "split": {"test_fraction": TEST_FRACTION, "seed": args.seed, "stratified": True,
                  "per_source_seed_offset": SOURCE_SEED, "speech_and_audio": "same clips, same split"},
        "feature_dtype": "float16",
        "torch_threads": args.threads,
    }
    return publish(args, NAME, data, CLASSES, pairing="class", provenance=provenance,
                   val_fraction=VAL_FRACTION, log=log)


if __name__ == "__main__":
    sys.exit(run_cli(main))
