"""`python -m cvs_tf.train --extend RUN_DIR --dataset D2 --modalities M`: add a modality to a finished M-CVS/RVS run (docs/extending.md)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cvs_tf.cli.common import config_flags_given, summary_line
from cvs_tf.utils.cli import ArgumentParser, CliError


def add_extend_flag(p: ArgumentParser) -> None:
    p.add_argument("--extend", metavar="RUN_DIR",
                   help="add the one modality of --modalities, from --dataset, to this finished M-CVS or RVS run as "
                   "a new stage (everything trained before frozen) in a new run directory --out "
                   "[runs/<run>+<modality>-<time>]; takes the training options, not the recipe (docs/extending.md)")


def extension_record(run_dir) -> dict | None:
    """``resolved.extended_from`` of the run in ``run_dir`` (None: no such run, or not an extension)."""
    try:
        resolved = json.loads((Path(run_dir) / "config.json").read_text()).get("resolved")
        return resolved.get("extended_from") if isinstance(resolved, dict) else None
    except (OSError, ValueError, AttributeError):
        return None


def extends(args) -> bool:
    """Whether the command is this module's: --extend, or --resume of an extended run (refused here)."""
    return args.extend is not None or bool(args.resume and args.out and extension_record(args.out))


def default_extend_dir(source_dir: Path, modality: str) -> Path:
    return Path("runs") / f"{Path(source_dir).resolve().name}+{modality}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_flags(parser: ArgumentParser, args) -> dict:
    """The TrainConfig overrides given; ``CliError`` for --resume or a recipe option."""
    from cvs_tf.training.extend import TRAIN_OVERRIDES

    # (the TrainConfig fields an extension may set are also the dests of their flags)

    if args.extend is None:  # --resume of an extended run: it keeps no checkpoint, its command restarts it
        src = extension_record(args.out)
        raise CliError(f"{args.out}: an extension of {src.get('run_dir')} keeps no checkpoint to resume: rerun the "
                       f"--extend command that made it (python -m cvs_tf.train --extend RUN_DIR --dataset D2 "
                       f"--modalities M --out {args.out}) to restart its stage")
    if args.resume:
        raise CliError("--extend starts a new run from a finished one: it cannot --resume (an interrupted "
                       "extension restarts with the same command)")
    allowed = {"dataset", "modalities", *TRAIN_OVERRIDES}
    recipe = argparse.Namespace(**{k: None if k in allowed else v for k, v in vars(args).items()})
    refused = config_flags_given(parser, recipe)
    if refused:
        raise CliError(f"--extend keeps the recipe of the run it extends: remove {', '.join(refused)} (it takes "
                       "--dataset, --modalities, --out and the training options --epochs, --seed, --lr, ...)")
    if not args.dataset:
        raise CliError("--extend needs --dataset D2: the feature set holding the new modality and a known one")
    if not args.modalities or len(args.modalities) != 1:
        raise CliError(f"--extend needs --modalities M: the one modality to add (got {args.modalities or 'none'}; "
                       "extend the extended run again for another)")
    return {k: getattr(args, k) for k in TRAIN_OVERRIDES if getattr(args, k) is not None}


def run_extend(parser: ArgumentParser, args, callbacks=None) -> int:
    """The --extend branch of ``python -m cvs_tf.train``: checks, trains the new stage, prints its tables."""
    train = _check_flags(parser, args)
    modality = args.modalities[0].lower()
    from cvs_tf.evaluation.table import format_table
    from cvs_tf.training.extend import ExtendTrainer, open_source

    source = open_source(args.extend)
    out = Path(args.out) if args.out else default_extend_dir(source.run_dir, modality)
    trainer = ExtendTrainer(source, modality, out, dataset=args.dataset, train=train,
                            verbose=0 if args.quiet else "auto", callbacks=callbacks)
    result = trainer.run()
    ext = trainer.extension
    print(f"\nrun directory: {out} (extends {source.run_dir} with {modality}, linked to "
          f"{', '.join(ext['partners'])}" + (f"; no block to {', '.join(ext['absent'])}" if ext["absent"] else "") + ")")
    for table in result.tables.values():
        print("\n" + format_table(table))
    print("\n" + summary_line(result.metrics))
    return 0
