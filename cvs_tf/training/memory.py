"""Up-front memory estimate of a training step, from the configured pair-loss kind's declared cost, and the refusal of batches that cannot fit.

What grows with the batch B: the pair terms. A stage that trains ``P`` modality pairs computes
them one group of pairs after the other (:meth:`cvs_tf.models.objective.Objective.groups`), and
the configured kind declares the peak bytes of one pair's call with its gradient
(:class:`cvs_tf.losses.PairCost`: ``cube · B³ + square · B² + row · B · D`` per pair), so the
live group of ``G`` pairs needs

    pairs(B) = Objective.pair_bytes(B, G, D)      (the kind's cost, plus the instance term's when on)

Every built-in kind is O(B²) (docs/performance.md tabulates the declared costs against XLA's
buffers: ``python -m bench --only kind_memory``); a kind declaring a B³ cube is budgeted as one.
The embeddings are float32 whatever the precision policy (``models/base.py: l2n``), so this does
not depend on ``--mixed-precision``. The stage's feature banks (train and validation rows of its
modalities, float32) and the model come on top (every stage's weights exist from the start:
weights, gradients and two Adam slots, 16 bytes per parameter; :func:`model_parameters`). For an
instance-paired set the batch is at most the number of training items. With a cross-batch memory
of N rows (``loss.xbm_size``) the kind's terms compare the B anchors with B + N candidates (the
cost's ``memory``), and its queues (:func:`queue_bytes`) come on top of the model.

The estimate of the largest stage is compared with the memory the step can use: TensorFlow's
memory limit of ``GPU:0`` minus what it already holds when a GPU is visible, else the host's
available memory (``MemAvailable``, bounded by a cgroup limit). The refusal names the largest
batch that fits for the configured kind (a binary search over B). ``CVS_TF_MEMORY_CHECK=off``
skips the check.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from cvs_tf.config import ConfigError
from cvs_tf.models.objective import Objective
from cvs_tf.plan import RunPlan
from cvs_tf.spaces import get_space

ENV_SWITCH = "CVS_TF_MEMORY_CHECK"
GIB = 1 << 30


def objective_of(config) -> Objective:
    """The loss objective the run's model will train (its kind and options from ``config.loss``)."""
    return Objective(dict(vars(config.loss)))


BYTES_PER_PARAMETER = 16  # float32 weight, gradient and two Adam slots


def model_parameters(config, fs, plan: list[list[tuple[str, str]]]) -> int:
    """Parameters of the whole model (all stages); an upper bound where ``use_w_*`` switches drop kernels."""
    m = config.model
    d = m.dim
    mods = sorted({x for pairs in plan for p in pairs for x in p})
    n = sum(fs.dim(x) * d + d + d * d + d + (4 * d if m.use_batchnorm else 0) for x in mods)  # branches
    if m.attention:
        blocks = sum(len(pairs) for pairs in plan)  # one block per trained pair
        n += get_space(m.space).attention_parameters(d, blocks)
    n += d * fs.num_classes + fs.num_classes  # classifier
    if config.loss.reconstruction_weight > 0:
        n += sum(d * fs.dim(x) + fs.dim(x) for x in mods)  # decoders
    return n


class StageEstimate:
    """Memory of one stage's training step: its pair terms at the effective batch plus its feature banks and the model."""

    def __init__(self, config, fs, stage: int, pairs: list[tuple[str, str]], model_bytes: int = 0,
                 objective: Objective | None = None):
        self.stage = stage
        self.pairs = len(pairs)
        self.objective = objective or objective_of(config)
        self.dim = config.model.dim
        self.modalities = sorted({m for p in pairs for m in p})
        self.paired = bool(fs.paired)
        self.train_items = max((fs.count(m, "train") for m in self.modalities), default=0)
        self.bank_bytes = sum(4 * fs.dim(m) * (fs.count(m, "train") + fs.count(m, "val")) for m in self.modalities)
        self.model_bytes = model_bytes

    @property
    def fixed_bytes(self) -> int:
        """What does not depend on the batch size: feature banks and model."""
        return self.bank_bytes + self.model_bytes

    def effective_batch(self, batch: int) -> int:
        return min(batch, self.train_items) if self.paired and self.train_items else batch

    def live_pairs(self, batch: int) -> int:
        """Pairs whose terms are live together: the largest group the objective computes at once."""
        if not self.pairs:
            return 0
        return min(self.pairs, self.objective.pairs_per_group(self.effective_batch(batch), self.dim))

    def pair_bytes(self, batch: int) -> int:
        """Peak bytes of the live group's pair terms at ``batch``."""
        return self.objective.pair_bytes(self.effective_batch(batch), self.live_pairs(batch), self.dim)

    def total(self, batch: int) -> int:
        return self.pair_bytes(batch) + self.fixed_bytes


def queue_bytes(config, fs, plan: list[list[tuple[str, str]]]) -> int:
    """The cross-batch memory: for every trained pair of the plan, two sides of ``xbm_size`` rows (D float32 values
    and a label each), held in variables and copied once more into the step that reads them."""
    rows = config.loss.xbm_size
    if not rows:
        return 0
    pairs = len({tuple(p) for stage in plan for p in stage})
    label = 4 * (fs.num_classes if fs.label_kind == "multi" else 1)
    return 2 * pairs * 2 * rows * (4 * config.model.dim + label)


def estimates(config, fs, plan: RunPlan | None = None) -> list[StageEstimate]:
    """One estimate per stage of ``plan`` (the run's; built here, without the split checks, when not given)."""
    pairs = [list(p) for p in (plan or RunPlan.build(config, fs, check_splits=False)).pairs]
    model_bytes = BYTES_PER_PARAMETER * model_parameters(config, fs, pairs) + queue_bytes(config, fs, pairs)
    objective = objective_of(config)
    return [StageEstimate(config, fs, k, p, model_bytes, objective) for k, p in enumerate(pairs)]


# ---------------------------------------------------------------------------- available memory


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sysconf_available() -> int | None:
    for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            pages, size = os.sysconf(name), os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            continue
        if pages > 0 and size > 0:
            return pages * size
    return None


def _cgroup_available() -> int | None:
    """Room left under this process's cgroup memory limit (v2, then v1), if one is set."""
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_f).read_text().strip()
            if limit == "max":
                return None
            limit, usage = int(limit), int(Path(usage_f).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit < 1 << 60:  # v1 reports "no limit" as a huge number
            return max(0, limit - usage)
    return None


def host_available() -> int | None:
    """Bytes of host memory a new allocation can get now (None where it cannot be told)."""
    found = [v for v in (_meminfo_available() or _sysconf_available(), _cgroup_available()) if v is not None]
    return min(found) if found else None


def gpu_available() -> int | None:
    """Bytes TensorFlow may still allocate on ``GPU:0`` (its memory limit minus what it holds), None if unknown."""
    import tensorflow as tf

    try:
        from tensorflow.python.client import device_lib

        limits = [d.memory_limit for d in device_lib.list_local_devices() if d.device_type == "GPU"]
        if not limits:
            return None
        used = tf.config.experimental.get_memory_info("GPU:0").get("current", 0)
        return max(0, int(limits[0]) - int(used))
    except Exception:  # noqa: BLE001 - any failure to tell means: no check rather than a crash
        return None


def available_memory() -> tuple[int, str] | None:
    """``(bytes, where)`` the training step can use: GPU:0 when TensorFlow sees a GPU, else the host."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        avail = gpu_available()
        return None if avail is None else (avail, "GPU:0 has")
    avail = host_available()
    return None if avail is None else (avail, "the host has")


# ---------------------------------------------------------------------------- the check


def largest_batch(stages: list[StageEstimate], budget: int, upper: int) -> int:
    """The largest batch ``b <= upper`` whose every stage fits in ``budget`` bytes (0 if not even 2)."""
    def fits(b):
        return all(s.total(b) <= budget for s in stages)

    if not fits(2):
        return 0
    lo, hi = 2, max(2, upper)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{math.ceil(n / (1 << 20))} MiB"


def check_batch_memory(config, fs, available: tuple[int, str] | None = None, *, plan: RunPlan | None = None) -> None:
    """Raise ``ConfigError`` (one line: the estimate and a batch size that fits) when a step cannot fit in memory.

    ``plan``: the run's :class:`~cvs_tf.plan.RunPlan` (see :func:`estimates`). ``available`` overrides
    the measured ``(bytes, where)`` budget (tests); nothing is checked when
    the budget cannot be told or ``$CVS_TF_MEMORY_CHECK`` is ``off``.
    """
    if os.environ.get(ENV_SWITCH, "").strip().lower() in ("off", "0", "no", "false"):
        return
    stages = estimates(config, fs, plan)
    batch = config.train.batch_size
    worst = max(stages, key=lambda s: s.total(batch))
    need = worst.total(batch)
    budget = available if available is not None else available_memory()
    if budget is None or need <= budget[0]:
        return
    avail, where = budget
    b, kind = worst.effective_batch(batch), worst.objective.kind
    order, rows = kind.cost_for(worst.objective.options).order, worst.objective.memory_rows
    entries = f"{b}·{b + rows}{'²' if order == 'B³' else ''}" if rows else order.replace("B", str(b))
    what = (f"batch size {batch} needs about {_gib(need)} in stage {worst.stage + 1} "
            f"({kind.name} terms, {entries} entries: {worst.live_pairs(batch)} of its {worst.pairs} "
            f"pairs at a time, plus {_gib(worst.fixed_bytes)} of features and model) but {where} {_gib(avail)} available")
    fit = largest_batch(stages, avail, b - 1)
    if fit < 2:
        raise ConfigError(f"{what}; no batch size fits: features and model alone need {_gib(worst.fixed_bytes)} "
                          f"(model.dim {config.model.dim}; set {ENV_SWITCH}=off to skip this check)")
    raise ConfigError(f"{what}; the largest batch size that fits for {kind.name} is {fit} (--batch-size {fit}; "
                      f"set {ENV_SWITCH}=off to skip this check)")
