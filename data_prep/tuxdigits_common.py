"""Shared build plumbing for the Tux-12 and Digits-10 benchmarks: Debian packages, splits, progress, rebuild checks.

Debian packages are never installed system-wide: each one is taken from ``<cache>/deb/*.deb``
(fetched with ``apt-get download`` when missing) and unpacked with ``dpkg-deb -x`` into
``<cache>/root/<package>_<version>/``. A package that is already installed on the system is
used in place when no ``.deb`` is cached. The default cache is ``data_cache/`` at the
repository root (git-ignored).

Every failure a user can fix (a missing Debian package, a missing Python package, a bad
argument) is raised as :class:`cvs_tf.utils.cli.CliError`, which the scripts print as one
``error: ...`` line naming the command that fixes it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvs_tf.data.encoders.offline import DATAPREP_INSTALL  # noqa: F401 (re-exported)
from cvs_tf.data.store import SPLITS, load_feature_set, stratified_holdout
from cvs_tf.utils.atomic import atomic_dir
from cvs_tf.utils.cli import ArgumentParser, CliError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / "data_cache"
APT_TIMEOUT_S = 900
DPKG_TIMEOUT_S = 300


# --------------------------------------------------------------------------- progress


class Progress:
    """Prints ``[name] message (elapsed s)`` lines on stderr; silent when ``quiet``."""

    def __init__(self, name: str, quiet: bool = False, stream=None):
        self.name = name
        self.quiet = quiet
        self.stream = stream
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{self.name}] {message} ({time.monotonic() - self.t0:.0f} s)",
                  file=self.stream or sys.stderr, flush=True)

    def every(self, what: str, i: int, n: int, step: int = 50) -> None:
        """Report item ``i`` of ``n`` (1-based) every ``step`` items and at the end."""
        if i == n or i % step == 0:
            self(f"{what} {i}/{n}")


# --------------------------------------------------------------------------- Debian packages


@dataclass(frozen=True)
class DebPackage:
    """A Debian package's files available on disk: ``root`` holds its ``usr/share/...`` tree."""

    name: str
    version: str
    root: Path
    origin: str  # "cache" (unpacked .deb) or "system" (installed package)

    def path(self, rel: str) -> Path:
        return self.root / rel


def _run(cmd: Sequence[str], *, cwd=None, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def install_hint(names: Sequence[str], deb_dir: str | Path = "data_cache/deb") -> str:
    joined = " ".join(names)
    return f"run: apt-get update && apt-get install -y {joined} (or: cd {deb_dir} && apt-get download {joined})"


def cached_deb(name: str, deb_dir: Path) -> Path | None:
    """The newest-looking cached ``<name>_<version>_<arch>.deb`` in ``deb_dir`` (sorted by file name)."""
    hits = sorted(glob.glob(str(deb_dir / f"{glob.escape(name)}_*.deb")))
    return Path(hits[-1]) if hits else None


def deb_field(deb: Path, fld: str) -> str:
    """One control field of a .deb (``dpkg-deb -f``)."""
    if shutil.which("dpkg-deb") is None:
        raise CliError(f"{deb.name}: dpkg-deb not found; run: apt-get install -y dpkg")
    res = _run(["dpkg-deb", "-f", str(deb), fld], timeout=DPKG_TIMEOUT_S)
    if res.returncode != 0:
        raise CliError(f"{deb}: not a readable Debian package ({res.stderr.strip() or 'dpkg-deb failed'})")
    return res.stdout.strip()


def system_version(name: str) -> str | None:
    """Version of ``name`` if it is installed on this system, else None."""
    if shutil.which("dpkg-query") is None:
        return None
    try:
        res = _run(["dpkg-query", "-W", "-f=${Status}\t${Version}", name], timeout=60)
    except subprocess.TimeoutExpired:
        return None
    if res.returncode != 0 or "\t" not in res.stdout:
        return None
    status, version = res.stdout.split("\t", 1)
    return version.strip() if status.strip().endswith(" installed") else None


def unpack(deb: Path, cache: Path) -> Path:
    """Unpack ``deb`` into ``<cache>/root/<package>_<version>`` (atomically; reused when present)."""
    name, version = deb_field(deb, "Package"), deb_field(deb, "Version")
    dest = cache / "root" / f"{name}_{version.replace(':', '%3a')}"
    if (dest / ".unpacked").is_file():
        return dest
    with atomic_dir(dest, overwrite=True) as tmp:  # also removes what a killed unpack left behind
        res = _run(["dpkg-deb", "-x", str(deb), str(tmp)], timeout=DPKG_TIMEOUT_S)
        if res.returncode != 0:
            raise CliError(f"{deb}: dpkg-deb -x failed ({res.stderr.strip()})")
        (tmp / ".unpacked").write_text(f"{name} {version}\n")
    return dest


def download(name: str, deb_dir: Path) -> Path:
    """``apt-get download name`` into ``deb_dir``; CliError naming the install command on failure."""
    if shutil.which("apt-get") is None:
        raise CliError(f"Debian package {name} is missing and apt-get is not available; {install_hint([name], deb_dir)}")
    deb_dir.mkdir(parents=True, exist_ok=True)
    try:
        res = _run(["apt-get", "download", name], cwd=deb_dir, timeout=APT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CliError(f"Debian package {name}: apt-get download timed out after {APT_TIMEOUT_S} s; "
                       f"{install_hint([name], deb_dir)}") from None
    deb = cached_deb(name, deb_dir)
    if res.returncode != 0 or deb is None:
        why = " ".join((res.stderr or res.stdout).split())[-200:] or f"exit status {res.returncode}"
        raise CliError(f"Debian package {name} is missing and apt-get download failed ({why}); "
                       f"{install_hint([name], deb_dir)}")
    return deb


def ensure_packages(names: Sequence[str], cache: Path, *, allow_download: bool = True,
                    log: Progress | None = None) -> dict[str, DebPackage]:
    """Locate every package in ``names``: cached .deb, else installed, else download (if allowed).

    Raises one CliError listing every package that could not be had, with the install command.
    """
    cache = Path(cache)
    deb_dir = cache / "deb"
    found: dict[str, DebPackage] = {}
    missing: list[str] = []
    for name in names:
        deb = cached_deb(name, deb_dir)
        if deb is not None:
            found[name] = DebPackage(name, deb_field(deb, "Version"), unpack(deb, cache), "cache")
            continue
        version = system_version(name)
        if version is not None:
            found[name] = DebPackage(name, version, Path(os.sep), "system")
            continue
        missing.append(name)
    if missing and not allow_download:
        raise CliError(f"Debian package(s) {', '.join(missing)} not in {deb_dir} and not installed; "
                       f"{install_hint(missing, deb_dir)}")
    for name in missing:
        if log:
            log(f"apt-get download {name}")
        deb = download(name, deb_dir)
        found[name] = DebPackage(name, deb_field(deb, "Version"), unpack(deb, cache), "cache")
    if log:
        for p in found.values():
            log(f"Debian package {p.name} {p.version} ({p.origin})")
    return found


# --------------------------------------------------------------------------- splits


def stratified_test_mask(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded, class-stratified test mask: ``round(test_fraction * n_c)`` items of each class."""
    return stratified_holdout(np.asarray(labels), test_fraction, seed)


def split_rows(n: int, labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Row indices of a stratified train/test split (each in ascending order)."""
    mask = stratified_test_mask(labels, test_fraction, seed)
    rows = np.arange(n)
    return {"train": rows[~mask], "test": rows[mask]}


# --------------------------------------------------------------------------- rebuild check


def float16_ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in float16 units-in-the-last-place between two float16 arrays (0 = identical)."""
    def ordered(x):
        i = np.ascontiguousarray(x, dtype=np.float16).view(np.int16).astype(np.int32)
        return np.where(i < 0, -32768 - i, i)  # monotone map of the float16 bit patterns
    return np.abs(ordered(a) - ordered(b))


def _ids_of(ids: Mapping, modality: str) -> Mapping[str, list]:
    """The item ids of one modality: its own entry (class-paired sets) or the single shared one."""
    if modality in ids:
        return ids[modality]
    if len(ids) == 1:
        return next(iter(ids.values()))
    raise KeyError(f"no item ids for modality {modality!r}")


def compare_feature_sets(new: Mapping, ref_dir: str | Path, *, subset: bool = False,
                         max_ulp: int = 1) -> tuple[bool, list[str]]:
    """Compare freshly built data ``new`` (modality -> split -> (x, y), plus ``new["item_ids"]``)
    with the feature set at ``ref_dir``, item by item (rows matched by item id).

    Every new item must exist in the reference with the same class name, and its features, cast
    to float16, may differ by at most ``max_ulp`` float16 ulps (a value next to a rounding
    boundary). Unless ``subset`` (a ``--limit`` build), the split assignment and row order must
    be identical too. Returns (ok, report lines).
    """
    ref = load_feature_set(ref_dir, mmap=False)
    ok, lines = True, []
    mods = [m for m in new if m != "item_ids"]
    if sorted(mods) != sorted(ref.modalities):
        return False, [f"modalities {sorted(mods)} differ from {sorted(ref.modalities)}"]
    ref_ids, new_ids = ref.manifest.get("item_ids", {}), new["item_ids"]
    for m in mods:
        rid, nid = _ids_of(ref_ids, m), _ids_of(new_ids, m)
        where = {i: (s, r) for s in SPLITS for r, i in enumerate(rid[s])}
        if not subset and any(list(rid[s]) != list(nid[s]) for s in SPLITS):
            ok = False
            lines.append(f"{m}: split assignment or row order differs from {ref_dir}")
        worst, n_diff, n_vals, max_abs, missing, bad_label = 0, 0, 0, 0.0, 0, 0
        for s in SPLITS:
            x, y = new[m][s]
            for row, item in enumerate(nid[s]):
                if item not in where:
                    missing += 1
                    continue
                rs, rr = where[item]
                if ref.classes[int(ref.y(m, rs)[rr])] != ref.classes[int(y[row])]:
                    bad_label += 1
                a = np.asarray(x[row], dtype=np.float16)
                b = ref.x(m, rs)[rr]
                d = float16_ulp_distance(a, b)
                worst = max(worst, int(d.max()))
                n_diff += int(np.count_nonzero(d))
                n_vals += d.size
                max_abs = max(max_abs, float(np.abs(a.astype(np.float32) - b.astype(np.float32)).max()))
        good = worst <= max_ulp and not missing and not bad_label
        ok &= good
        n_items = sum(len(nid[s]) for s in SPLITS)
        lines.append(f"{m}: {n_items} items, {n_diff}/{n_vals} values differ, max {worst} float16 ulp, "
                     f"max |diff| {max_abs:.3g}, {missing} missing, {bad_label} relabelled: "
                     f"{'ok' if good else 'MISMATCH'}")
    return ok, lines


# --------------------------------------------------------------------------- command line


def base_parser(prog: str, description: str, default_out: str) -> ArgumentParser:
    """The options both build scripts share."""
    p = ArgumentParser(prog=prog, description=description)
    p.add_argument("--out", default=default_out, help=f"output feature-set directory (default {default_out})")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--cache", default=None,
                   help="cache for .deb files, unpacked packages and assembled models (default: data_cache/ at the repository root)")
    p.add_argument("--no-download", action="store_true",
                   help="never run apt-get download; fail with the install command if a package is missing")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="at most N items per class and modality (quick tests); the full build has no limit")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the extractors (default 2)")
    p.add_argument("--compare", default=None, metavar="DIR",
                   help="after building, compare with the feature set at DIR item by item (exit 1 if beyond float16 "
                        "rounding); with --limit, each rebuilt item is checked against the same item in DIR")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def check_args(args) -> None:
    if args.limit is not None and args.limit < 2:
        raise CliError(f"--limit must be >= 2 (each class needs train and test items), got {args.limit}")
    if args.threads < 1:
        raise CliError(f"--threads must be >= 1, got {args.threads}")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CliError(f"{out}: output directory already exists (pass --overwrite to replace it)")
    if args.compare is not None and not (Path(args.compare) / "manifest.json").is_file():
        raise CliError(f"--compare {args.compare}: not a feature-set directory (no manifest.json)")
