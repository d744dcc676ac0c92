"""`python -m cvs_tf.train`: train a CVS, M-CVS or RVS space into a run directory (see docs/training.md)."""

from __future__ import annotations

import dataclasses
import time
import typing
from collections.abc import Sequence
from pathlib import Path

from cvs_tf.cli.common import CONFIG_OPTIONS, FIELD_FLAGS, config_flags_given, summary_line  # noqa: F401 (public)
from cvs_tf.cli.extend import add_extend_flag
from cvs_tf.config import ConfigError, LossConfig, ModelConfig, RunConfig, TrainConfig, select_folds
from cvs_tf.presets import AUTO, preset_names
from cvs_tf.tuning.auto import DEFAULT_BUDGET_MINUTES
from cvs_tf.utils.cli import ArgumentParser, CliError, positive_float

SECTIONS = {"model": ModelConfig, "train": TrainConfig, "loss": LossConfig}

def build_parser(*, spaces: list[str] | None = None) -> ArgumentParser:
    """The train command's parser; ``spaces``: the --space choices (default: every registered space)."""
    p = ArgumentParser(
        prog="python -m cvs_tf.train",
        description="Train a cross-modal space (CVS, M-CVS or RVS) on a feature set. "
        "Defaults follow the thesis: D=512, batch 128, Adam 1e-3, margins 1.0, gammas (0.25, 0.25, 0.5).",
    )
    from cvs_tf.cli.tune import select_mode
    from cvs_tf.spaces import space_names  # (the names only: no TensorFlow for --help)

    extra = {"space": {"choices": space_names() if spaces is None else spaces}, "select": {"type": select_mode}}
    _add_field_flags(p, "model", extra)
    p.add_argument("--modalities", nargs="+", metavar="M", help=_help("model", "modalities"))
    p.add_argument("--stages", nargs="+", metavar="M[,M]", help=_help("model", "stages"))
    _add_field_flags(p, "train", extra)
    p.add_argument("--preset", choices=[*preset_names(), AUTO],
                   help="a named recipe: thesis (the thesis's defaults), best (chosen on the shipped sets' "
                   "validation splits; docs/results.md) or auto (a budgeted search for this set on validation or "
                   "--select cvK, never test); flags override it; not with --config [thesis]")
    p.add_argument("--budget-minutes", type=positive_float("--budget-minutes"), metavar="M",
                   help="--preset auto: time for the search; no candidate starts past it "
                   f"[{DEFAULT_BUDGET_MINUTES:g}]")
    _add_field_flags(p, "loss", extra)
    p.add_argument("--config", metavar="FILE", help="JSON run config (fields of RunConfig); flags override it [none]")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory [runs/<space>-<dataset>-<time>]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last completed epoch")
    add_extend_flag(p)
    p.add_argument("--quiet", action="store_true", help="no per-step progress bar")
    return p


def _help(section: str, name: str) -> str:
    """A field's help text with its default (``[...]``), from its metadata in config.py."""
    f = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    shown = f.metadata["shown"] or ({True: "on", False: "off"}.get(f.default, f.default)
                                    if isinstance(f.default, bool) else f.default)
    return f"{f.metadata['help']} [{shown}]"


def _add_field_flags(p: ArgumentParser, section: str, extra: dict) -> None:
    """One option per field of ``section`` that has a flag (config.py's metadata); every one defaults to None."""
    hints = typing.get_type_hints(SECTIONS[section])
    for f in dataclasses.fields(SECTIONS[section]):
        meta = f.metadata
        if meta["flag"] is None:
            continue
        dest = meta["flag"] or f.name
        option, kwargs = "--" + dest.replace("_", "-"), dict(extra.get(dest, {}))
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        if meta["metavar"]:
            kwargs["metavar"] = meta["metavar"]
        if meta["negate"]:
            p.add_argument(f"--no-{option[2:]}", dest=dest, action="store_false", default=None,
                           help=_help(section, f.name))
        elif hints[f.name] is bool or meta["both"]:
            p.add_argument(option, dest=dest, action="store_true", default=None, help=_help(section, f.name))
            if meta["both"]:
                p.add_argument(f"--no-{option[2:]}", dest=dest, action="store_false", help=f"see {option}")
        else:
            base = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
            if base in (int, float):  # (int | None: an int)
                kwargs.setdefault("type", base)
            p.add_argument(option, dest=dest, help=_help(section, f.name), **kwargs)


def options_table(parser: ArgumentParser | None = None) -> str:
    """docs/training.md's options table: one row per option of the parser (its flags, default, help, config field);
    --space lists the built-in spaces, whatever user code registered."""
    from cvs_tf.spaces import builtin_space_names

    parser = parser or build_parser(spaces=builtin_space_names())
    field_of = {dest: f"{section}.{name}" for dest, section, name in FIELD_FLAGS}
    field_of.update(modalities="model.modalities", stages="model.stages")
    rows, seen = ["| option | default | what it does | config field |", "|---|---|---|---|"], set()
    for action in parser._actions:
        if action.dest in seen or action.dest in ("help", "verbose"):
            continue
        seen.add(action.dest)
        group = [a for a in parser._actions if a.dest == action.dest]
        names = " / ".join(f"`{a.option_strings[-1]}{_metavar(a)}`" for a in group)
        text, _, default = (action.help or "").rpartition(" [")
        text, default = (text, default[:-1]) if default.endswith("]") else (action.help or "", "off")
        field = f"`{field_of[action.dest]}`" if action.dest in field_of else ""
        rows.append(f"| {names} | {_cell(default)} | {_cell(text)} | {field} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: ``|`` and ``<`` escaped."""
    return text.replace("|", "\\|").replace("<", "\\<")


def _metavar(action) -> str:
    if action.nargs == 0:
        return ""
    if action.metavar:
        name = action.metavar
    elif action.choices:
        name = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        name = action.dest.upper()
    return f" {name} ..." if action.nargs == "+" else f" {name}"


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
