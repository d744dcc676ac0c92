"""Atomic writes: build a file or directory beside its target under a temporary name, then rename it into place.

Temporaries are named ``.NAME.tmp-PID@HOST-XXXXXXXX``; every new one first removes those whose
writer (same host) is dead, so a ``kill -9`` leaves nothing behind for long. A target that
``overwrite`` replaces is renamed aside first; :mod:`cvs_tf.utils.output` names it
``.NAME.previous`` (never taken for a temporary) so that the old output survives a kill.

``CVS_TF_FAULT_POINT=NAME`` (tests only) makes the process SIGKILL itself at :func:`fault_point` NAME.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

LEGACY_TEMP_AGE_S = 24 * 3600  # an old-style temporary (no pid in its name) untouched this long is stale
_TEMP = re.compile(r"\.(?P<target>.+)\.tmp-(?P<pid>\d+)@(?P<host>.+)-[a-z0-9_]+(?:\.[A-Za-z0-9]+)?")
_LEGACY_TEMP = re.compile(r"\.(?P<target>.+)\.tmp-[a-z0-9_]{8}")
_FIXED_TEMP = re.compile(r"\.(?P<target>.+)\.tmp")  # the hand-written ``.NAME.tmp`` of earlier versions


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


FAULT_ENV = "CVS_TF_FAULT_POINT"


_FAULT_HITS: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Test hook: SIGKILL this process here when ``$CVS_TF_FAULT_POINT`` is ``name`` (kill -9 tests).

    ``NAME@N`` kills at the N-th time the process reaches point NAME.
    """
    point, _, nth = os.environ.get(FAULT_ENV, "").partition("@")
    if point != name:
        return
    _FAULT_HITS[name] = _FAULT_HITS.get(name, 0) + 1
    if _FAULT_HITS[name] == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (another user's process counts as alive; a zombie does not)."""
    if pid <= 0:
        return True  # not a real pid: never treat it as dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: a live process of another user
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed process its parent has not reaped yet: it can write nothing any more (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")


def rename_noreplace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` to ``dst``; ``FileExistsError`` if ``dst`` exists (even an empty directory).

    Linux's ``renameat2(RENAME_NOREPLACE)`` makes the check and the rename one step; elsewhere
    (or on a file system without it) the check comes just before the rename.
    """
    if not _renameat2_noreplace(os.fspath(src), os.fspath(dst)):
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "File exists", os.fspath(dst))
        os.rename(src, dst)


_AT_FDCWD, _RENAME_NOREPLACE = -100, 1


def _renameat2_noreplace(src: str, dst: str) -> bool:
    """True once renamed; False where renameat2 is missing or unsupported; raises OSError otherwise."""
    libc = _libc()
    if libc is None:
        return False
    rc = libc.renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), dst if err == errno.EEXIST else src)


@functools.cache
def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    except (OSError, AttributeError):
        return None
    return libc


def temporary_of(name: str) -> str | None:
    """The target name a directory entry ``name`` is a temporary of (any naming used so far), else None."""
    for pattern in (_TEMP, _LEGACY_TEMP, _FIXED_TEMP):
        if m := pattern.fullmatch(name):
            return m["target"]
    return None


def remove_stale_temporaries(target: str | os.PathLike, *, legacy_age_s: float = LEGACY_TEMP_AGE_S) -> list[Path]:
    """Remove the temporaries beside ``target`` that dead writers left behind; returns the removed paths.

    ``.NAME.tmp-PID@HOST-XXXXXXXX`` (any NAME) is removed when HOST is this host and process PID no
    longer exists; a live process's temporary and other hosts' are never touched. An old-style
    temporary of ``target`` itself (``.NAME.tmp-XXXXXXXX``, written before names carried the pid)
    is removed once it has been untouched for ``legacy_age_s`` seconds.
    """
    target = Path(target)
    parent, host, removed = target.parent, _host(), []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(".") or ".tmp-" not in entry.name:
            continue
        if m := _TEMP.fullmatch(entry.name):
            stale = m["host"] == host and not pid_alive(int(m["pid"]))
        elif m := _LEGACY_TEMP.fullmatch(entry.name):
            try:
                age = time.time() - entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            stale = m["target"] == target.name and age > legacy_age_s
        else:
            continue
        if stale:
            _discard(Path(entry.path))
            if not os.path.lexists(entry.path):
                removed.append(parent / entry.name)
    return sorted(removed)


PREVIOUS_SUFFIX = ".previous"


def previous_path(target: str | os.PathLike) -> Path:
    """Where an overwrite keeps the old output until the new one is in place: ``.NAME.previous``
    (never taken for a dead writer's temporary)."""
    target = Path(target)
    return target.parent / f".{target.name}{PREVIOUS_SUFFIX}"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temporary(target: str | os.PathLike) -> Path:
    """A new private directory beside ``target`` to build it in, named ``.NAME.tmp-PID@HOST-XXXXXXXX``.

    Stale temporaries of dead writers in the same parent are removed first.
    """
    target = Path(target)
    remove_stale_temporaries(target)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}@{_host()}-", dir=target.parent))


def make_temporary_file(target: str | os.PathLike, *, suffix: str = "") -> Path:
    """A new empty file beside ``target`` named ``.NAME.tmp-PID@HOST-XXXXXXXX`` + ``suffix`` (stale ones removed first).

    ``suffix`` (e.g. ``".keras"``) is for writers that pick the format from the file name.
    """
    target = Path(target)
    if suffix and not re.fullmatch(r"\.[A-Za-z0-9]+", suffix):
        raise ValueError(f"temporary suffix must be a dot and letters or digits, got {suffix!r}")
    remove_stale_temporaries(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-{os.getpid()}@{_host()}-", suffix=suffix,
                                dir=target.parent)
    os.close(fd)
    return Path(name)


def _discard(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, *, overwrite: bool = False,
               backup: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a private temporary directory; on success it replaces ``target`` in one rename.

    On any exception the temporary is removed and ``target`` is untouched. An existing ``target``
    is refused (``FileExistsError``) unless ``overwrite``, also when it appears while the caller
    writes (even an empty directory); with ``overwrite`` the old one is moved aside and
    removed only after the new one is in place. ``backup`` names where it is moved, for a caller
    that recovers from a kill between the two renames by renaming ``backup`` back when ``target``
    is missing; by default it is :func:`previous_path`, which the next ``atomic_dir`` of the same
    target renames back itself.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target}: already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    if overwrite and backup is None:
        prev = previous_path(target)
        if os.path.lexists(prev) and not os.path.lexists(target):
            rename_noreplace(prev, target)  # an earlier overwrite was killed between its renames
        backup = prev
    tmp = make_temporary(target)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # once renamed, the permissions of a plain mkdir
        yield tmp
        fault_point("output-built")
        _swap_in(tmp, target, Path(backup) if overwrite else None)
    except BaseException:
        _discard(tmp)
        raise


def _swap_in(tmp: Path, target: Path, backup: Path | None) -> None:
    """Rename ``tmp`` onto ``target``: without ``backup`` never over anything; else an existing
    ``target`` goes to ``backup`` first and is removed last."""
    if backup is None:
        try:
            rename_noreplace(tmp, target)  # a target that appeared meanwhile is never replaced
        except FileExistsError:
            raise FileExistsError(f"{target}: appeared while it was being written; left as it is "
                                  "(nothing was written)") from None
        return
    old = None
    if os.path.lexists(target):
        old = backup
        _discard(old)
        os.replace(target, old)
        fault_point("output-aside")
    os.replace(tmp, target)
    fault_point("output-swapped")
    if old is not None:
        _discard(old)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield the path of a new empty temporary file beside ``target``, for writers that want a path.

    On success the file replaces ``target`` in one rename; on any exception it is removed and
    ``target`` is untouched. ``suffix``: see :func:`make_temporary_file`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temporary_file(target, suffix=suffix)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # once renamed, the permissions of a plain open(..., "w")
        yield tmp
        fault_point("output-built")
        os.replace(tmp, target)
        fault_point("output-swapped")
    except BaseException:
        _discard(tmp)
        raise


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator:
    """Open a temporary file beside ``target``; on success it replaces ``target`` in one rename.

    ``mode`` is ``"w"`` (text) or ``"wb"``; on any exception the temporary is removed and
    ``target`` is untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_file mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(target) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(target: str | os.PathLike, obj, *, default=None) -> None:
    """``json.dump(obj)`` (indent 2, trailing newline) into ``target`` atomically."""
    with atomic_file(target) as f:
        json.dump(obj, f, indent=2, default=default)
        f.write("\n")
