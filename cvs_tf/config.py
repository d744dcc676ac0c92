"""Typed run configuration (model, loss, training) as dataclasses, loaded from JSON or dicts with strict checking."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cvs_tf.utils.typed import ConfigError, check_fields, from_dict, typed_value

__all__ = ["CV_FOLDS", "DEFAULT_REFERENCE", "DEFAULT_SPACE", "EARLY_STOPPING", "GROUPS", "JIT_MODES", "STRATEGIES",
           "ConfigError", "LossConfig", "ModelConfig", "RunConfig", "TrainConfig", "add_name_check", "fields_in",
           "select_folds", "typed_value"]

DEFAULT_SPACE = "cvs"  # the thesis's joint space (cvs_tf/spaces/cvs.py)
DEFAULT_REFERENCE = "image"  # the hub modality of a space that takes one (RVS)
EARLY_STOPPING = ("val_map", "val_recall", "val_loss", "none")  # model-selection modes on the validation split
STRATEGIES = ("default", "mirrored", "multiworker")  # tf.distribute strategies of training (docs/scaling.md)
JIT_MODES = ("full", "loss", "off", "auto")  # string forms of train.jit (models.base.resolve_jit)
CV_FOLDS = range(2, 11)  # the K of train.select cvK

#: What a field's ``groups`` may hold: the lists that the code builds from the fields.
GROUPS = {
    "preset": "a preset may set it (cvs_tf.presets.PRESET_FIELDS)",
    "architecture": "every space passes it to its model class (cvs_tf.spaces.ARCHITECTURE)",
    "branch": "a ModalityBranch argument (cvs_tf.layers.branch.BRANCH_FIELDS)",
    "extend": "a training option an extension may set (cvs_tf.training.extend.TRAIN_OVERRIDES)",
}


def _f(default=dataclasses.MISSING, help: str = "", *, flag: str | None = "", groups: str = "", shown: str = "",
       choices: tuple = (), negate: bool = False, both: bool = False, metavar: str = ""):
    """A config field and its metadata, the one source of the train command's flag, help and lists.

    ``flag``: the ``python -m cvs_tf.train`` option's name ("" = the field's, None = no flag of its own);
    ``help``: its help text; ``shown``: the default as help shows it ("" = the value); ``groups``:
    space-separated names of :data:`GROUPS`; ``choices``, ``metavar``; booleans: ``--FLAG`` sets true,
    ``negate`` gives ``--no-FLAG`` only, ``both`` gives both.
    """
    meta = dict(flag=flag, help=help, shown=shown, groups=tuple(groups.split()), choices=choices, negate=negate,
                both=both, metavar=metavar)
    bad = set(meta["groups"]) - set(GROUPS)
    if bad:
        raise ValueError(f"unknown field group(s) {sorted(bad)}")
    return field(default=default, metadata=meta)


#: The fields that name a registered thing, and the check of each (set by :func:`add_name_check`).
_NAME_CHECKS: dict = {"model.space": None, "loss.kind": None}


def add_name_check(name: str, check) -> None:
    """Have :meth:`RunConfig.validate` call ``check(config)`` for field ``name`` (``ConfigError`` for a name
    its registry does not know). The registries (spaces, pair losses) live above this module:
    ``import cvs_tf`` adds their checks (:mod:`cvs_tf.registries`), so this module imports none of them."""
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

    kind: str = _f("semihard_triplet", "pair loss: semihard_triplet, supcon, infonce, dscmr, max_violation, or one "
                   "registered with cvs_tf.losses.register_pair_loss (docs/losses.md)", flag="loss", metavar="KIND",
                   groups="preset")
    alpha: float = _f(1.0, "weight of the classification term", flag=None, groups="preset")
    beta: float = _f(1.0, "weight of the pair-loss term", flag=None, groups="preset")
    gammas: tuple[float, float, float] = _f((0.25, 0.25, 0.5), "semihard_triplet's weights of its terms", flag=None,
                                            groups="preset")
    margins: tuple[float, float, float] = _f((1.0, 1.0, 1.0), "semihard_triplet's margins", flag=None,
                                             groups="preset")
    symmetric_inter: bool = _f(False, "semihard_triplet's inter term both ways", flag=None, groups="preset")
    reconstruction_weight: float = _f(0.0, "weight of the reconstruction term", flag=None, groups="preset")
    label_smoothing: float = _f(0.0, "label smoothing of the classification term", groups="preset")
    temperature: float = _f(0.1, "temperature of the contrastive losses (supcon, infonce)", groups="preset")
    learn_temperature: bool = _f(False, "learn the temperature (from --temperature) in stage 1", groups="preset")
    invariance: float = _f(1.0, "weight of dscmr's modality-invariance term", groups="preset")
    vse_margin: float = _f(0.2, "hinge margin of max_violation (VSE++)", groups="preset")
    instance_weight: float = _f(0.0, "weight of the instance term, InfoNCE over true pairs (instance-paired sets "
                                "only); 0 = off", groups="preset")
    instance_temperature: float = _f(0.05, "temperature of the instance term (chosen on Tux-12 validation)",
                                     groups="preset")
    xbm_size: int = _f(0, "cross-batch memory (XBM): rows of past embeddings per trained pair that the pair loss "
                       "mines besides the batch (docs/losses.md); 0 = off", groups="preset", metavar="N")
    xbm_warmup: int = _f(100, "training steps of a pair before its cross-batch memory feeds the loss",
                         groups="preset", metavar="STEPS")


@dataclass
class ModelConfig:
    """Which space to build and its architecture switches (docs/model.md)."""

    space: str = _f(DEFAULT_SPACE, "a registered space (docs/model.md): the thesis's joint CVS, stage-wise M-CVS or "
                    "reference RVS, or one added with cvs_tf.spaces.register_space")
    modalities: list[str] | None = _f(None, "modalities to use, in stage order", flag=None, shown="all")
    stages: list[list[str]] | None = _f(None, "stage plan of a multi-stage space (M-CVS, RVS), one comma-separated "
                                        "group per stage, e.g. image,text video audio", flag=None, shown="none")
    reference: str = _f(DEFAULT_REFERENCE, "reference (hub) modality of a space that takes one (RVS): any modality "
                        "of the dataset", metavar="M")
    attention: bool = _f(True, "baseline space without attention blocks", negate=True, shown="attention on",
                         groups="preset architecture")
    dim: int = _f(512, "embedding dimension D", groups="preset architecture branch")
    hidden_dim: int | None = _f(None, "width of the branches' hidden layers", shown="D",
                                groups="preset architecture branch")
    depth: int = _f(1, "hidden layers per branch (1: the thesis's two dense layers)",
                    groups="preset architecture branch")
    dropout: float = _f(0.0, "dropout rate in the branches", groups="preset architecture branch")
    standardize: bool = _f(False, "standardise each feature with its train-split mean and std (stored in the model)",
                           groups="preset architecture branch")
    use_batchnorm: bool = _f(False, "batch normalisation in the branches", flag=None,
                             groups="preset architecture branch")
    use_w_a: bool = _f(True, "AlignedAttention's W_a kernel", flag=None, groups="architecture")
    use_w_b: bool = _f(True, "AlignedAttention's W_b kernel", flag=None, groups="architecture")
    use_w_ab: bool = _f(True, "AlignedAttention's W_ab kernel", flag=None, groups="architecture")


@dataclass
class TrainConfig:
    """Optimisation, sampling and model-selection settings (docs/training.md)."""

    dataset: str | None = _f(None, "dataset name (tux12, digits10, furniture, a name under $CVS_TF_DATA) or directory",
                             shown="tux12")
    epochs: int = _f(100, "max epochs per stage", groups="preset extend")
    batch_size: int = _f(128, "batch size B", groups="preset extend")
    lr: float = _f(1e-3, "Adam learning rate", shown="1e-3", groups="preset extend")
    weight_decay: float = _f(0.0, "AdamW decoupled weight decay; 0 = Adam", groups="preset extend")
    seed: int = _f(0, "seed for initialisation and batch sampling", groups="extend")
    steps_per_epoch: int | None = _f(None, "steps per epoch", shown="one pass over the largest modality",
                                     groups="extend")
    early_stopping: str = _f("val_map", "model selection on the validation split: mAP@50, recall of each item's "
                             "own partner (mean of R@1, R@5, R@10; instance-paired sets), or loss",
                             choices=EARLY_STOPPING, groups="preset extend")
    patience: int = _f(10, "early-stopping patience in epochs", groups="preset extend")
    jit: bool | str = _f(True, "--jit: XLA-compile the train step; --no-jit: run it without XLA (a config file may "
                         f"also give an XLA mode: {', '.join(JIT_MODES)})", both=True, shown="on", groups="extend")
    mixed_precision: bool = _f(False, "float16 (GPU) / bfloat16 (CPU) branches; losses and softmax stay float32",
                               shown="off")
    eval_k: int = _f(50, "K of the mAP@K that selects epochs and is reported", flag=None)
    strategy: str = _f("default", "tf.distribute strategy: one device, MirroredStrategy over this host's GPUs, or "
                       "MultiWorkerMirroredStrategy over the TF_CONFIG cluster (docs/scaling.md)", choices=STRATEGIES)
    deterministic: bool = _f(True, "--deterministic: TensorFlow's op determinism, same seed, same machine, "
                             "bitwise-equal results; --no-deterministic: let TensorFlow pick faster kernels that may "
                             "differ run to run (GPU)", both=True, shown="on", groups="extend")
    select: str = _f("val", "model selection: val (early stopping on the validation split) or cvK, K in 2..10 "
                     "(epochs chosen by stratified K-fold cross-validation over train+val, then one run on all of it)",
                     metavar="{val,cvK}")


def fields_in(group: str | None = None) -> dict[str, tuple[str, ...]]:
    """``{section: field names}`` of the fields in ``group`` (a :data:`GROUPS` name; None: every field)."""
    if group is not None and group not in GROUPS:
        raise ValueError(f"unknown field group {group!r} (known: {', '.join(GROUPS)})")
    return {section: tuple(f.name for f in dataclasses.fields(cls) if group is None or group in f.metadata["groups"])
            for section, cls in (("model", ModelConfig), ("loss", LossConfig), ("train", TrainConfig))}


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
        return from_dict(cls, data, "config")

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
        check_fields(self, "config")
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
                            ("train.patience", t.patience, 1), ("train.eval_k", t.eval_k, 1),
                            ("loss.xbm_size", loss.xbm_size, 0), ("loss.xbm_warmup", loss.xbm_warmup, 0)):
            if v < lo:
                raise ConfigError(f"{name} must be >= {lo}, got {v}")
        if m.hidden_dim is not None and m.hidden_dim < 1:
            raise ConfigError(f"model.hidden_dim must be >= 1 (or null for model.dim), got {m.hidden_dim}")
        for name, v in (("model.dim", m.dim), ("model.hidden_dim", m.hidden_dim), ("model.depth", m.depth),
                        ("train.epochs", t.epochs), ("train.batch_size", t.batch_size),
                        ("train.patience", t.patience), ("train.eval_k", t.eval_k), ("train.steps_per_epoch", t.steps_per_epoch),
                        ("loss.xbm_size", loss.xbm_size), ("loss.xbm_warmup", loss.xbm_warmup)):
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
        if t.early_stopping == "val_recall" and t.select != "val":
            raise ConfigError(f"train.early_stopping val_recall selects on the validation split: it needs "
                              f"train.select val, got {t.select!r}")
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


def select_folds(select: str) -> int | None:
    """K of a ``cvK`` model-selection mode (K in :data:`CV_FOLDS`); None for ``val`` or anything else."""
    m = re.fullmatch(r"cv([0-9]{1,2})", select) if isinstance(select, str) else None
    return int(m.group(1)) if m and int(m.group(1)) in CV_FOLDS else None


INT_LIMIT = 2**31  # TensorFlow's int32 shapes and int64 step counters
