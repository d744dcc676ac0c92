"""The space registry: every cross-modal space (CVS, M-CVS, RVS, or one of yours) is a registered :class:`Space`.

A space is one module: a :class:`~cvs_tf.models.base.CrossModalModel` subclass (its stage plan
and the block linking two modalities) and a :class:`Space` that names it, plans its stages for a
dataset, checks its own options and builds it. The built-in spaces are the modules of this
package, each named after its space (``cvs_tf/spaces/<name>.py``); a module whose name starts
with ``_`` is not a space. :func:`space_names` lists them without importing them (so a parser's
``--help`` never starts TensorFlow); :func:`get_space` imports one on first use. User code adds
a space with :func:`register_space` before building or training it (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from cvs_tf.config import DEFAULT_SPACE, ConfigError, fields_in

__all__ = ["DEFAULT_SPACE", "Space", "builtin_space_names", "get_space", "import_builtin_spaces", "multi_stage_names", "one_per_stage",
           "register_space", "space_for_model", "space_names"]

_REGISTRY: dict = {}
#: The ModelConfig fields every space passes to its model class: config.py's "architecture" group.
ARCHITECTURE = fields_in("architecture")["model"]


def builtin_space_names() -> list[str]:
    """The spaces shipped with cvs_tf (the modules of this package), without importing them."""
    return [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]


def space_names() -> list[str]:
    """The known spaces: the built-in ones (without importing them), then those registered by user code."""
    return list(dict.fromkeys([*builtin_space_names(), *_REGISTRY]))


def import_builtin_spaces() -> None:
    """Import (hence register, with Keras too) every built-in space module."""
    for name in builtin_space_names():
        importlib.import_module(f"{__name__}.{name}")


def register_space(space: Space, *, replace: bool = False) -> Space:
    """Add ``space`` to the registry under ``space.name``; a name already taken needs ``replace=True``."""
    if not isinstance(space, Space) or not space.name or space.model_class is None:
        raise ValueError(f"register_space needs a Space with a name and a model_class, got {space!r}")
    if space.name in _REGISTRY and not replace and _REGISTRY[space.name] is not space:
        raise ValueError(f"space {space.name!r} is already registered (pass replace=True to replace it)")
    _REGISTRY[space.name] = space
    return space


def get_space(name: str) -> Space:
    """The registered space ``name``; ``ConfigError`` (one line, listing the known spaces) for an unknown one."""
    if name not in _REGISTRY and name in builtin_space_names():
        importlib.import_module(f"{__name__}.{name}")
    if name not in _REGISTRY:
        raise ConfigError(f"unknown space {name!r} (known: {', '.join(space_names())})")
    return _REGISTRY[name]


def space_for_model(model) -> Space | None:
    """The registered space whose model class is exactly ``type(model)``, or None."""
    import_builtin_spaces()
    return next((s for s in _REGISTRY.values() if type(model) is s.model_class), None)


def one_per_stage(first: list[str], rest: list[str]) -> list[list[str]]:
    """A stage plan: ``first`` is stage 1, then one modality per stage."""
    return [list(first)] + [[m] for m in rest]


class Space:
    """A cross-modal space: name, model class, stage plan for a dataset, own options, and building it.

    Override :meth:`default_stages` (the plan when ``model.stages`` is not given), :meth:`plan`
    (the plan's check, with the model class's ``make_plan``), :meth:`check_options` and
    :meth:`run_tag` where the space differs; ``cvs_tf.plan.RunPlan.build`` calls them, once per run.
    ``options`` names the ``ModelConfig`` fields that only this space reads; they are passed to the
    model class as keyword arguments.
    """

    name: str = ""
    model_class: type | None = None
    multi_stage: bool = False  # takes a stage plan (model.stages, --stages)
    options: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<space {self.name}: {getattr(self.model_class, '__name__', None)}>"

    # ------------------------------------------------------------------ options
    def option_values(self, model_config) -> dict:
        return {k: getattr(model_config, k) for k in self.options}

    def check_options(self, model_config, fs=None) -> None:
        """Check this space's own options (``fs``: also against a dataset); ``ConfigError`` otherwise."""

    def run_tag(self, config) -> str:
        """The space's part of a default run directory name."""
        return self.name

    # ------------------------------------------------------------------ stage plan
    def default_stages(self, modalities: list[str], config, fs) -> list[list[str]]:
        """The stage plan over ``modalities`` when ``model.stages`` is not given: one stage."""
        return [list(modalities)]

    def plan(self, stages: list[list[str]], **options) -> list[dict]:
        """Per stage, the blocks it adds and the pairs it trains (``ConfigError`` for a bad plan)."""
        return self.model_class.plan_of(stages, **options)

    def attention_parameters(self, dim: int, blocks: int) -> int:
        """Attention parameters of ``blocks`` blocks at dimension ``dim`` (at most; switches drop kernels)."""
        return self.model_class.attention_parameters(dim, blocks)

    # ------------------------------------------------------------------ building
    def model_kwargs(self, config, fs, plan) -> dict:
        """The model class's arguments: the dataset's shapes, the run's plan (a ``cvs_tf.plan.RunPlan``), the
        switches, the losses, the options."""
        stages = plan.stage_lists()
        return dict(modality_dims={x: fs.dim(x) for s in stages for x in s}, num_classes=fs.num_classes,
                    stages=stages, plan=plan.model_plan(), loss_options=dict(vars(config.loss)),
                    multi_label=fs.label_kind == "multi", **{k: getattr(config.model, k) for k in ARCHITECTURE},
                    **plan.options)

    def build(self, config, fs, plan):
        """The space's model for ``fs`` and its checked ``plan`` (not compiled)."""
        return self.model_class(**self.model_kwargs(config, fs, plan))


def multi_stage_names() -> list[str]:
    """The spaces that take a stage plan."""
    return [n for n in space_names() if get_space(n).multi_stage]
