"""Typed run configuration (model, loss, training) as dataclasses, loaded from JSON or dicts with strict checking."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SPACE = "cvs"  # the thesis's joint space (cvs_tf/spaces/cvs.py)
EARLY_STOPPING = ("val_map", "val_loss", "none")  # model-selection modes on the validation split
STRATEGIES = ("default", "mirrored", "multiworker")  # tf.distribute strategies of training (docs/scaling.md)


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the field."""


#: The fields that name a registered thing, and the check of each (set by :func:`add_name_check`).
_NAME_CHECKS: dict = {"model.space": None, "loss.kind": None}


def add_name_check(name: str, check) -> None:
    """Have :meth:`RunConfig.validate` call ``check(config)`` for field ``name`` (``ConfigError`` for a name
    its registry does not know). The registries (spaces, pair losses) live above this module:
    ``import cvs_tf`` adds their checks (:mod:`cvs_tf.registries`), so this module imports nothing of cvs_tf."""
    if name not in _NAME_CHECKS:
        raise ValueError(f"{name} is not a registry name field ({', '.join(_NAME_CHECKS)})")
    _NAME_CHECKS[name] = check


def _check_name(config, name: str) -> None:
    if _NAME_CHECKS[name] is not None:
        _NAME_CHECKS[name](config)


@dataclass
class LossConfig:
    """L = alpha * L_c + beta * L_t (+ instance_weight * L_i + reconstruction_weight * L_rec); L_t is the pair loss ``kind`` (cvs_tf.losses).

    The one place of the loss defaults: the models and the pair-loss functions take them from here.
    The default kind is the thesis's semi-hard triplet of eq. 3.1.6 (gammas, margins, symmetric_inter).
    """

    kind: str = "semihard_triplet"  # a registered pair loss (cvs_tf.losses.pair_loss_names())
    alpha: float = 1.0
    beta: float = 1.0
    gammas: tuple[float, float, float] = (0.25, 0.25, 0.5)
    margins: tuple[float, float, float] = (1.0, 1.0, 1.0)
    symmetric_inter: bool = False
    reconstruction_weight: float = 0.0
    label_smoothing: float = 0.0  # of the classification term's one-hot targets
    temperature: float = 0.1  # of the contrastive kinds (supcon, infonce); the initial value when learnt
    learn_temperature: bool = False  # the temperature is a weight trained in stage 1, then frozen
    invariance: float = 1.0  # weight of DSCMR's modality-invariance term (kind dscmr)
    vse_margin: float = 0.2  # hinge margin of VSE++'s max-violation loss (kind max_violation)
    instance_weight: float = 0.0  # weight of the instance term (InfoNCE over true pairs; instance-paired sets); 0 = off
    instance_temperature: float = 0.05  # temperature of the instance term (chosen on Tux-12 validation)


@dataclass
class ModelConfig:
    """Which space to build and its architecture switches (design.md §2)."""

    space: str = DEFAULT_SPACE  # a registered space (cvs_tf.spaces)
    modalities: list[str] | None = None  # None: every modality of the dataset / of the stage plan
    stages: list[list[str]] | None = None  # multi-stage spaces: modalities added per stage
    reference: str = "image"  # the reference (hub) modality of a space that takes one (RVS); read by it only
    attention: bool = True
    dim: int = 512
    hidden_dim: int | None = None  # width of the branch's hidden layers; None = dim
    depth: int = 1  # hidden layers per branch (1: the thesis's two dense layers)
    dropout: float = 0.0
    standardize: bool = False  # per-feature mean/std fitted on the train split, inside the branch
    use_batchnorm: bool = False
    use_w_a: bool = True
    use_w_b: bool = True
    use_w_ab: bool = True


@dataclass
class TrainConfig:
    """Optimisation, sampling and model-selection settings (design.md §4, §6)."""

    dataset: str | None = None  # name or directory; None = embedded default (Tux-12)
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0  # > 0: AdamW with this decoupled weight decay (else Adam)
    seed: int = 0
    steps_per_epoch: int | None = None  # None: one pass over the largest modality (pipeline.steps_per_epoch)
    early_stopping: str = "val_map"  # val_map | val_loss | none (validation split only)
    patience: int = 10
    jit: bool | str = True  # True/False, or an XLA mode of CrossModalModel.compile: full | loss | off
    mixed_precision: bool = False
    eval_k: int = 50
    strategy: str = "default"  # default | mirrored | multiworker (cvs_tf.training.distribute)
    deterministic: bool = True  # TensorFlow's op determinism for the run (cvs_tf.training.determinism)
    select: str = "val"  # val | cvK, K in 2..10: epochs chosen by K-fold CV over train+val (cvs_tf.training.selection)


@dataclass
class RunConfig:
    """Everything one training run needs; written resolved to RUN_DIR/config.json."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """Build from a JSON-like dict, checking every field's type; raises only ``ConfigError``."""
        return _from_dict(cls, data, "config")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> RunConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM (Windows editors) is dropped
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a UTF-8 JSON text file") from None
        except RecursionError:
            raise ConfigError(f"{path}: JSON nested too deeply") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def validate(self) -> RunConfig:
        """Check every field's type (normalising e.g. ints in float fields) and range, then the registered names
        (:func:`add_name_check`); ``ConfigError`` names the field."""
        _check_fields(self, "config")
        m, loss, t = self.model, self.loss, self.train
        _check_name(self, "model.space")
        if m.modalities is not None and not m.modalities:
            raise ConfigError("model.modalities must not be empty (null means every modality of the dataset)")
        if m.modalities is not None and any(not x for x in m.modalities):
            raise ConfigError(f"model.modalities: empty modality name in {m.modalities}")
        if m.stages is not None and (not m.stages or any(not g for g in m.stages) or any(not x for g in m.stages for x in g)):
            raise ConfigError(f"model.stages needs at least one stage and a modality in every stage, got {m.stages}")
        for name, v, lo in (("model.dim", m.dim, 1), ("model.depth", m.depth, 1), ("train.epochs", t.epochs, 1),
                            ("train.batch_size", t.batch_size, 2),
                            ("train.patience", t.patience, 1), ("train.eval_k", t.eval_k, 1)):
            if v < lo:
                raise ConfigError(f"{name} must be >= {lo}, got {v}")
        if m.hidden_dim is not None and m.hidden_dim < 1:
            raise ConfigError(f"model.hidden_dim must be >= 1 (or null for model.dim), got {m.hidden_dim}")
        for name, v in (("model.dim", m.dim), ("model.hidden_dim", m.hidden_dim), ("model.depth", m.depth),
                        ("train.epochs", t.epochs), ("train.batch_size", t.batch_size),
                        ("train.patience", t.patience), ("train.eval_k", t.eval_k), ("train.steps_per_epoch", t.steps_per_epoch)):
            if v is not None and v >= INT_LIMIT:  # TensorFlow's int32 shapes and int64 step counters
                raise ConfigError(f"{name} must be < 2**31, got {v}")
        if t.steps_per_epoch is not None and t.steps_per_epoch < 1:
            raise ConfigError(f"train.steps_per_epoch must be >= 1 (or null for one pass), got {t.steps_per_epoch}")
        if not 0 <= t.seed < 2**32:
            raise ConfigError(f"train.seed must be in [0, 2**32), got {t.seed}")
        _check_numbers(m, loss, t)
        _check_name(self, "loss.kind")
        if loss.alpha == 0 and loss.beta == 0 and loss.reconstruction_weight == 0 and loss.instance_weight == 0:
            raise ConfigError("loss.alpha, loss.beta, loss.reconstruction_weight and loss.instance_weight are all 0: "
                              "nothing to train")
        if t.dataset is not None and not t.dataset.strip():
            raise ConfigError("train.dataset must be a name or a directory (null for the default), got an empty string")
        if t.early_stopping not in EARLY_STOPPING:
            raise ConfigError(f"train.early_stopping must be {', '.join(EARLY_STOPPING)}, got {t.early_stopping!r}")
        if t.strategy not in STRATEGIES:
            raise ConfigError(f"train.strategy must be {', '.join(STRATEGIES)}, got {t.strategy!r}")
        if select_folds(t.select) is None and t.select != "val":
            raise ConfigError(f"train.select must be val or cvK with K in {CV_FOLDS.start}..{CV_FOLDS.stop - 1} "
                              f"(e.g. cv5), got {t.select!r}")
        if isinstance(t.jit, str) and t.jit not in JIT_MODES:
            raise ConfigError(f"train.jit must be true, false or one of {', '.join(JIT_MODES)}, got {t.jit!r}")
        return self


def _check_numbers(m: ModelConfig, loss: LossConfig, t: TrainConfig) -> None:
    """The float fields: finite, and in range (``ConfigError`` names the field)."""
    floats = [("train.lr", t.lr), ("model.dropout", m.dropout), ("loss.alpha", loss.alpha), ("loss.beta", loss.beta),
              ("loss.reconstruction_weight", loss.reconstruction_weight), ("loss.invariance", loss.invariance),
              ("loss.vse_margin", loss.vse_margin), ("train.weight_decay", t.weight_decay),
              ("loss.instance_weight", loss.instance_weight)]
    floats += [(f"loss.gammas[{i}]", v) for i, v in enumerate(loss.gammas)]
    floats += [(f"loss.margins[{i}]", v) for i, v in enumerate(loss.margins)]
    for name, v in floats:
        if not math.isfinite(v):
            raise ConfigError(f"{name} must be a finite number, got {v}")
    if t.lr <= 0:
        raise ConfigError(f"train.lr must be > 0, got {t.lr}")
    if not 0 <= m.dropout < 1:
        raise ConfigError(f"model.dropout must be in [0, 1), got {m.dropout}")
    if not (math.isfinite(loss.label_smoothing) and 0 <= loss.label_smoothing < 1):
        raise ConfigError(f"loss.label_smoothing must be in [0, 1), got {loss.label_smoothing}")
    if not (math.isfinite(loss.temperature) and loss.temperature > 0):
        raise ConfigError(f"loss.temperature must be a number > 0, got {loss.temperature}")
    if not (math.isfinite(loss.instance_temperature) and loss.instance_temperature > 0):
        raise ConfigError(f"loss.instance_temperature must be a number > 0, got {loss.instance_temperature}")
    for name, v in floats[2:]:
        if v < 0:
            raise ConfigError(f"{name} must be >= 0, got {v}")


JIT_MODES = ("full", "loss", "off", "auto")
CV_FOLDS = range(2, 11)  # the K of train.select cvK


def select_folds(select: str) -> int | None:
    """K of a ``cvK`` model-selection mode (K in :data:`CV_FOLDS`); None for ``val`` or anything else."""
    m = re.fullmatch(r"cv([0-9]{1,2})", select) if isinstance(select, str) else None
    return int(m.group(1)) if m and int(m.group(1)) in CV_FOLDS else None

INT_LIMIT = 2**31  # string forms of train.jit (models.base.resolve_jit)


# ---------------------------------------------------------------------------- strict typed loading


def _show(value) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def _union_args(hint):
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return None


def _kind(hint) -> str:
    """How a type reads in an error message."""
    args = _union_args(hint)
    if args is not None:
        parts = [_kind(a) for a in args if a is not type(None)] + (["null"] if type(None) in args else [])
        return ", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1 else parts[0]
    origin = typing.get_origin(hint)
    if origin is list:
        inner = typing.get_args(hint)
        return f"a list of {_plural(inner[0])}" if inner else "a list"
    if origin is tuple:
        inner = typing.get_args(hint)
        if len(inner) == 2 and inner[1] is Ellipsis:
            return f"a list of {_plural(inner[0])}"
        return f"a list of {len(inner)} {_plural(inner[0])}"
    if dataclasses.is_dataclass(hint) or hint is dict or origin is dict:
        return "an object"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _plural(hint) -> str:
    k = _kind(hint)
    return {"an integer": "integers", "a number": "numbers", "true or false": "booleans", "a string": "strings",
            "an object": "objects"}.get(k, k.replace("a list of", "lists of", 1))


def _fits(hint, value) -> bool:
    """Whether ``value`` has the outer shape of ``hint`` (the inner items are checked by :func:`_convert`)."""
    args = _union_args(hint)
    if args is not None:
        return any(_fits(a, value) for a in args)
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    if dataclasses.is_dataclass(hint) or hint is dict or origin is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _convert(hint, value, where: str):
    """``value`` checked against the type hint and converted (JSON lists to tuples, ints to floats)."""
    if not _fits(hint, value):
        raise ConfigError(f"{where}: expected {_kind(hint)}, got {_show(value)}")
    args = _union_args(hint)
    if args is not None:
        return _convert(next(a for a in args if _fits(a, value)), value, where)
    origin, inner = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, where)
    if hint is dict or origin is dict:
        if len(inner) == 2:
            return {_convert(inner[0], k, f"{where} key {_show(k)}"): _convert(inner[1], v, f"{where}.{k}")
                    for k, v in value.items()}
        return dict(value)
    if origin is list:
        return [_convert(inner[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if inner else list(value)
    if origin is tuple:
        if len(inner) == 2 and inner[1] is Ellipsis:
            return tuple(_convert(inner[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(inner):
            raise ConfigError(f"{where}: expected {_kind(hint)}, got {len(value)} value(s)")
        return tuple(_convert(h, v, f"{where}[{i}]") for i, (h, v) in enumerate(zip(inner, value)))
    if hint is int:
        return int(value)
    if hint is float:
        return float(value)
    return value


def typed_value(hint, value, where: str):
    """``value`` checked against a type hint and converted; ``ConfigError`` ``"<where>: expected ..."`` otherwise.

    Handles what the config dataclasses use: ``int`` (not ``bool``), ``float`` (ints accepted),
    ``bool``, ``str``, ``list[...]``, fixed or ``...`` tuples (JSON lists), ``dict``/``dict[K, V]``,
    unions with ``None``, and nested dataclasses (objects with no unknown field).
    """
    return _convert(hint, value, where)


def _from_dict(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
    return cls(**{key: _convert(hints[key], value, f"{where}.{key}") for key, value in data.items()})


def _check_fields(obj, where: str) -> None:
    """Type-check a dataclass instance in place (values set in Python, or flags), normalising like the loader."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint, name = getattr(obj, f.name), hints[f.name], f"{where}.{f.name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, hint):
                raise ConfigError(f"{name}: expected a {hint.__name__}, got {_show(value)}")
            _check_fields(value, name)
        else:
            setattr(obj, f.name, _convert(hint, value, name))
