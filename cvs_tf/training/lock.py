"""The run directory's lock (``RUN_DIR/.lock``): :class:`cvs_tf.utils.lock.RunDirLock`, shared with every writing command."""

from cvs_tf.utils.lock import LOCK_FILE, RunDirLock, RunDirLockedError

__all__ = ["LOCK_FILE", "RunDirLock", "RunDirLockedError"]
