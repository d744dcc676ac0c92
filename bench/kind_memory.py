"""Pair-loss kinds' memory: XLA's buffer assignment of one loss + gradient call against each kind's declared cost (``PairCost``).

For each registered kind and batch size B, a child process XLA-compiles (CPU) the kind's terms
of one stacked pair of B rows (D = 128, 20 classes, default loss options) with the gradient
w.r.t. both embeddings, with ``XLA_FLAGS=--xla_dump_to`` set, and reads the compiled module's
*Total bytes used* (every buffer of the computation: inputs, temporaries with XLA's reuse,
outputs, constants). That is the memory the kind's call needs, whatever the host allocator does
with it afterwards (resident memory does not show it: freed buffers stay mapped). The declared
figure is ``PairCost.bytes(B, 1, D)`` (:mod:`cvs_tf.losses.registry`); memory.py budgets it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

NAME = "kind_memory"
DIM, CLASSES = 128, 20


def _child(kind: str, batch: int, pairs: int, dim: int) -> None:
    """In a fresh process with the dump flag set: compile and run one call (the dump is written at compile time)."""
    import numpy as np
    import tensorflow as tf

    import cvs_tf  # noqa: F401  (registers the kinds)
    from cvs_tf.losses import get_pair_loss
    from cvs_tf.models.objective import loss_options

    fn, options = get_pair_loss(kind), loss_options({"kind": kind})
    rng = np.random.default_rng(0)
    emb = [tf.math.l2_normalize(tf.constant(rng.normal(size=(pairs, batch, dim)), tf.float32), -1) for _ in range(2)]
    lab = [tf.constant(rng.integers(0, CLASSES, (pairs, batch)), tf.int32) for _ in range(2)]

    @tf.function(jit_compile=True)
    def step(ex, ey):
        with tf.GradientTape() as tape:
            tape.watch([ex, ey])
            total = tf.reduce_sum(fn(lab[0], ex, lab[1], ey, options)["total"])
        return total, tape.gradient(total, [ex, ey])

    float(step(*emb)[0])


def xla_bytes(kind: str, batch: int, pairs: int = 1, dim: int = DIM) -> int:
    """Total bytes of XLA's buffer assignment for one loss + gradient call of ``kind`` (CPU, child process)."""
    with tempfile.TemporaryDirectory() as dump:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
               "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={dump}".strip()}
        subprocess.run([sys.executable, "-m", "bench.kind_memory", "--child", kind, str(batch), str(pairs), str(dim)],
                       env=env, check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        found = [int(m.group(1)) for f in Path(dump).glob("*buffer-assignment.txt")
                 for m in re.finditer(r"^Total bytes used: (\d+)", f.read_text(), re.M)]
    if not found:
        raise RuntimeError(f"no XLA buffer assignment was dumped for {kind} at B = {batch}")
    return max(found)


def measure(quick: bool) -> list[dict]:
    from cvs_tf.losses import DEFAULT_PAIR_LOSS, get_pair_loss, pair_loss_names
    from cvs_tf.models.objective import loss_options

    batches = (128,) if quick else (256, 512, 1024, 2048)
    rows = []
    for kind in [get_pair_loss(DEFAULT_PAIR_LOSS).name] if quick else pair_loss_names():
        cost = get_pair_loss(kind).cost_for(loss_options({"kind": kind}))
        for b in batches:
            got = xla_bytes(kind, b)
            rows.append({"kind": kind, "order": cost.order, "B": b, "xla": got, "declared": cost.bytes(b, 1, DIM)})
    return rows


def markdown(rows: list[dict], command: str) -> str:
    lines = ["## Pair-loss kinds: declared cost against XLA's buffers (bench/kind_memory.py)", "",
             f"Command: `{command}`. One stacked pair, D = {DIM}, loss + gradient w.r.t. both embeddings, "
             "XLA on CPU, *Total bytes used* of the compiled module's buffer assignment; *declared*: the kind's "
             "`PairCost.bytes(B, 1, D)`, what `training/memory.py` budgets.", "",
             "| kind | order | B | XLA buffers | declared | declared / XLA | XLA bytes per B² |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['order']} | {r['B']} | {r['xla'] / 2**20:.1f} MiB | "
                     f"{r['declared'] / 2**20:.1f} MiB | {r['declared'] / r['xla']:.2f} | {r['xla'] / r['B'] ** 2:.0f} |")
    return "\n".join(lines)


def run(quick: bool = False, *, write_docs: bool | None = None) -> list[dict]:
    from bench import write_section

    rows = measure(quick)
    for r in rows:
        print(f"   {r['kind']:<17} B={r['B']:<5} XLA {r['xla'] / 2**20:8.1f} MiB  declared {r['declared'] / 2**20:8.1f} MiB"
              f"  ({r['xla'] / r['B'] ** 2:.0f} bytes per B²)", flush=True)
    if write_docs if write_docs is not None else not quick:
        path = write_section(NAME, markdown(rows, "python -m bench --only kind_memory"))
        print(f"   wrote {path.name} section {NAME}")
    return [{"bench": NAME, "case": f"{r['kind']} B={r['B']}", "XLA MiB": f"{r['xla'] / 2**20:.1f}",
             "declared MiB": f"{r['declared'] / 2**20:.1f}", "declared/XLA": f"{r['declared'] / r['xla']:.2f}"}
            for r in rows]


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--child":
    _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
elif __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv, write_docs=False)))
