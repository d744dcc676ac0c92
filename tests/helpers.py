"""Plain helpers shared by the tests: toy feature sets, tiny configs and runs, error-line and output checks."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np

from cvs_tf.config import RunConfig
from cvs_tf.data.store import carve_validation, save_feature_set

REPO = Path(__file__).resolve().parents[1]
#: the train flags of a tiny CLI run (add --epochs and --out)
TINY_FLAGS = ("--batch-size", "8", "--no-jit", "--quiet", "--early-stopping", "none")


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
        provenance={"synthetic": True, "converter": "tests.helpers"},
        validation={"fraction": 0.1, "seed": seed},
    )


def rows_by_id(fs, modality) -> dict:
    """``{item id: feature row}`` over every split of ``modality`` of a loaded feature set with item ids."""
    ids = fs.manifest["item_ids"]["id"]
    return {i: fs.x(modality, s)[r] for s in ("train", "val", "test") for r, i in enumerate(ids[s])}


def tiny_config(space="cvs", *, dim=16, train=None, **model) -> RunConfig:
    """A RunConfig for tests: ``space`` at D = ``dim``, no XLA; ``model`` and ``train`` fields override (not validated)."""
    cfg = RunConfig()
    cfg.model.space, cfg.model.dim, cfg.train.jit = space, dim, False
    for k, v in model.items():
        setattr(cfg.model, k, v)
    for k, v in (train or {}).items():
        setattr(cfg.train, k, v)
    return cfg


def write_small_config(path, dim=16, **sections) -> Path:
    """A run config file (JSON, like users write) that shrinks D to ``dim``; ``sections`` add top-level keys."""
    path = Path(path)
    path.write_text(json.dumps({"model": {"dim": dim}, **sections}))
    return path


def train_tiny_run(out, dataset, *, dim=8, epochs=1, steps=1, seed=None, space=None) -> Path:
    """A finished run of ``python -m cvs_tf.train`` on ``dataset`` (batch 8, no XLA, no early stopping)."""
    from cvs_tf.cli.train import main as train
    from cvs_tf.utils.cli import run_cli

    out = Path(out)
    cfg = write_small_config(out.parent / f"{out.name}.config.json", dim)
    argv = ["--dataset", str(dataset), "--config", str(cfg), "--epochs", str(epochs), "--steps-per-epoch", str(steps),
            *TINY_FLAGS, "--out", str(out)]
    argv += ["--seed", str(seed)] if seed is not None else []
    argv += ["--space", space] if space else []
    assert run_cli(train, argv) == 0, "the tiny run did not finish"
    return out


class Crash(keras.callbacks.Callback):
    """Simulates the process being killed in the middle of an epoch."""

    def __init__(self, stage_epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = stage_epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise KeyboardInterrupt("killed")


def tensorboard_tags(run_dir, stage, split) -> set:
    """The tensor tags a run wrote to TensorBoard for ``stage`` (e.g. ``stage1-image_text``) and ``split``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(Path(run_dir) / "tensorboard" / stage / split))
    acc.Reload()
    return set(acc.Tags()["tensors"])


def trains_summary(stats: dict) -> str | None:
    """"trains: N tests, X s of Y s": the tests marked ``trains`` among the reports in ``stats`` (pytest's terminal
    reporter's), and their setup + call + teardown time against everyone's; None when nothing ran."""
    total, trains, names = 0.0, 0.0, set()
    for reports in stats.values():
        for rep in reports:
            if getattr(rep, "when", None) not in ("setup", "call", "teardown"):
                continue
            total += rep.duration
            if "trains" in rep.keywords:
                trains += rep.duration
                names.add(rep.nodeid)
    return f"trains: {len(names)} tests, {trains:.1f} s of {total:.1f} s" if total else None


def one_error_line(capsys, code, *fragments) -> str:
    """Check exit 2 and exactly one ``error:`` line on stderr holding every fragment; return it."""
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in err, (f, err)
    return err.strip()


def dir_tree(d) -> dict:
    """``{relative path: bytes (None for a folder)}`` of everything under ``d``."""
    return {str(p.relative_to(d)): p.read_bytes() if p.is_file() else None for p in sorted(Path(d).rglob("*"))}


def run_killed(argv, point: str, *, timeout: float = 300):
    """Run ``python -m ARGV`` from the repository root with ``$CVS_TF_FAULT_POINT=point``; check it died of SIGKILL.

    ``Popen`` (not yet reaped) when ``point`` is prefixed with ``zombie:``: the caller must ``wait()`` it.
    """
    from cvs_tf.utils.atomic import FAULT_ENV

    cmd = [sys.executable, "-m", *[str(a) for a in argv]]
    if point.startswith("zombie:"):
        proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, FAULT_ENV: point[7:]},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the command never reached its fault point"
            time.sleep(0.05)
        return proc
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, FAULT_ENV: point}, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == -9, f"exit {proc.returncode}, not killed at {point}: {proc.stderr[-2000:]}"
    return proc
