"""A command's output directory, written safely: one writer at a time, nothing foreign replaced, a swap that survives kill -9.

:class:`OutputDir` is what ``export``, ``index build`` and ``data import`` write through:

- a lock beside the target (``.NAME.lock``, removed on release) refuses a second writer in one line;
- an existing target is replaced only with ``overwrite``, and only when it is empty or
  recognisably a cvs_tf output of that kind (its manifest's ``format`` field, and no file the
  manifest does not account for);
- the new output is built in a temporary beside the target (:mod:`cvs_tf.utils.atomic`); a target
  that appears or changes meanwhile is never replaced (the final rename refuses it);
- ``overwrite`` renames the old output to ``.NAME.previous`` (a name no cleanup takes for a dead
  writer's temporary), renames the new one into place, then removes the old one. A kill between
  the renames leaves ``.NAME.previous``: the next writer, or the next reader
  (:func:`recover_previous`), puts it back.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cvs_tf.utils.atomic import (
    _discard,
    _umask,
    fault_point,
    make_temporary,
    make_temporary_file,
    previous_path,
    rename_noreplace,
)
from cvs_tf.utils.lock import RunDirLock

LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class OutputKind:
    """What an output directory of one command is: its manifest file, the manifest's ``format``, and the
    top-level entries a manifest accounts for (``members(manifest)``, the manifest itself included)."""

    noun: str
    manifest: str
    fmt: str
    members: Callable[[dict], Iterable[str]]
    #: also recognised: a manifest of this kind written before it had a ``format`` field
    legacy: Callable[[dict], bool] | None = None


def lock_path(target: str | os.PathLike) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def foreign_reason(path: Path, kind: OutputKind) -> str | None:
    """Why the directory ``path`` is not recognisably a cvs_tf output of ``kind``; None when it is."""
    mpath = path / kind.manifest
    if not mpath.is_file():
        return f"no {kind.manifest}"
    try:
        manifest = json.loads(mpath.read_bytes())
    except (ValueError, OSError):
        return f"{kind.manifest} is not valid JSON"
    if not isinstance(manifest, dict) or (manifest.get("format") != kind.fmt and not (
            "format" not in manifest and kind.legacy is not None and kind.legacy(manifest))):
        return f"{kind.manifest} is not a {kind.fmt!r} manifest"
    try:
        expected = {kind.manifest, *kind.members(manifest)}
    except (TypeError, AttributeError, KeyError, ValueError):
        return f"{kind.manifest} does not list its files"
    extra = sorted(e.name for e in path.iterdir() if e.name not in expected)
    if extra:
        return f"it also holds {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}, not part of {_a(kind.noun)}"
    return None


def refusal(path: str | os.PathLike, kind: OutputKind, *, overwrite: bool) -> str | None:
    """Why the command may not write its output at ``path`` (one line); None when it may.

    Nothing there, or an empty directory, may be written; with ``overwrite``, also an output of ``kind``."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        return f"{path}: name a new directory to write (not {str(path)!r} itself)"
    if path.parent.exists() and not path.parent.is_dir():
        return f"{path.parent}: not a directory"
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_dir():
        return f"{path}: exists and is not a directory"
    if not any(path.iterdir()):
        return None
    if not overwrite:
        return f"{path}: exists and is not empty (pass --overwrite to replace {_a(kind.noun)})"
    reason = foreign_reason(path, kind)
    if reason:
        return f"{path}: not {_a(kind.noun)} written by cvs_tf ({reason}); refusing to replace it"
    return None


def _make_parents(path: Path) -> list[Path]:
    """Create ``path``'s missing parent folders; returns them (for :func:`_remove_made`)."""
    made = [p for p in reversed(path.parents) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    return made


def _remove_made(made: list[Path]) -> None:
    """Remove the folders :func:`_make_parents` created, deepest first, where still empty."""
    for p in reversed(made):
        with contextlib.suppress(OSError):
            p.rmdir()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _lock(target: Path, noun: str):
    """The lock of an output (``.NAME.lock`` beside it, removed on release)."""
    return RunDirLock(target, path=lock_path(target), noun=f"{noun} output", transient=True)


def _recover(target: Path, kind: OutputKind) -> None:
    """Under the lock: finish or undo a swap a kill cut short (see the module docstring)."""
    prev = previous_path(target)
    if not os.path.lexists(prev) or refusal(prev, kind, overwrite=True) is not None:
        return  # nothing left by a swap, or not ours: left alone
    if not os.path.lexists(target):
        rename_noreplace(prev, target)  # killed between the renames: the old output comes back
    elif refusal(target, kind, overwrite=True) is None:
        _discard(prev)  # killed after the new output was in place


def recover_previous(target: str | os.PathLike, kind: OutputKind) -> None:
    """For readers: put back an old output a killed ``overwrite`` left as ``.NAME.previous``.

    Does nothing while a writer holds the output's lock, or when nothing was left."""
    target = Path(target)
    if not os.path.lexists(previous_path(target)):
        return
    lock = _lock(target, kind.noun)
    try:
        lock.acquire()
    except (OSError, ValueError):
        return  # a writer is at work (it recovers itself), or the folder is read-only
    try:
        _recover(target, kind)
    except OSError:
        pass
    finally:
        lock.release()


class OutputDir:
    """The output directory ``target`` of one command, held from the checks to the swap.

    ``with OutputDir(...) as out:`` checks the target and takes its lock (refusals raise ``error``
    with one line); ``with out.build() as tmp:`` yields a private directory, swapped in on success.
    """

    def __init__(self, target: str | os.PathLike, kind: OutputKind, *, overwrite: bool = False,
                 error: type[Exception] = ValueError):
        self.target, self.kind, self.overwrite, self.error = Path(target), kind, overwrite, error
        self._lock = None
        self._made: list[Path] = []
        self._before: tuple[int, int] | None = None

    def __enter__(self) -> OutputDir:
        target = self.target
        if msg := refusal(target, self.kind, overwrite=self.overwrite):
            raise self.error(msg)
        self._made = _make_parents(target)
        lock = _lock(target, self.kind.noun)
        try:
            lock.acquire()
        except ValueError as exc:  # RunDirLockedError: one line naming the holder
            _remove_made(self._made)
            raise self.error(str(exc)) from None
        self._lock = lock
        try:
            _recover(target, self.kind)
            if msg := refusal(target, self.kind, overwrite=self.overwrite):
                raise self.error(msg)
            self._before = _identity(target)
        except BaseException:
            self._release(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._release(failed=exc_type is not None)

    def _release(self, *, failed: bool) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if failed:
            _remove_made(self._made)

    @contextlib.contextmanager
    def build(self) -> Iterator[Path]:
        """A new private directory beside the target; on success it becomes the target (see the module docstring)."""
        if self._lock is None:
            raise RuntimeError("OutputDir.build() outside its with-block")
        tmp = make_temporary(self.target)
        try:
            os.chmod(tmp, 0o777 & ~_umask())  # once renamed, the permissions of a plain mkdir
            yield tmp
            fault_point("output-built")
            self._swap(tmp)
        except BaseException:
            _discard(tmp)
            raise

    def _changed(self) -> Exception:
        return self.error(f"{self.target}: appeared or changed while the {self.kind.noun} was being written; "
                          f"left as it is (the new {self.kind.noun} was not written)")

    def _swap(self, tmp: Path) -> None:
        target, prev = self.target, previous_path(self.target)
        if _identity(target) != self._before:
            raise self._changed()
        if self._before is None:
            try:
                rename_noreplace(tmp, target)
            except FileExistsError:
                raise self._changed() from None
            return
        try:
            rename_noreplace(target, prev)
        except FileExistsError:
            raise self.error(f"{prev}: exists; move it away to replace {target}") from None
        if _identity(prev) != self._before or refusal(prev, self.kind, overwrite=True) is not None:
            rename_noreplace(prev, target)  # not what was checked at the start: put it back untouched
            raise self._changed()
        fault_point("output-aside")
        try:
            rename_noreplace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                rename_noreplace(prev, target)
            raise
        fault_point("output-swapped")
        _discard(prev)


class OutputFiles:
    """Files one command writes side by side (``evaluate --out``), held from the checks to the last rename.

    ``with OutputFiles(paths, ...) as out:`` refuses (``error``, one line) a second writer (lock beside
    the first path), an existing file without ``overwrite``, and with it a file ``recognise(path)``
    does not take for one of its kind. ``with out.write(path) as tmp:`` yields a temporary file
    beside ``path``, renamed onto it on success (a file replaced by rename is the old one or the new
    one, never neither); a file that appears or changes meanwhile is never replaced.
    """

    def __init__(self, paths: Iterable[str | os.PathLike], *, noun: str, recognise: Callable[[Path], bool],
                 overwrite: bool = False, error: type[Exception] = ValueError):
        self.paths = [Path(p) for p in paths]
        self.noun, self.recognise, self.overwrite, self.error = noun, recognise, overwrite, error
        self._lock = None
        self._made: list[Path] = []
        self._before: dict[Path, tuple[int, int] | None] = {}

    def _refusal(self, path: Path) -> str | None:
        if not os.path.lexists(path):
            return None
        if path.is_symlink() or not path.is_file():
            return f"{path}: exists and is not a file"
        if not self.overwrite:
            return f"{path}: exists (pass --overwrite to replace it)"
        if not self.recognise(path):
            return f"{path}: not {_a(self.noun)} written by cvs_tf; refusing to replace it"
        return None

    def __enter__(self) -> OutputFiles:
        for p in self.paths:
            if p.parent.exists() and not p.parent.is_dir():
                raise self.error(f"{p.parent}: not a directory")
        self._made = _make_parents(self.paths[0])
        lock = _lock(self.paths[0], self.noun)
        try:
            lock.acquire()
        except ValueError as exc:
            _remove_made(self._made)
            raise self.error(str(exc)) from None
        self._lock = lock
        try:
            for p in self.paths:
                if msg := self._refusal(p):
                    raise self.error(msg)
                self._before[p] = _identity(p)
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if exc_type is not None:
            _remove_made(self._made)

    @contextlib.contextmanager
    def write(self, path: str | os.PathLike) -> Iterator[Path]:
        path = Path(path)
        if self._lock is None or path not in self._before:
            raise RuntimeError(f"OutputFiles.write({path}) outside its with-block or not among its paths")
        tmp = make_temporary_file(path)
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # once renamed, the permissions of a plain open(..., "w")
            yield tmp
            fault_point("output-built")
            changed = self.error(f"{path}: appeared or changed while it was being written; left as it is")
            if _identity(path) != self._before[path]:
                raise changed
            if self._before[path] is None:
                try:
                    rename_noreplace(tmp, path)
                except FileExistsError:
                    raise changed from None
            else:
                os.replace(tmp, path)
            fault_point("output-swapped")
        except BaseException:
            _discard(tmp)
            raise
