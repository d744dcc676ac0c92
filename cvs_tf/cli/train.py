"""`python -m cvs_tf.train`: train a CVS, M-CVS or RVS space into a run directory (see docs/training.md)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from cvs_tf.cli.common import CONFIG_OPTIONS, config_flags_given, summary_line  # noqa: F401 (CONFIG_OPTIONS: public)
from cvs_tf.config import EARLY_STOPPING, STRATEGIES, ConfigError, RunConfig, select_folds
from cvs_tf.utils.cli import ArgumentParser, CliError, positive_float

# (flag dest, config section, field) of the flags that set one RunConfig field each
FIELD_FLAGS = (
    ("space", "model", "space"), ("reference", "model", "reference"), ("attention", "model", "attention"),
    ("dim", "model", "dim"), ("hidden_dim", "model", "hidden_dim"), ("depth", "model", "depth"),
    ("dropout", "model", "dropout"), ("standardize", "model", "standardize"),
    ("loss", "loss", "kind"), ("label_smoothing", "loss", "label_smoothing"), ("temperature", "loss", "temperature"),
    ("learn_temperature", "loss", "learn_temperature"), ("invariance", "loss", "invariance"),
    ("vse_margin", "loss", "vse_margin"), ("instance_weight", "loss", "instance_weight"),
    ("instance_temperature", "loss", "instance_temperature"),
    ("dataset", "train", "dataset"), ("epochs", "train", "epochs"), ("batch_size", "train", "batch_size"),
    ("lr", "train", "lr"), ("weight_decay", "train", "weight_decay"), ("seed", "train", "seed"),
    ("steps_per_epoch", "train", "steps_per_epoch"), ("early_stopping", "train", "early_stopping"),
    ("patience", "train", "patience"), ("jit", "train", "jit"), ("mixed_precision", "train", "mixed_precision"),
    ("strategy", "train", "strategy"), ("deterministic", "train", "deterministic"), ("select", "train", "select"),
)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m cvs_tf.train",
        description="Train a cross-modal space (CVS, M-CVS or RVS) on a feature set. "
        "Defaults follow the thesis: D=512, batch 128, Adam 1e-3, margins 1.0, gammas (0.25, 0.25, 0.5).",
    )
    from cvs_tf.spaces import space_names  # (the names only: no TensorFlow for --help)

    p.add_argument("--space", choices=space_names(),
                   help="a registered space (docs/model.md): the thesis's joint CVS [default], stage-wise M-CVS or "
                   "reference RVS, or one added with cvs_tf.spaces.register_space")
    p.add_argument("--reference", metavar="M",
                   help="reference (hub) modality of a space that takes one (RVS): any modality of the dataset [image]")
    p.add_argument("--dataset", help="dataset name (tux12, digits10, a name under $CVS_TF_DATA) or directory [tux12]")
    p.add_argument("--modalities", nargs="+", metavar="M", help="modalities to use, in stage order [all]")
    p.add_argument("--stages", nargs="+", metavar="M[,M]",
                   help="stage plan of a multi-stage space (M-CVS, RVS), one comma-separated group per stage, "
                   "e.g. image,text video audio")
    p.add_argument("--no-attention", dest="attention", action="store_false", default=None,
                   help="baseline space without attention blocks")
    p.add_argument("--epochs", type=int, help="max epochs per stage [100]")
    p.add_argument("--batch-size", type=int, help="batch size B [128]")
    p.add_argument("--lr", type=float, help="Adam learning rate [1e-3]")
    p.add_argument("--seed", type=int, help="seed for initialisation and batch sampling [0]")
    p.add_argument("--steps-per-epoch", type=int, help="steps per epoch [one pass over the largest modality]")
    p.add_argument("--early-stopping", choices=EARLY_STOPPING,
                   help="model selection on the validation split: mAP@50 or loss [val_map]")
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs [10]")
    p.add_argument("--jit", dest="jit", action="store_true", default=None, help="XLA-compile the train step [on]")
    p.add_argument("--no-jit", dest="jit", action="store_false", help="run the train step without XLA")
    p.add_argument("--mixed-precision", action="store_true", default=None,
                   help="float16 (GPU) / bfloat16 (CPU) branches; losses and softmax stay float32")
    from cvs_tf.cli.tune import select_mode

    p.add_argument("--select", type=select_mode, metavar="{val,cvK}",
                   help="model selection: val (early stopping on the validation split) or cvK, K in 2..10 (epochs "
                   "chosen by stratified K-fold cross-validation over train+val, then one run on all of it) [val]")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="tf.distribute strategy: one device, MirroredStrategy over this host's GPUs, or "
                   "MultiWorkerMirroredStrategy over the TF_CONFIG cluster (docs/scaling.md) [default]")
    p.add_argument("--deterministic", dest="deterministic", action="store_true", default=None,
                   help="TensorFlow's op determinism: same seed, same machine, bitwise-equal results [on]")
    p.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                   help="let TensorFlow pick faster kernels that may differ run to run (GPU)")
    _add_recipe_flags(p)
    p.add_argument("--config", metavar="FILE", help="JSON run config (fields of RunConfig); flags override it")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory [runs/<space>-<dataset>-<time>]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last completed epoch")
    from cvs_tf.cli.extend import add_extend_flag

    add_extend_flag(p)
    p.add_argument("--quiet", action="store_true", help="no per-step progress bar")
    return p


def _add_recipe_flags(p: ArgumentParser) -> None:
    """The preset and the loss / regularisation / size flags (docs/training.md, docs/losses.md)."""
    from cvs_tf.config import LossConfig
    from cvs_tf.presets import AUTO, preset_names

    p.add_argument("--preset", choices=[*preset_names(), AUTO],
                   help="a named recipe: thesis (the thesis's defaults), best (chosen on the shipped sets' "
                   "validation splits; docs/results.md) or auto (a budgeted search for this set on validation or "
                   "--select cvK, never test); flags override it; not with --config")
    p.add_argument("--budget-minutes", type=positive_float("--budget-minutes"), metavar="M",
                   help="--preset auto: time for the search; no candidate starts past it [10]")
    p.add_argument("--loss", metavar="KIND",
                   help=f"pair loss: semihard_triplet, supcon, infonce, dscmr, max_violation, ... [{LossConfig.kind}]")
    p.add_argument("--dim", type=int, help="embedding dimension D [512]")
    p.add_argument("--hidden-dim", type=int, help="width of the branches' hidden layers [D]")
    p.add_argument("--depth", type=int, help="hidden layers per branch [1]")
    p.add_argument("--dropout", type=float, help="dropout rate in the branches [0]")
    p.add_argument("--standardize", action="store_true", default=None,
                   help="standardise each feature with its train-split mean and std (stored in the model)")
    p.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay; 0 = Adam [0]")
    p.add_argument("--label-smoothing", type=float, help="label smoothing of the classification term [0]")
    p.add_argument("--temperature", type=float, help="temperature of the contrastive losses [0.1]")
    p.add_argument("--learn-temperature", action="store_true", default=None,
                   help="learn the temperature (from --temperature) in stage 1")
    p.add_argument("--invariance", type=float, help="weight of dscmr's modality-invariance term [1.0]")
    p.add_argument("--vse-margin", type=float, help="hinge margin of max_violation (VSE++) [0.2]")
    p.add_argument("--instance-weight", type=float,
                   help="weight of the instance term, InfoNCE over true pairs (instance-paired sets only); 0 = off [0]")
    p.add_argument("--instance-temperature", type=float, help="temperature of the instance term [0.05]")


def parse_args(argv: Sequence[str] | None = None):
    return build_parser().parse_args(argv)


def config_from_args(args) -> RunConfig:
    """Defaults, then --preset or --config, then explicit flags."""
    if args.preset and args.config:
        raise CliError("--preset and --config both give a whole recipe: use one (flags override either)")
    if args.budget_minutes is not None and args.preset != "auto":
        raise CliError("--budget-minutes is the time of --preset auto's search: add --preset auto")
    if args.preset and args.preset != "auto":  # (auto: the defaults and flags are the search's base)
        from cvs_tf.presets import load_preset

        cfg = load_preset(args.preset)
    else:
        cfg = RunConfig.from_file(args.config) if args.config else RunConfig()
    m = cfg.model
    for src, section, attr in FIELD_FLAGS:
        value = getattr(args, src)
        if value is not None:
            setattr(getattr(cfg, section), attr, value)
    if args.modalities:
        m.modalities = [x.lower() for x in args.modalities]
    if args.stages:
        m.stages = [[x.strip().lower() for x in g.split(",") if x.strip()] for g in args.stages]
    cfg.validate()
    from cvs_tf.spaces import get_space, multi_stage_names, space_names

    if m.stages and not get_space(m.space).multi_stage:
        raise ConfigError(f"--stages needs --space {' or '.join(multi_stage_names())}")
    if args.reference is not None and "reference" not in get_space(m.space).options:
        takers = [n for n in space_names() if "reference" in get_space(n).options]
        raise ConfigError(f"--reference applies to a space with a reference modality ({', '.join(takers)}), "
                          f"not {m.space}")
    return cfg


def fixed_fields(args) -> dict:
    """``{"section.field": value}`` of the recipe flags given (a preset's fields): --preset auto keeps them fixed."""
    from cvs_tf.presets import PRESET_FIELDS

    return {f"{section}.{attr}": getattr(args, src) for src, section, attr in FIELD_FLAGS
            if getattr(args, src) is not None and attr in PRESET_FIELDS.get(section, ())}


def default_run_dir(cfg: RunConfig) -> Path:
    ds = Path(cfg.train.dataset).name if cfg.train.dataset else "tux12"
    from cvs_tf.spaces import get_space

    att = "" if cfg.model.attention else "-noatt"
    return Path("runs") / f"{get_space(cfg.model.space).run_tag(cfg)}{att}-{ds}-{time.strftime('%Y%m%d-%H%M%S')}"


def main(argv: Sequence[str] | None = None, callbacks=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from cvs_tf.cli.extend import extends, run_extend

    if extends(args):  # --extend: a new stage on a finished run (or --resume of one, refused there)
        return run_extend(parser, args, callbacks)
    if args.resume:
        if not args.out:
            raise CliError("--resume needs --out RUN_DIR")
        flags = config_flags_given(parser, args)
        if flags:
            raise CliError(f"--resume continues the run with its saved config.json and takes no config options: "
                           f"remove {', '.join(flags)} (or train a new run into another --out)")
        out = Path(args.out)
        if not (out / "config.json").is_file():
            raise CliError(f"{out / 'config.json'}: no run to resume (missing config.json)")
        from cvs_tf.training.run_dir import read_run_config

        cfg, resolved = read_run_config(out)
    else:
        cfg = config_from_args(args)
        out = Path(args.out) if args.out else default_run_dir(cfg)

    verbose = 0 if args.quiet else "auto"
    if not args.resume and args.preset == "auto":
        from cvs_tf.tuning.auto import run_auto

        result = run_auto(cfg, out, fixed=fixed_fields(args), budget_minutes=args.budget_minutes, verbose=verbose,
                          callbacks=callbacks)
    else:
        from cvs_tf.training.selection import resume_kwargs, train_selected

        kwargs = resume_kwargs(cfg, resolved) if args.resume else {}
        result = train_selected(cfg, out, verbose=verbose, callbacks=callbacks, resume=args.resume, **kwargs)
    from cvs_tf.evaluation.table import format_table

    print(f"\nrun directory: {out}")
    for split in ("val", "test"):
        if split in result.tables:
            print("\n" + format_table(result.tables[split]))
        else:
            print(f"\n{split}: no validation split in the dataset (trained with --early-stopping none)"
                  if select_folds(cfg.train.select) is None else
                  f"\n{split}: none left (--select {cfg.train.select}: the final run trained on train+val)")
    print("\n" + summary_line(result.metrics))
    return 0
