"""Named training recipes (``--preset thesis|best``): partial RunConfigs stored as JSON beside this module.

A preset sets architecture, loss and optimisation fields only; the dataset, space, modalities,
stage plan, reference and seed stay the caller's, so a preset applies to any feature set and
space. ``thesis`` is the thesis recipe (today's library defaults); ``best`` is the recipe chosen
on the validation splits of the shipped sets (docs/results.md says how). ``auto`` is no file: it is a
budgeted search for the set at hand (:func:`run_auto`, :mod:`cvs_tf.tuning.auto`).
"""

from __future__ import annotations

import json
from importlib import resources

from cvs_tf.config import ConfigError, RunConfig

__all__ = ["AUTO", "PRESET_FIELDS", "apply_preset", "load_preset", "preset_names", "run_auto"]

AUTO = "auto"  # --preset auto: chosen per dataset by a budgeted search

#: The sections and fields a preset may set (everything else is the caller's).
PRESET_FIELDS = {
    "model": ("attention", "dim", "hidden_dim", "depth", "dropout", "use_batchnorm", "standardize"),
    "loss": ("kind", "alpha", "beta", "gammas", "margins", "symmetric_inter", "reconstruction_weight",
             "label_smoothing", "temperature", "learn_temperature", "invariance", "vse_margin", "instance_weight",
             "instance_temperature"),
    "train": ("epochs", "batch_size", "lr", "weight_decay", "early_stopping", "patience"),
}


def preset_names() -> list[str]:
    """The shipped presets, sorted."""
    return sorted(p.name[:-5] for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def preset_values(name: str) -> dict:
    """The fields preset ``name`` sets, ``{section: {field: value}}``; ``ConfigError`` for an unknown one."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(preset_names())})")
    data = json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8"))
    values = {k: v for k, v in data.items() if not k.startswith("_")}  # "_about": provenance text
    for section, fields in values.items():
        bad = sorted(set(fields) - set(PRESET_FIELDS.get(section, ())))
        if bad:
            raise ConfigError(f"preset {name}: {section} field(s) {', '.join(bad)} cannot be set by a preset")
    return values


def apply_preset(config: RunConfig, name: str) -> RunConfig:
    """``config`` with the fields of preset ``name`` set (checked like a config file), validated."""
    data = config.to_dict()
    for section, fields in preset_values(name).items():
        data[section].update(fields)
    try:
        return RunConfig.from_dict(data).validate()
    except ConfigError as exc:
        raise ConfigError(f"preset {name}: {exc}") from None


def load_preset(name: str) -> RunConfig:
    """The library defaults with preset ``name`` applied."""
    return apply_preset(RunConfig(), name)


def run_auto(base: RunConfig, out, *, fixed: dict | None = None, budget_minutes: float | None = None,
             featureset=None, verbose="auto", callbacks=None, log=None):
    """``--preset auto``: search the recipes for ``base``'s dataset (:func:`cvs_tf.tuning.auto.auto_search`,
    validation or ``train.select cvK`` only), print the chosen recipe's score beside the strongest baseline's,
    then train the chosen recipe into ``out`` (its config.json records the search as ``resolved.selection.auto``).
    Returns the final run's TrainResult."""
    from pathlib import Path

    from cvs_tf.data.registry import dataset_path
    from cvs_tf.data.store import load_feature_set
    from cvs_tf.training.run_setup import refuse_used_dir
    from cvs_tf.training.selection import train_selected
    from cvs_tf.tuning.auto import auto_search

    log = log or (lambda m: print(m, flush=True))
    out = Path(out)
    if out.is_dir():
        refuse_used_dir(out)  # (before the search, not after)
    fs = featureset if featureset is not None else load_feature_set(dataset_path(base.train.dataset))
    record = auto_search(base, fs, fixed=fixed, budget_minutes=budget_minutes, log=log)
    chosen = record["chosen"]
    if chosen is None:
        raise ValueError(f"--preset auto: no candidate trained on {fs.name} "
                         f"({'; '.join(c['error'] or '' for c in record['candidates'])[:200]})")
    b = record["baseline"]
    margin = "" if b["score"] is None else f" (margin {chosen['score'] - b['score']:+.4f})"
    log(f"auto: chosen #{chosen['number'] + 1} {chosen['label']}: score {chosen['score']:.4f}; strongest baseline "
        + (f"{b['strongest']}: {b['score']:.4f}{margin}" if b["strongest"] else "-"))
    cfg = RunConfig.from_dict(chosen["config"])
    summary = {k: v for k, v in record.items() if k != "chosen"}
    summary["chosen"] = {k: v for k, v in chosen.items() if k != "selection"}
    return train_selected(cfg, out, featureset=fs, selection=chosen["selection"], verbose=verbose,
                          callbacks=callbacks, log=log, extra={"auto": summary})
