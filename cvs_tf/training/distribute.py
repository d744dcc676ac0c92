"""tf.distribute for training: the strategies of ``TrainConfig.strategy``, per-replica input shards, the chief, XLA under replicas.

* ``default``: TensorFlow's default strategy (one device; a GPU when one is visible).
* ``mirrored``: ``MirroredStrategy`` over this host's GPUs, or, without a GPU, over its logical
  CPU devices (one unless the process split the CPU with ``tf.config.set_logical_device_configuration``).
* ``multiworker``: ``MultiWorkerMirroredStrategy`` over the cluster in ``TF_CONFIG`` (every
  worker runs the same command; the chief writes the run directory).

Input: every pipeline computes the same seeded *global* batches and keeps the rows of its own
replicas (:class:`cvs_tf.data.pipeline.ReplicaShard`: replica ``r`` gets rows
``[r*B/N, (r+1)*B/N)``), through ``strategy.distribute_datasets_from_function``. The datasets are
generated (``Dataset.range`` of steps), not read from files, so tf.data's auto-sharding is
turned off (``AutoShardPolicy.OFF``): ``FILE`` has no files to split, and ``DATA`` would hand
whole steps to different workers instead of splitting each step's batch.
"""

from __future__ import annotations

import contextlib
import json
import os

import tensorflow as tf

from cvs_tf.config import ConfigError
from cvs_tf.data.pipeline import ReplicaShard, batch_spec

__all__ = ["ClusterError", "cluster_failures", "distributed_dataset", "effective_jit", "is_chief", "make_strategy",
           "replica_batch_specs", "replica_count"]


class ClusterError(ValueError):
    """A worker of a multi-worker run stopped (or became unreachable) during training."""


_MADE: dict = {}  # one strategy object per kind and process (see make_strategy)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy of ``TrainConfig.strategy`` (``multiworker``: before any other TensorFlow op of the process).

    Made once per process and reused: two ``MirroredStrategy`` objects hand out the same collective
    instance keys (their steps then mix up each other's all-reduces), and a process can join only one cluster.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name not in _MADE:
        if name == "mirrored":
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
            _MADE[name] = tf.distribute.MirroredStrategy(devices)
        elif name == "multiworker":
            _check_tf_config()
            _MADE[name] = tf.distribute.MultiWorkerMirroredStrategy()
        else:
            raise ConfigError(f"train.strategy must be default, mirrored or multiworker, got {name!r}")
    return _MADE[name]


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError("--strategy multiworker needs the cluster in TF_CONFIG (docs/scaling.md)")
    try:
        conf = json.loads(raw)
        workers = conf["cluster"]["worker"]
        task = conf["task"]
        ok = isinstance(workers, list) and task["type"] in ("worker", "chief") and isinstance(task["index"], int)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ConfigError('TF_CONFIG must be JSON {"cluster": {"worker": ["host:port", ...]}, '
                          '"task": {"type": "worker", "index": I}} (docs/scaling.md)')


def replica_count(strategy: tf.distribute.Strategy) -> int:
    return int(strategy.num_replicas_in_sync)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True in a single process, and on the chief (the ``chief`` task, else worker 0) of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return True
    kind, index = resolver.task_type, resolver.task_id
    if kind == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return kind in (None, "worker") and not has_chief and (index or 0) == 0


def effective_jit(jit, strategy: tf.distribute.Strategy, deterministic: bool = False):
    """The XLA mode the step can use: with more than one replica, or under op determinism, ``full`` becomes ``loss``.

    Keras compiles ``strategy.run`` of the whole step as one XLA cluster, which cannot reach the
    other replicas' variables (XLA "resource on a different device"); ``loss`` compiles only the
    loss terms inside each replica, after the all-gather (cvs_tf.models.base.CrossModalModel.compile).
    Under TensorFlow's op determinism Keras compiles no whole step with XLA at all (it falls back to
    no XLA with a warning); ``loss`` keeps XLA for the loss terms (docs/performance.md, determinism).
    """
    from cvs_tf.models.base import resolve_jit

    if (replica_count(strategy) > 1 or deterministic) and resolve_jit(jit) == "full":
        return "loss"
    return jit


_INPUT_OPTIONS = tf.distribute.InputOptions()  # one object: the iterator's type spec includes its id


def distributed_dataset(strategy: tf.distribute.Strategy, make):
    """``make(shard)`` distributed over the replicas: ``make(None)`` itself with one replica, else one
    dataset per worker (``make(ReplicaShard)`` of that worker's replicas) via ``distribute_datasets_from_function``."""
    if replica_count(strategy) == 1:
        return make(None)

    def per_worker(ctx: tf.distribute.InputContext):
        local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        shard = ReplicaShard(ctx.num_replicas_in_sync, ctx.input_pipeline_id * local, local)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return make(shard).with_options(options)

    return strategy.distribute_datasets_from_function(per_worker, options=_INPUT_OPTIONS)


def replica_batch_specs(fs, modalities: list[str], plan) -> dict:
    """``{split: element spec}`` of one replica's train and validation batches of ``modalities`` (None for a
    split without batches), their rows from ``plan.batch_per_replica`` (a :class:`cvs_tf.plan.RunPlan`)."""
    rows = plan.batch_per_replica
    return {split: batch_spec(fs, modalities, rows[split]) if rows.get(split) else None for split in ("train", "val")}


@contextlib.contextmanager
def cluster_failures(strategy):
    """Under a multi-worker strategy, a collective that fails because a peer died becomes one :class:`ClusterError`."""
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError) as exc:
        if not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
            raise
        why = " ".join(str(exc.message).split())[:160]
        raise ClusterError(f"a worker of the cluster stopped or became unreachable ({type(exc).__name__}: {why}); "
                           "the run directory keeps its last completed epoch: start every worker again with "
                           "--resume --out RUN_DIR") from None
