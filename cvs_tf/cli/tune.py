"""`python -m cvs_tf.tune`: search RunConfig hyperparameters with Optuna on validation mAP, then test the best once (docs/tuning.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cvs_tf.utils.cli import ArgumentParser, CliError, bounded_int, existing_path, seed_int

#: bounds of --trials and --epochs (docs/tuning.md)
MAX_TRIALS, MAX_EPOCHS = 10_000, 100_000


def select_mode(text: str) -> str:
    """A ``--select`` value (val or cvK, K in 2..10); one ``error:`` line otherwise."""
    from cvs_tf.config import CV_FOLDS, select_folds

    if text != "val" and select_folds(text) is None:
        raise CliError(f"--select must be val or cvK with K in {CV_FOLDS.start}..{CV_FOLDS.stop - 1} (e.g. cv5), "
                       f"got {text!r}")
    return text


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m cvs_tf.tune",
        description="Tune a space's hyperparameters (loss kind, dim, hidden width, depth, dropout, standardize, "
        "weight decay, lr, label smoothing, temperature) with Optuna's seeded TPE on validation mAP@50; write "
        "DIR/best_config.json, train it once more and evaluate it once on test.",
    )
    from cvs_tf.spaces import space_names  # (names only: no TensorFlow for --help)

    p.add_argument("--dataset", help="dataset name (tux12, digits10, furniture, a name under $CVS_TF_DATA) or directory [tux12]")
    p.add_argument("--space", choices=space_names(), help="the space to tune [the default space]")
    p.add_argument("--trials", type=bounded_int("--trials", 1, MAX_TRIALS),
                   help="total trials of the study (with --resume: a new total) [20]")
    p.add_argument("--out", metavar="DIR", required=True, help="study directory: new or empty (or --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue the study in --out: run only the trials missing up to --trials")
    p.add_argument("--seed", type=seed_int(), help="seeds the TPE sampler and every trial's training [0]")
    p.add_argument("--epochs", type=bounded_int("--epochs", 1, MAX_EPOCHS),
                   help="max epochs per stage of every trial [30; with --config: its train.epochs]")
    p.add_argument("--loss-kinds", metavar="A,B,...",
                   help="loss kinds to choose among [the registered ones of semihard_triplet, supcon, infonce, "
                   "dscmr, max_violation]")
    p.add_argument("--config", metavar="FILE", type=existing_path("--config", noun="config file"), help="JSON RunConfig of the fields not tuned (batch size, patience, ...)")
    p.add_argument("--search-space", metavar="FILE", type=existing_path("--search-space", noun="search space file"),
                   help='JSON overrides of the search space, e.g. {"dim": {"low": 64, "high": 128}, "depth": null}')
    p.add_argument("--select", type=select_mode, metavar="{val,cvK}",
                   help="how each trial is scored: val (the validation split) or cvK, K in 2..10 (stratified K-fold "
                   "cross-validation over train+val, mean over folds; the final run trains on train+val) [val]")
    p.add_argument("--progress", action="store_true", help="also print every trial's per-epoch lines")
    return p


def parse_args(argv: Sequence[str] | None = None):
    return build_parser().parse_args(argv)


def _read_json(path: str, what: str):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise CliError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CliError(f"{path}: cannot read the {what} ({' '.join(str(exc).split())[:120]})") from None


def settings_from_args(args):
    """The TuneSettings of the command line (None where an option was not given)."""
    from cvs_tf.config import RunConfig
    from cvs_tf.tuning import TuneSettings, default_space, override_space

    base = RunConfig.from_file(args.config) if args.config else None
    search = None
    if args.loss_kinds is not None or args.search_space:
        kinds = None if args.loss_kinds is None else [k.strip() for k in args.loss_kinds.split(",") if k.strip()]
        search = default_space(kinds)
        if args.search_space:
            search = override_space(search, _read_json(args.search_space, "search space"))
        search.check()
    return TuneSettings(dataset=args.dataset, space=args.space, trials=args.trials, seed=args.seed,
                        epochs=args.epochs, base=base, search=search, select=args.select)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from_args(args)
    from cvs_tf.tuning import tune

    result = tune(settings, Path(args.out), resume=args.resume, log=print_flush, verbose=0,
                  trial_log=(lambda m: print_flush(f"  {m}")) if args.progress else None)
    f = result.summary["final"]
    score = "val" if result.best.get("selection") is None else f"cv{result.best['selection']['folds']}"
    final_val = "-" if f["val_map"] is None else f"{f['val_map']:.4f}"
    print(f"chosen: trial #{result.best['number']} ({score} mAP@{f['k']} {result.best['val_map']:.4f}); "
          f"final run: val {final_val}, test mAP@{f['k']} {f['test_map']:.4f}; "
          f"config: {Path(args.out) / 'best_config.json'}", flush=True)
    return 0


def print_flush(msg: str) -> None:
    print(msg, flush=True)
