"""The Trainer's run-directory state under its lock (fresh, restartable, resumable, used), and a non-chief worker's read-only view of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cvs_tf.training.checkpoint import Checkpoint
from cvs_tf.training.lock import LOCK_FILE, RunDirLock
from cvs_tf.training.run_dir import (
    RunDirError,
    clear_failed_start,
    has_completed_work,
    is_restartable,
)

__all__ = ["WorkerCheckpoint", "lock_run_dir", "prepare_run_dir", "refuse_used_dir", "remove_failed_start"]


def refuse_used_dir(run_dir: Path) -> None:
    """``RunDirError`` for a directory holding anything but a lock file and a restartable failed start."""
    if any(p.name != LOCK_FILE for p in run_dir.iterdir()) and not is_restartable(run_dir):
        raise RunDirError(f"{run_dir}: run directory is not empty (use --resume or a new --out)")


def lock_run_dir(run_dir: Path, created: bool, resume: bool) -> RunDirLock:
    """Create ``run_dir`` if needed and take its lock (a used directory is refused before a lock file is left in it)."""
    lock = RunDirLock(run_dir)
    if not (created or resume or lock.path.exists()) and run_dir.is_dir():
        refuse_used_dir(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RunDirError(f"{run_dir}: exists and is not a directory") from None
    try:
        return lock.acquire()
    except BaseException:
        if created:
            try:
                run_dir.rmdir()
            except OSError:
                pass
        raise


def prepare_run_dir(run_dir: Path, checkpoint: Checkpoint | None, resume: bool, log: Callable[[str], None]) -> bool:
    """Under the lock: check the directory's state (a failed start is cleared); True for a fresh start."""
    if resume:
        checkpoint.recover()
        if checkpoint.exists():
            checkpoint.validate()
            return False
        if has_completed_work(run_dir):
            raise RunDirError(f"{checkpoint.dir / 'state.json'}: missing, but the run has finished "
                              "work (corrupt run directory); nothing was changed")
        log(f"note: {run_dir} holds no completed epoch: starting it from the beginning")
        clear_failed_start(run_dir)
        return True
    if any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        refuse_used_dir(run_dir)
        log(f"note: {run_dir} holds a failed start (no completed epoch): starting it afresh")
        clear_failed_start(run_dir)
    return True


def remove_failed_start(run_dir: Path, created: bool, lock: RunDirLock) -> None:
    """Remove what a fresh run that completed no epoch wrote (and its lock file, if it made the directory)."""
    try:
        clear_failed_start(run_dir)
        if created:
            lock.path.unlink(missing_ok=True)
    except OSError:
        pass


class WorkerCheckpoint(Checkpoint):
    """A non-chief worker's view of the chief's checkpoint: read (resume), never written.

    Reads the previous checkpoint (``.checkpoint.old``) when a kill between the chief's two renames
    left only that one, as the chief's own :meth:`Checkpoint.recover` would put it back.
    """

    def __init__(self, run_dir: Path):
        super().__init__(run_dir)
        if not self.exists() and (self.backup / "state.json").is_file():
            self.dir = self.backup

    def recover(self) -> None:
        pass

    def save(self, model, state: dict, best_weights) -> None:
        pass
