"""Typed run configuration (model, loss, training) as dataclasses, loaded from JSON or dicts with strict checking."""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

SPACES = ("cvs", "mcvs", "rvs")
REFERENCES = ("image", "text")

# Default M-CVS stage plans per dataset family (design.md §1, issue #4); others: one modality per stage.
DEFAULT_MCVS_STAGES = {
    "xmedia": [["image", "text"], ["video"], ["audio"], ["3d"]],
    "xmedianet": [["image", "text"], ["video"]],
}


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the field."""


@dataclass
class LossConfig:
    """L = alpha * L_c + beta * L_t (+ reconstruction_weight * L_rec); L_t per pair is eq. 3.1.6."""

    alpha: float = 1.0
    beta: float = 1.0
    gammas: tuple[float, float, float] = (0.25, 0.25, 0.5)
    margins: tuple[float, float, float] = (1.0, 1.0, 1.0)
    symmetric_inter: bool = False
    reconstruction_weight: float = 0.0


@dataclass
class ModelConfig:
    """Which space to build and its architecture switches (design.md §2)."""

    space: str = "cvs"
    modalities: list[str] | None = None  # None: every modality of the dataset (CVS) / stage plan
    stages: list[list[str]] | None = None  # M-CVS / RVS: modalities added per stage
    reference: str = "image"  # RVS only
    attention: bool = True
    dim: int = 512
    dropout: float = 0.0
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
    seed: int = 0
    steps_per_epoch: int | None = None  # None: ceil(largest train count / batch_size)
    early_stopping: str = "val_map"  # val_map | val_loss | none (validation split only)
    patience: int = 10
    jit: bool = True
    mixed_precision: bool = False
    eval_k: int = 50


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
        return _from_dict(cls, data, "config")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> RunConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def validate(self) -> RunConfig:
        m, t = self.model, self.train
        if m.space not in SPACES:
            raise ConfigError(f"model.space must be one of {', '.join(SPACES)}, got {m.space!r}")
        if m.reference not in REFERENCES:
            raise ConfigError(f"model.reference must be image or text, got {m.reference!r}")
        for name, v in (("model.dim", m.dim), ("train.batch_size", t.batch_size), ("train.epochs", t.epochs)):
            if v < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        if t.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {t.lr}")
        if t.early_stopping not in ("val_loss", "val_map", "none"):
            raise ConfigError(f"train.early_stopping must be val_loss, val_map or none, got {t.early_stopping!r}")
        if len(self.loss.gammas) != 3 or len(self.loss.margins) != 3:
            raise ConfigError("loss.gammas and loss.margins need exactly 3 values")
        return self


def _from_dict(cls, data, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _from_dict(hint, value, f"{where}.{key}")
        elif typing.get_origin(hint) is tuple and value is not None:
            kwargs[key] = tuple(float(v) for v in value)
        else:
            kwargs[key] = value
    return cls(**kwargs)
