"""Shared by the slow rebuild tests: rebuild a few items of a shipped set through the real extractors and compare."""

import subprocess
from pathlib import Path

import pytest

from data_prep.tuxdigits_common import DEFAULT_CACHE, cached_deb, system_version

REPO = Path(__file__).resolve().parents[2]
DATAPREP_PY = REPO / ".venv-dataprep" / "bin" / "python"


def rebuild_and_compare(module: str, packages, shipped: Path, out: Path, limit: int = 2):
    """Run ``python -m module --limit`` in .venv-dataprep with --compare against the shipped set."""
    if not DATAPREP_PY.exists():
        pytest.skip(".venv-dataprep is absent (create it with `make .venv-dataprep`)")
    if not (shipped / "manifest.json").is_file():
        pytest.skip(f"{shipped} is not shipped in this checkout")
    absent = [p for p in packages if cached_deb(p, DEFAULT_CACHE / "deb") is None and system_version(p) is None]
    if absent:
        pytest.skip(f"Debian package(s) {', '.join(absent)} not in data_cache/deb (the make target fetches them)")
    cmd = [str(DATAPREP_PY), "-m", module, "--out", str(out), "--limit", str(limit), "--no-download",
           "--quiet", "--compare", str(shipped)]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert "equal within float16 rounding" in res.stdout
    return res.stdout
