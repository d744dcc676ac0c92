"""Named training recipes (``--preset thesis|best``): partial RunConfigs stored as JSON beside this module.

A preset sets architecture, loss and optimisation fields only; the dataset, space, modalities,
stage plan, reference and seed stay the caller's, so a preset applies to any feature set and
space. ``thesis`` is the thesis recipe (today's library defaults); ``best`` is the recipe chosen
on the validation splits of the shipped sets (docs/results.md says how). ``auto`` is no file: it is a
budgeted search for the set at hand (:func:`cvs_tf.tuning.auto.run_auto`).
"""

from __future__ import annotations

import json
from importlib import resources

from cvs_tf.config import ConfigError, RunConfig, fields_in

__all__ = ["AUTO", "PRESET_FIELDS", "apply_preset", "load_preset", "preset_names"]

AUTO = "auto"  # --preset auto: chosen per dataset by a budgeted search

#: The sections and fields a preset may set (everything else is the caller's): config.py's "preset" group.
PRESET_FIELDS = fields_in("preset")


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
