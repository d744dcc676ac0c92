"""Helpers shared by the train command and its --extend branch: the config options given, the summary line."""

from __future__ import annotations

import dataclasses

from cvs_tf.config import LossConfig, ModelConfig, TrainConfig
from cvs_tf.utils.cli import ArgumentParser

__all__ = ["CONFIG_OPTIONS", "FIELD_FLAGS", "config_flags_given", "summary_line"]

#: (flag dest, config section, field) of the flags that set one RunConfig field each (config.py's ``flag`` metadata)
FIELD_FLAGS = tuple((f.metadata["flag"] or f.name, section, f.name)
                    for section, cls in (("model", ModelConfig), ("loss", LossConfig), ("train", TrainConfig))
                    for f in dataclasses.fields(cls) if f.metadata["flag"] is not None)

#: options that make a run's config (argparse dests; each defaults to None): --resume refuses them
CONFIG_OPTIONS = (*(dest for dest, _, _ in FIELD_FLAGS), "modalities", "stages", "config", "preset", "budget_minutes")


def config_flags_given(parser: ArgumentParser, args) -> list[str]:
    """The config options set on the command line (every config option defaults to None)."""
    given = []
    for action in parser._actions:
        if action.dest not in CONFIG_OPTIONS:
            continue
        if getattr(args, action.dest, None) is not None:
            flags = [a.option_strings[0] for a in parser._actions if a.dest == action.dest]
            label = "/".join(dict.fromkeys(flags))
            if label not in given:
                given.append(label)
    return given


def summary_line(metrics: dict) -> str:
    """One line of the overall means that metrics.json holds: mAP@k and mAP@all, val and test."""
    parts = []
    for key, label in ((None, f"mAP@{metrics['k']}"), ("all", "mAP@all")):
        cells = []
        for split in ("val", "test"):
            rec = metrics.get(split if key is None else f"{split}_{key}")
            cells.append(f"{split} {rec['overall_mean']:.4f}" if rec and rec.get("overall_mean") is not None
                         else f"{split} -")
        parts.append(f"{label} overall: {', '.join(cells)}")
    return "; ".join(parts)
