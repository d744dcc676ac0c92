"""Tests of the experiments package."""

import json


def load_or_pending(name: str):
    """The config ``name`` loaded, or None when it names a preset that has not shipped yet (``best`` before the
    tuning lands), which must then be refused in one line that names the variant and the preset."""
    from cvs_tf.presets import preset_names
    from experiments.spec import CONFIG_DIR, SpecError, load

    data = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    pending = [v for v in data.get("variants", []) if v.get("preset") and v["preset"] not in preset_names()]
    if not pending:
        return load(name)
    try:
        load(name)
    except SpecError as exc:
        v = pending[0]
        assert f"variant {v['name']!r}: unknown preset {v['preset']!r}" in str(exc) and "\n" not in str(exc)
        return None
    raise AssertionError(f"{name}: loaded although preset {pending[0]['preset']!r} is not shipped")
