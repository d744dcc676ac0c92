"""Batch embedding at scale: ``python -m cvs_tf.embed_beam`` (Beam RunInference, DirectRunner) vs in-process ``Export.embed``.

Run in the Beam lane (``make test-beam`` builds ``.venv-beam``)::

    .venv-beam/bin/python -m bench.beam_embed [--items 200000] [--shards 8] [--batch-size 1024] [--quick]
                                              [--beam-option=--direct_num_workers=2 ...]

One run, same process, same files: a CVS export (untrained, D = 512, Tux-12's image dim 1280) and
a synthetic gallery of N items in S ``.npy`` shards with ``.ids.txt`` ids. It times

* **in-process**: every shard read (``cvs_tf.serving.shards.read_input``) and embedded with
  ``Export.embed`` (the SavedModel's ``serve``, 8192-row batches), before and after the Beam run;
* **Beam**: the whole ``python -m cvs_tf.embed_beam`` command in process (``cvs_tf.cli.embed_beam.main``:
  input checks, pipeline construction, RunInference with the export, grouping by shard, writing
  ``PREFIX-SSSSS-of-NNNNN.npz``),

and reports items/s of both and their ratio, and checks that Beam's embeddings equal the
in-process ones to 1e-6 with the ids in order. It prints a Markdown section (docs are left
alone: the lead copies it into docs/performance.md). Not discovered by ``python -m bench``
(no ``run``): the main virtualenv has no apache-beam.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import load_average, machine, machine_line

MODALITY = "image"
INPUT_DIM = 1280
DIM = 512
GOAL_DIFF = 1e-6


def make_export(root: Path) -> Path:
    import keras

    from cvs_tf.models import CVSModel
    from cvs_tf.serving import export_model

    keras.utils.set_random_seed(0)
    model = CVSModel({MODALITY: INPUT_DIM, "text": 384}, 10, attention=False, dim=DIM)
    return export_model(model, root / "export")


def make_shards(root: Path, items: int, shards: int, seed: int = 0) -> Path:
    """``items`` rows of standard-normal features in ``shards`` .npy files with .ids.txt ids."""
    rng = np.random.default_rng(seed)
    d = root / "features"
    d.mkdir()
    bounds = np.linspace(0, items, shards + 1).astype(int)
    for s in range(shards):
        a, b = bounds[s], bounds[s + 1]
        np.save(d / f"part-{s:03d}.npy", rng.standard_normal((b - a, INPUT_DIM), dtype=np.float32))
        (d / f"part-{s:03d}.ids.txt").write_text("".join(f"item-{i:07d}\n" for i in range(a, b)))
    return d


def in_process(export_dir: Path, pattern: str) -> tuple[float, dict]:
    """(seconds, {shard path: (embeddings, ids)}) of reading and embedding every shard in this process."""
    from cvs_tf.serving import Export
    from cvs_tf.serving import shards as shard_io

    t0 = time.perf_counter()
    export = Export(export_dir)
    out = {}
    for shard in shard_io.plan_inputs(pattern, MODALITY, export.input_dim(MODALITY)):
        x, ids = shard_io.read_input(shard)
        out[shard.path] = (export.embed(MODALITY, x), ids)
    return time.perf_counter() - t0, out


def with_beam(export_dir: Path, pattern: str, prefix: Path, batch_size: int, options: list[str]) -> float:
    from cvs_tf.cli.embed_beam import main

    t0 = time.perf_counter()
    code = main(["--export", str(export_dir), "--features", pattern, "--modality", MODALITY, "--out", str(prefix),
                 "--batch-size", str(batch_size), *options])
    if code:
        raise SystemExit(f"embed_beam exited {code}")
    return time.perf_counter() - t0


def compare(prefix: Path, reference: dict) -> tuple[float, bool]:
    """(largest |Beam - in-process|, ids equal) over every shard, in shard order."""
    from cvs_tf.serving import shards as shard_io

    diff, same_ids = 0.0, True
    for i, (emb_ref, ids_ref) in enumerate(reference.values()):
        _, emb, ids = shard_io.read_output(shard_io.output_name(str(prefix), i, len(reference)))
        diff = max(diff, float(np.max(np.abs(emb - emb_ref))))
        same_ids &= ids.tolist() == ids_ref.tolist()
    return diff, same_ids


def report(args, m: dict, t_in: list[float], t_beam: float, diff: float, same_ids: bool, wall: float) -> str:
    n = args.items
    best_in = min(t_in)
    ratio = (n / t_beam) / (n / best_in)
    opts = " ".join(args.beam_option) or "none (in-memory DirectRunner, 1 worker)"
    ok = diff <= GOAL_DIFF and same_ids
    return "\n".join([
        "## Batch embedding with Beam (bench/beam_embed.py)",
        "",
        f"Command: `.venv-beam/bin/python -m bench.beam_embed --items {n} --shards {args.shards} "
        f"--batch-size {args.batch_size}{''.join(' --beam-option=' + o for o in args.beam_option)}` "
        f"— on: {machine_line(m)}; whole run {wall:.0f} s.",
        "",
        f"Export: untrained CVS, D = {DIM}, {MODALITY} input {INPUT_DIM}; gallery {n:,} items × {INPUT_DIM} "
        f"float32 in {args.shards} `.npy` shards with `.ids.txt` ids. Beam pipeline options: {opts}.",
        "",
        "| path | items | wall s | items/s | vs in-process |",
        "|---|---:|---:|---:|---:|",
        f"| in-process: read + `Export.embed` (runs before / after Beam) | {n:,} | "
        f"{t_in[0]:.1f} / {t_in[1]:.1f} | {n / best_in:,.0f} | 1.00 |",
        f"| `python -m cvs_tf.embed_beam` (DirectRunner, RunInference, batch {args.batch_size}) | {n:,} | "
        f"{t_beam:.1f} | {n / t_beam:,.0f} | {ratio:.2f} |",
        "",
        f"Largest \\|Beam − in-process\\| {diff:.1e} (goal ≤ {GOAL_DIFF:g}), ids in order: {same_ids} — "
        f"{'met' if ok else 'NOT met'}. Items/s of in-process use its faster run.",
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.beam_embed", description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--beam-option", action="append", default=[], help="a Beam pipeline option, e.g. "
                   "--beam-option=--direct_num_workers=2 (repeatable)")
    p.add_argument("--quick", action="store_true", help="2,000 items in 2 shards (a smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.items, args.shards = 2000, 2
    t_start = time.perf_counter()
    m = machine()
    with tempfile.TemporaryDirectory(prefix="beam-embed-") as tmp:
        root = Path(tmp)
        export_dir = make_export(root)
        pattern = str(make_shards(root, args.items, args.shards) / "*.npy")
        t1, reference = in_process(export_dir, pattern)
        t_beam = with_beam(export_dir, pattern, root / "out" / "emb", args.batch_size, args.beam_option)
        t2, _ = in_process(export_dir, pattern)
        diff, same_ids = compare(root / "out" / "emb", reference)
    m["load_at_end"] = load_average()
    print(report(args, m, [t1, t2], t_beam, diff, same_ids, time.perf_counter() - t_start))
    return 0 if diff <= GOAL_DIFF and same_ids else 1


if __name__ == "__main__":
    raise SystemExit(main())
