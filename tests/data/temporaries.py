"""Test helpers: fake temporaries of dead or live writers, as a killed writer leaves them beside its target."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path


def dead_pid() -> int:
    """The pid of a process that has just exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def host() -> str:
    """This host's name as temporaries carry it."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


def fake_temp(parent: Path, target: str, pid: int, hostname: str | None = None) -> Path:
    """A temporary ``.TARGET.tmp-PID@HOST-...`` holding one partial file, as writer ``pid`` left it."""
    tmp = parent / f".{target}.tmp-{pid}@{hostname or host()}-abcd_123"
    tmp.mkdir(parents=True)
    (tmp / "image.train.x.npy").write_bytes(b"\0" * 1000)
    return tmp
