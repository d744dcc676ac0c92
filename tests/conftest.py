"""Shared pytest fixtures: quiet TF logs, fixed seeds, and small synthetic feature sets."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from cvs_tf.data.store import carve_validation, save_feature_set


def make_toy_featureset(path, *, modalities=None, n_classes=4, n_train=40, n_test=12,
                        paired=False, seed=0, label_kind="single", name="toy"):
    """A tiny separable feature set written with the real store (for tests)."""
    rng = np.random.default_rng(seed)
    modalities = modalities or {"image": 16, "text": 12, "audio": 6}
    centers = rng.normal(size=(n_classes, 8))
    data = {}
    ytr = np.arange(n_train) % n_classes
    yte = np.arange(n_test) % n_classes
    for i, (m, d) in enumerate(modalities.items()):
        proj = rng.normal(size=(8, d))
        cnt_tr = n_train if paired else n_train + 4 * i
        cnt_te = n_test if paired else n_test + n_classes * (i % 2)
        a = ytr if paired else np.arange(cnt_tr) % n_classes
        b = yte if paired else np.arange(cnt_te) % n_classes
        xtr = centers[a] @ proj + 0.3 * rng.normal(size=(cnt_tr, d))
        xte = centers[b] @ proj + 0.3 * rng.normal(size=(cnt_te, d))
        if label_kind == "multi":
            a = np.eye(n_classes, dtype=np.uint8)[a]
            b = np.eye(n_classes, dtype=np.uint8)[b]
        data[m] = {"train": (xtr.astype(np.float32), a), "test": (xte.astype(np.float32), b)}
    data = carve_validation(data, 0.1, seed, paired=paired)
    return save_feature_set(
        path, name, data, [f"class{c}" for c in range(n_classes)],
        label_kind=label_kind, pairing="instance" if paired else "class",
        provenance={"synthetic": True, "converter": "tests.conftest"},
        validation={"fraction": 0.1, "seed": seed},
    )


@pytest.fixture
def toy_set(tmp_path):
    """Path of a small class-aligned 3-modality feature set."""
    return make_toy_featureset(tmp_path / "toy")


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """``(run_dir, export_dir, dataset)``: a one-step CVS run (image, text; D = 8) and its export, made once.

    For the tests of what the writing commands do with existing outputs, kills and concurrent writers.
    """
    import json

    from cvs_tf.cli.train import main as train
    from cvs_tf.serving.export import export_run

    tmp = tmp_path_factory.mktemp("tiny")
    ds = make_toy_featureset(tmp / "ds", modalities={"image": 16, "text": 12}, paired=True)
    cfg = tmp / "small.json"
    cfg.write_text(json.dumps({"model": {"dim": 8}}))
    run = tmp / "run"
    assert train(["--space", "cvs", "--dataset", str(ds), "--config", str(cfg), "--epochs", "1", "--batch-size", "8",
                  "--steps-per-epoch", "1", "--no-jit", "--quiet", "--out", str(run)]) in (0, None)
    return run, export_run(run, tmp / "export"), ds


def one_error_line(capsys, code, *fragments) -> str:
    """Check exit 2 and exactly one ``error:`` line on stderr holding every fragment; return it."""
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, (f, err)
    return err.strip()


def dir_tree(d) -> dict:
    """``{relative path: bytes (None for a folder)}`` of everything under ``d``."""
    from pathlib import Path

    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else None for p in sorted(Path(d).rglob("*"))}


def run_killed(argv, point: str, *, timeout: float = 300):
    """Run ``python -m ARGV`` from the repository root with ``$CVS_TF_FAULT_POINT=point``; check it died of SIGKILL.

    ``Popen`` (not yet reaped) when ``point`` is prefixed with ``zombie:``: the caller must ``wait()`` it.
    """
    import subprocess
    import sys
    import time
    from pathlib import Path

    from cvs_tf.utils.atomic import FAULT_ENV

    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", *[str(a) for a in argv]]
    if point.startswith("zombie:"):
        proc = subprocess.Popen(cmd, cwd=repo, env={**os.environ, FAULT_ENV: point[7:]},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the command never reached its fault point"
            time.sleep(0.05)
        return proc
    proc = subprocess.run(cmd, cwd=repo, env={**os.environ, FAULT_ENV: point}, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == -9, f"exit {proc.returncode}, not killed at {point}: {proc.stderr[-2000:]}"
    return proc
