"""``make search-demo QUERY=...``: query the shipped Tux-12 space with a raw picture, sentence or sound clip and print the nearest stamps.

What it does (every step is cached under ``--cache``, default ``runs/search-demo/``)::

    1. train a CVS on the embedded Tux-12 once  (python -m cvs_tf.train --dataset tux12 --epochs E)
    2. export its encoders                        (python -m cvs_tf.export RUN --out EXPORT)
    3. index every Tux-12 stamp (all splits) for each modality  (python -m cvs_tf.index build ...)
    4. run the shipped extractor for the query's modality in the data-prep environment
       (.venv-dataprep: data_prep/extractors.py, the very extractors that built Tux-12)
    5. embed the query with the export and print the nearest stamps of every gallery
       (captions, spoken descriptions, pictures, sounds), with the captions and media files
       when the Debian package tuxpaint-stamps-default is at hand (as for ``make data-tux12``)

The query is a picture (``.png .jpg .jpeg .svg .gif .bmp .webp``: modality image), a sound
clip (``.wav .ogg .mp3 .flac .opus .m4a``: modality speech, or ``--modality audio`` for the MFCC
modality) or any other text (a sentence: modality text, the captions' MiniLM).

Steps 1-3 and 5 run in the main environment (TensorFlow); step 4 is this module started again
with ``--extract-to`` by the data-prep environment's Python (torch, no TensorFlow).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvs_tf.utils.cli import ArgumentParser, CliError, run_cli
from data_prep.tuxdigits_common import DEFAULT_CACHE, REPO_ROOT

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif", ".bmp", ".webp")
SOUND_SUFFIXES = (".wav", ".ogg", ".mp3", ".flac", ".opus", ".m4a")
MODALITIES = ("image", "text", "speech", "audio")
GALLERIES = {"text": "caption", "speech": "spoken description", "image": "picture", "audio": "sound (MFCC)"}
DATASET = "tux12"
DEFAULT_EPOCHS = 10
DATAPREP_PYTHON = REPO_ROOT / ".venv-dataprep" / "bin" / "python"


def query_modality(query: str, forced: str | None = None) -> str:
    """The modality a query stands for: by file suffix, else text; ``forced`` only refines a sound."""
    path = Path(query)
    suffix = path.suffix.lower()
    if not query.strip():
        raise CliError("QUERY is empty: give a picture, a sound clip or a sentence")
    is_file = suffix in IMAGE_SUFFIXES + SOUND_SUFFIXES
    if is_file and not path.is_file():
        raise CliError(f"{query}: no such file")
    found = "image" if suffix in IMAGE_SUFFIXES else "speech" if suffix in SOUND_SUFFIXES else "text"
    if forced and forced != found and not (found == "speech" and forced == "audio"):
        raise CliError(f"--modality {forced}: the query is a {'sound clip' if found == 'speech' else found}"
                       + (" (speech or audio)" if found == "speech" else ""))
    return forced or found


# --------------------------------------------------------------------------- step 4: the extractor (data-prep venv)


def extract_features(query: str, modality: str, cache: Path, threads: int = 2) -> np.ndarray:
    """(1, d) features of the query by the shipped extractor of ``modality`` (runs where torch is)."""
    from data_prep import extractors as ex

    ex.require([modality])
    if modality == "text":
        return ex.TextEncoder(threads).encode([query])
    if modality == "image":
        try:
            pixels = ex.render_stamp(query)
        except CliError:
            raise
        except Exception as exc:  # PIL raises several types for a damaged image
            raise CliError(f"{query}: cannot read the picture ({' '.join(str(exc).split())[:160]})") from None
        return ex.ImageEncoder(threads).encode(pixels[None])
    wave = ex.load_audio(query)
    if modality == "speech":
        return ex.SpeechEncoder(cache).encode_waves([wave])
    return ex.mfcc_stats(wave)[None]


def run_extractor(python: Path, query: str, modality: str, workdir: Path, cache: Path) -> np.ndarray:
    """Run :func:`extract_features` in the data-prep environment; its error line becomes ours."""
    if not Path(python).is_file():
        raise CliError(f"{python}: the data-prep environment is missing; run: make .venv-dataprep "
                       "(make search-demo installs it)")
    out = workdir / "query.npy"
    arg = str(Path(query).resolve()) if modality != "text" else query
    cmd = [str(python), "-m", "data_prep.search_demo", arg, "--modality", modality,
           "--extract-to", str(out), "--data-cache", str(cache)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0 or not out.is_file():
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = lines[-1].removeprefix("error: ") if lines else f"exit status {proc.returncode}"
        raise CliError(f"{modality} extractor (data-prep environment): {why}")
    return np.load(out)


# --------------------------------------------------------------------------- steps 1-3: space, export, gallery


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (shorter lines), else as is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def cache_dir(cache: Path, fs, epochs: int) -> Path:
    """One folder per shipped-set version and epoch count, so a rebuilt Tux-12 never meets a stale space."""
    return cache / f"{DATASET}-{fs.manifest_sha256[:12]}-{epochs}ep"


def ensure_export(root: Path, epochs: int, log) -> Path:
    """Train (once) and export (once) the space; returns the export directory."""
    from cvs_tf.cli.export import main as export
    from cvs_tf.cli.train import main as train

    run, out = root / "run", root / "export"
    if (out / "export.json").is_file():
        return out
    if not (run / "metrics.json").is_file():
        if run.exists():  # an interrupted earlier demo: its cache only, never a user's run
            shutil.rmtree(run)
        log(f"training a CVS on the shipped Tux-12 for {epochs} epochs into {run} (once)")
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the answer only
            train(["--dataset", DATASET, "--epochs", str(epochs), "--out", str(run), "--quiet"])
    log(f"exporting its encoders to {out}")
    with contextlib.redirect_stdout(sys.stderr):
        export([str(run), "--out", str(out)] + (["--overwrite"] if out.exists() else []))
    return out


def ensure_indexes(root: Path, export: Path, fs, log) -> dict[str, Path]:
    """An exact index of every stamp (all splits) per modality, ids = stamp ids; built once."""
    from cvs_tf.cli.index import main as index
    from cvs_tf.data.store import SPLITS

    gallery, paths = root / "gallery", {}
    gallery.mkdir(parents=True, exist_ok=True)
    ids = [i for s in SPLITS for i in fs.manifest["item_ids"]["stamp"][s]]
    for m in GALLERIES:
        paths[m] = root / "indexes" / m
        if (paths[m] / "index.json").is_file():
            continue
        log(f"indexing the {len(ids)} stamps' {m} features into {paths[m]}")
        np.save(gallery / f"{m}.npy", np.concatenate([np.asarray(fs.x(m, s), np.float32) for s in SPLITS]))
        np.save(gallery / f"{m}.labels.npy", np.concatenate([np.asarray(fs.y(m, s)) for s in SPLITS]))
        (gallery / "ids.txt").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
        with contextlib.redirect_stdout(sys.stderr):
            index(["build", str(export), "--features", str(gallery / f"{m}.npy"), "--modality", m,
                   "--ids", str(gallery / "ids.txt"), "--labels", str(gallery / f"{m}.labels.npy"),
                   "--out", str(paths[m]), "--overwrite"])
    return paths


# --------------------------------------------------------------------------- step 5: captions and media


def stamp_media(args, log):
    """``(stamps folder, stamp id -> {"caption", "image", "speech"})`` from the Tux Paint stamps, or (None, None)."""
    from data_prep import tux12
    from data_prep import tuxdigits_common as common

    reason = ""
    try:
        if args.stamps_dir:
            root = Path(args.stamps_dir)
        else:
            quiet = common.Progress("search-demo", quiet=True)
            pkgs = common.ensure_packages([tux12.PACKAGE], args.data_cache, allow_download=not args.no_download, log=quiet)
            root = pkgs[tux12.PACKAGE].path(tux12.STAMPS_DIR)
        stamps = {s.id: s for s in tux12.discover(root)} if root.is_dir() else {}
    except CliError as exc:
        stamps, reason = {}, f": {exc}"
    if not stamps:
        log(f"note: showing stamp ids only; captions and media files need the stamps of Debian's {tux12.PACKAGE} "
            f"(fetched as for make data-tux12, or --stamps-dir DIR){reason}")
        return None, None
    return root, {i: {"caption": s.caption, "image": s.image.relative_to(root).as_posix(),
                      "speech": s.speech.relative_to(root).as_posix()} for i, s in stamps.items()}


def format_results(results, media) -> list[str]:
    """One block per gallery: rank, score, class, stamp id, caption, and the media file of that modality."""
    lines = []
    for res in results:
        lines.append(f"nearest stamps by {GALLERIES.get(res.modality, res.modality)} ({res.modality}, "
                     f"{res.index.count} stamps):")
        for hit in res.hits(0):
            info = (media or {}).get(hit.id, {})
            caption = f"  \"{info['caption']}\"" if info.get("caption") else ""
            lines.append(f"  {hit.rank:>2}  {hit.score:6.3f}  {hit.class_name or '-':<10} {hit.id}{caption}")
            path = info.get("image" if res.modality == "image" else "speech") if res.modality != "text" else None
            if path:
                lines.append(f"              {path}")
    return lines


# --------------------------------------------------------------------------- command line


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m data_prep.search_demo", description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("query", metavar="QUERY", help="a picture, a sound clip, or a sentence")
    p.add_argument("--modality", choices=MODALITIES, help="the query's modality [from the file suffix; text otherwise]")
    p.add_argument("--k", type=int, default=3, help="stamps shown per gallery [3]")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"training epochs of the cached space [{DEFAULT_EPOCHS}]")
    p.add_argument("--cache", type=Path, default=REPO_ROOT / "runs" / "search-demo",
                   help="where the space, export and indexes are kept [runs/search-demo]")
    p.add_argument("--dataprep-python", type=Path, default=DATAPREP_PYTHON,
                   help="Python of the data-prep environment [.venv-dataprep/bin/python]")
    p.add_argument("--data-cache", type=Path, default=DEFAULT_CACHE,
                   help="Debian packages and assembled models, as for make data-tux12 [data_cache]")
    p.add_argument("--stamps-dir", help="an unpacked Tux Paint stamps folder (captions and media files)")
    p.add_argument("--no-download", action="store_true", help="never apt-get download the stamps package")
    p.add_argument("--extract-to", type=Path, help=argparse.SUPPRESS)  # step 4 (internal)
    return p


def search(args, log=print) -> list[str]:
    """Steps 1-5 for ``args``; returns the printed lines."""
    from cvs_tf.data.registry import dataset_path
    from cvs_tf.data.store import load_feature_set
    from cvs_tf.retrieval import Searcher

    if args.k < 1 or args.epochs < 1:
        raise CliError(f"--k and --epochs must be >= 1, got {args.k} and {args.epochs}")
    modality = query_modality(args.query, args.modality)
    fs = load_feature_set(dataset_path(DATASET))
    root = cache_dir(Path(args.cache), fs, args.epochs)
    export = ensure_export(root, args.epochs, log)
    indexes = ensure_indexes(root, export, fs, log)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="query-", dir=root) as work:
        log(f"extracting {modality} features of the query with the shipped extractor (data-prep environment)")
        x = run_extractor(args.dataprep_python, args.query, modality, Path(work), args.data_cache)
    stamps_root, media = stamp_media(args, log)
    results = Searcher(export, [indexes[m] for m in GALLERIES]).search(modality, x, k=args.k)
    what = args.query if modality == "text" else Path(args.query).name
    lines = [f"query: {modality} {what!r} ({x.shape[1]}-d features), space {shown(export)} ({args.epochs} epochs)"]
    if stamps_root is not None:
        lines.append(f"media files below {shown(stamps_root)}")
    lines += format_results(results, media)
    for line in lines:
        print(line)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.extract_to is not None:  # step 4, inside the data-prep environment
        modality = query_modality(args.query, args.modality)
        x = np.asarray(extract_features(args.query, modality, args.data_cache), dtype=np.float32)
        np.save(args.extract_to, x.reshape(1, -1))
        return 0
    search(args, log=lambda msg: print(f"[search-demo] {msg}", file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
