"""The Apache Beam pipeline of ``python -m cvs_tf.embed_beam``: feature shards -> RunInference(SavedModel) -> embedding shards.

Imported only where apache-beam is installed (the Beam lane, ``.venv-beam``); ``cvs_tf`` itself
never imports it. The graph::

    Create(input shards) | Reshuffle | FlatMap(read rows: ((shard, row, id), features))
      | RunInference(KeyedModelHandler(SavedModelHandler))        # the export's ``serve``, batched
      | Map((shard, (row, id, embedding))) | GroupByKey | Map(write PREFIX-SSSSS-of-NNNNN.npz)

Every embedding shard is written into a temporary directory beside PREFIX; the driver renames
them into place only after the pipeline has finished, so a failed run leaves no output behind.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import (
    KeyedModelHandler,
    ModelHandler,
    PredictionResult,
    RunInference,
)
from apache_beam.options.pipeline_options import PipelineOptions

from cvs_tf.serving import shards as shard_io

DEFAULT_BATCH_SIZE = 1024


class EmbedError(ValueError):
    """The pipeline failed (one line: the first line of the worker's error)."""


class SavedModelHandler(ModelHandler):
    """RunInference handler for one modality of a ``cvs_tf.export``: ``tf.saved_model.load`` and its ``serve``.

    Beam's own TensorFlow handler loads with ``tf.keras.models.load_model`` (not a Keras 3 path for a
    SavedModel) and needs tensorflow_hub; the export needs only ``tf.saved_model.load``.
    """

    def __init__(self, savedmodel: str, *, batch_size: int = DEFAULT_BATCH_SIZE):
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._savedmodel = savedmodel

    def load_model(self):
        import tensorflow as tf

        return tf.saved_model.load(self._savedmodel)

    def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[PredictionResult]:
        emb = model.serve(np.stack(batch).astype(np.float32, copy=False)).numpy()
        return [PredictionResult(x, e) for x, e in zip(batch, emb)]

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return sum(x.nbytes for x in batch)

    def get_metrics_namespace(self) -> str:
        return "cvs_tf_embed_beam"


def _rows(shard: dict):
    """((shard, row, id), features row) for every row of one input shard."""
    x, ids = shard_io.read_input(shard_io.InputShard(**shard))
    for r in range(len(x)):
        yield (shard["index"], r, str(ids[r])), x[r]


def _by_shard(keyed):
    (shard, row, item), result = keyed
    return shard, (row, item, result.inference)


class _WriteShard(beam.DoFn):
    """Write one output shard (its rows back in input order) into the run's temporary directory."""

    def __init__(self, tmp: str, prefix_name: str, num_shards: int, rows: dict, meta: dict):
        self._tmp, self._prefix_name, self._n = tmp, prefix_name, num_shards
        self._rows, self._meta = rows, meta

    def process(self, element):
        shard, items = element
        items = sorted(items, key=lambda t: t[0])
        if [t[0] for t in items] != list(range(self._rows[shard])):
            raise EmbedError(f"shard {shard}: {len(items)} embedded rows of {self._rows[shard]}")
        emb = np.stack([t[2] for t in items]).astype(np.float32, copy=False)
        ids = np.asarray([t[1] for t in items], dtype=str)
        name = Path(shard_io.output_name(self._prefix_name, shard, self._n)).name
        meta = dict(self._meta, shard=int(shard), rows=len(ids), source=self._meta["sources"][shard])
        del meta["sources"]
        shard_io.write_output(os.path.join(self._tmp, name), emb, ids, meta)
        yield name


def build_pipeline(p, plan: list[shard_io.InputShard], savedmodel: str, tmp: str, prefix: str, meta: dict,
                   batch_size: int):
    """Add the embedding graph to pipeline ``p``; the output PCollection holds the written file names."""
    handler = KeyedModelHandler(SavedModelHandler(savedmodel, batch_size=batch_size))
    rows = {s.index: s.rows for s in plan}
    meta = dict(meta, sources=[os.path.basename(s.path) for s in plan])
    return (p
            | "InputShards" >> beam.Create([s.to_dict() for s in plan])
            | "Distribute" >> beam.Reshuffle()
            | "ReadRows" >> beam.FlatMap(_rows)
            | "Embed" >> RunInference(handler)
            | "ByShard" >> beam.Map(_by_shard)
            | "Group" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(_WriteShard(tmp, os.path.basename(prefix), len(plan), rows, meta)))


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def run_pipeline(export, modality: str, plan: list[shard_io.InputShard], prefix: str, *, input_pattern: str,
                 batch_size: int = DEFAULT_BATCH_SIZE, pipeline_args: Sequence[str] = ()) -> list[str]:
    """Embed every planned shard with ``export``'s ``modality`` SavedModel; returns the output paths.

    ``pipeline_args`` are Beam pipeline options (``--runner``, ``--direct_num_workers``, a cluster
    runner's options). Outputs appear only when the whole pipeline succeeded.
    """
    from cvs_tf.utils.atomic import make_temporary

    target = Path(prefix)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temporary(target)                       # .NAME.tmp-PID@HOST-XXXX beside PREFIX
    savedmodel = str((export.path / export.manifest["modalities"][modality].get("savedmodel", modality)).resolve())
    meta = {"format": shard_io.SHARD_FORMAT, "format_version": shard_io.SHARD_FORMAT_VERSION,
            "modality": modality, "num_shards": len(plan), "token": uuid.uuid4().hex[:16],
            "export": export.identity, "export_path": str(export.path.resolve()), "inputs": input_pattern}
    try:
        try:
            with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as p:
                build_pipeline(p, plan, savedmodel, str(tmp), prefix, meta, batch_size)
        except Exception as exc:  # a worker's error arrives wrapped by the runner; report its first line
            raise EmbedError(f"pipeline failed: {_one_line(exc)}") from None
        names = [Path(shard_io.output_name(str(target), s.index, len(plan))) for s in plan]
        missing = [n.name for n in names if not (tmp / n.name).is_file()]
        if missing:
            raise EmbedError(f"pipeline wrote no {missing[0]} (and {len(missing) - 1} more missing)")
        for n in names:
            os.replace(tmp / n.name, n)
        return [str(n) for n in names]
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
