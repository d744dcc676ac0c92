"""The RunPlan: what a run trains (space, stages, pairs, modalities, reference, batch per replica), worked out and checked once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.pipeline import global_batch_rows, per_replica_rows
from cvs_tf.data.store import FeatureSet, order_modalities
from cvs_tf.spaces import Space, get_space, multi_stage_names

__all__ = ["RunPlan"]

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RunPlan:
    """One run's plan on its feature set; :meth:`build` makes it and is the one place that checks it.

    ``stages``: the modalities each stage adds; ``blocks``/``pairs``: per stage, the attention blocks
    it adds and the modality pairs it trains (the space's plan); ``modalities``: every trained one,
    in stage order; ``options``: the ``ModelConfig`` fields only the space reads (RVS: ``reference``);
    ``validation``: whether every trained modality has validation items; ``batch_per_replica``:
    ``{split: rows}`` of one replica's batch (train, and val when there is validation).
    """

    space: str
    stages: tuple[tuple[str, ...], ...]
    blocks: tuple[Pairs, ...]
    pairs: tuple[Pairs, ...]
    modalities: tuple[str, ...]
    reference: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    validation: bool = True
    replicas: int = 1
    batch_size: int = 128
    batch_per_replica: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(cls, config: RunConfig, fs: FeatureSet, *, replicas: int = 1, test_split: bool = True,
              check_splits: bool = True) -> RunPlan:
        """The plan of ``config`` on ``fs``; ``ConfigError`` (one line) for anything that cannot train.

        ``replicas``: of the run's strategy; ``test_split`` False: a run that never reads test (it
        needs validation items). ``check_splits`` False (a model or an estimate outside a run):
        the validation split and the replicas are recorded, not required.
        """
        space = get_space(config.model.space)
        stages = _stages(space, config, fs)
        options = space.option_values(config.model)
        plan = space.plan(stages, **options)
        mods = tuple(m for s in stages for m in s)
        validation = _validation(config, fs, mods, test_split, check_splits)
        b = config.train.batch_size
        rows = {split: _replica_rows(fs, mods, split, b, replicas, check_splits)
                for split in ("train", "val") if split == "train" or validation}
        return cls(space=space.name, stages=tuple(tuple(s) for s in stages),
                   blocks=tuple(tuple(map(tuple, s["blocks"])) for s in plan),
                   pairs=tuple(tuple(map(tuple, s["pairs"])) for s in plan), modalities=mods,
                   reference=options.get("reference"), options=MappingProxyType(dict(options)),
                   validation=validation, replicas=int(replicas), batch_size=b,
                   batch_per_replica=MappingProxyType(rows))

    def stage_lists(self) -> list[list[str]]:
        """``stages`` as lists (``model.stages``, config.json's ``resolved.stages``)."""
        return [list(s) for s in self.stages]

    def model_plan(self) -> list[dict]:
        """Per stage ``{"blocks": [...], "pairs": [...]}``, as a model's ``plan_of`` gives it."""
        return [{"blocks": list(b), "pairs": list(p)} for b, p in zip(self.blocks, self.pairs)]


def _stages(space: Space, config: RunConfig, fs: FeatureSet) -> list[list[str]]:
    """The checked stage plan of ``space`` on ``fs``: ``model.stages``, or the space's default stages."""
    m = config.model
    stages = [list(s) for s in m.stages] if m.stages else None
    if stages:
        mods = [x for s in stages for x in s]
    else:
        mods = list(m.modalities) if m.modalities else order_modalities(fs.modalities)
    unknown = [x for x in mods if x not in fs.modalities]
    if unknown:
        raise ConfigError(f"unknown modality {', '.join(unknown)} for dataset {fs.name} "
                          f"(has {', '.join(fs.modalities)})")
    if len(set(mods)) != len(mods):
        raise ConfigError(f"modalities listed twice: {mods}")
    if len(mods) < 2:
        raise ConfigError(f"space {space.name} needs at least 2 modalities, got {mods}")
    if stages and not space.multi_stage:
        raise ConfigError(f"space {space.name} trains every modality in one stage; stages need "
                          f"a multi-stage space ({', '.join(multi_stage_names())})")
    space.check_options(m, fs)
    return stages or space.default_stages(mods, config, fs)


def _validation(config: RunConfig, fs: FeatureSet, mods, test_split: bool, check: bool) -> bool:
    """Whether every trained modality has validation items. Without them only ``early_stopping='none'`` can
    train (val loss and val mAP are skipped), and a run that never reads test (``test_split`` False) cannot."""
    empty = [m for m in mods if fs.count(m, "val") == 0]
    if empty and check and not test_split:
        raise ConfigError(f"dataset {fs.name} has no validation items for {', '.join(empty)}: "
                          "a run that never reads the test split (tuning) needs them")
    if empty and check and config.train.early_stopping != "none":
        raise ConfigError(
            f"dataset {fs.name} has no validation items for {', '.join(empty)} (a set made with "
            f"--val-fraction 0): train.early_stopping {config.train.early_stopping} needs them; "
            "use --early-stopping none (no model selection, the last epoch is kept)"
        )
    return not empty


def _replica_rows(fs: FeatureSet, mods, split: str, batch: int, replicas: int, check: bool) -> int:
    """Rows of one replica's batch of ``split``; ``ConfigError`` unless every global batch splits evenly."""
    try:
        rows = global_batch_rows(min(fs.count(m, split) for m in mods), batch, fs.paired, replicas)
        if rows < replicas:
            raise ValueError(f"{rows} rows cannot feed {replicas} replicas")
        return per_replica_rows(rows, replicas)
    except ValueError as exc:
        if not check:
            return 0
        raise ConfigError(f"train.batch_size {batch}, {split} split: {exc}") from None
