"""Helpers shared by the train command and its --extend branch: the config options given, the summary line."""

from __future__ import annotations

from cvs_tf.utils.cli import ArgumentParser

__all__ = ["CONFIG_OPTIONS", "config_flags_given", "summary_line"]

# options that make a run's config (argparse dests; each defaults to None): --resume refuses them
CONFIG_OPTIONS = ("space", "reference", "dataset", "modalities", "stages", "attention", "epochs", "batch_size", "lr",
                  "seed", "steps_per_epoch", "early_stopping", "patience", "jit", "mixed_precision", "config",
                  "preset", "loss", "dim", "hidden_dim", "depth", "dropout", "standardize", "weight_decay",
                  "label_smoothing", "temperature", "learn_temperature", "invariance", "vse_margin", "strategy",
                  "deterministic", "select", "budget_minutes", "instance_weight", "instance_temperature")


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
