"""An exclusive, non-blocking lock (``fcntl.flock``) on a run directory or beside an output, naming its holder's pid."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from cvs_tf.utils.atomic import pid_alive

LOCK_FILE = ".lock"


class RunDirLockedError(ValueError):
    """Another process holds the run directory's lock."""


class RunDirLock:
    """Held for a whole training run; the kernel drops it when the process dies (even on ``kill -9``).

    The holder writes its pid into the lock file and empties it before unlocking, so a process
    refused the lock can name the holder.
    """

    def __init__(self, run_dir: str | os.PathLike, *, path: str | os.PathLike | None = None,
                 noun: str = "run directory", transient: bool = False):
        """``path``: the lock file [``RUN_DIR/.lock``]; ``noun`` names what is locked in the refusal;
        ``transient``: the lock file is removed on release (a lock beside an output, not inside it)."""
        self.run_dir = Path(run_dir)
        self.path = Path(path) if path is not None else self.run_dir / LOCK_FILE
        self.noun = noun
        self.transient = transient
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunDirLock:
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            os.close(fd)
            pid = self.holder_pid()
            who = f"pid {pid}" if pid else "another process (pid not yet recorded)"
            raise RunDirLockedError(
                f"{self.run_dir}: {self.noun} is in use by {who} (lock {self.path}); "
                "wait for it to finish or use another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if self.transient and not self._still_linked(fd):  # locked a file its last holder just removed
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            return self.acquire()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def _still_linked(self, fd: int) -> bool:
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def holder_pid(self, wait_s: float = 2.0) -> int | None:
        """The pid recorded by the holder (it writes it just after locking: wait briefly for it)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                text = self.path.read_text().strip()
            except OSError:
                text = ""
            if text.isdigit() and int(text) != os.getpid() and pid_alive(int(text)):
                return int(text)
            if text.isdigit() and int(text) == os.getpid():
                return os.getpid()  # held through another open file in this process
            if time.monotonic() >= deadline:
                return int(text) if text.isdigit() else None
            time.sleep(0.05)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self.transient:
                self.path.unlink(missing_ok=True)  # while still held: a waiter then sees a removed file
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunDirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
