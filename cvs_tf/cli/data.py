"""``python -m cvs_tf.data``: inspect feature sets, write synthetic stand-ins, convert official feature files, import and extract own data.

Subcommands::

    inspect DIR|NAME                      summary table of a feature set (validates it fully)
    synth NAME --out DIR [--scale S] [--seed N] [--multi-label] [--val-fraction F]
    convert NAME SRC --out DIR [--val-fraction F] [--seed N] [--multi-label] [--variant V] [--allow-extra-classes]
    import DIR --out DIR [--val-fraction F] [--seed N] [--pairing auto|instance|class] [--label-base 0|1] [--name N]
                         [--allow-id-overlap]
    extract SPEC --out DIR [--encoder MOD=NAME ...] [--batch-size N] [--on-error fail|skip] [--val-fraction F]
                           [--test-fraction F] [--seed N] [--name N] [--quiet]

Bad input prints one ``error: ...`` line on stderr and exits with status 2; a failed ``synth``
or ``convert`` leaves no output directory behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cvs_tf.cli import data_extract, data_import
from cvs_tf.data.converters import CONVERTERS, offering
from cvs_tf.data.converters.xmedianet import VARIANTS
from cvs_tf.data.registry import SYNTH_NAMES, dataset_path
from cvs_tf.data.store import load_feature_set
from cvs_tf.data.summary import format_summary
from cvs_tf.data.synthetic import DATASET_SPECS
from cvs_tf.utils.cli import ArgumentParser, CliError, seed_int

CONVERT_NAMES = tuple(CONVERTERS)
MULTI_LABEL = {"synth": [n for n, s in DATASET_SPECS.items() if s.multi_label], "convert": offering("multi_label")}


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"--val-fraction: not a number: {text!r}") from None
    if not 0 <= value < 1:  # also refuses nan
        raise CliError(f"--val-fraction: must be in [0, 1) (0: no validation split), got {text}")
    return value


_fraction.bounds = (0, 1)


def _scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"--scale: not a number: {text!r}") from None
    if not 0 < value <= 1:
        raise CliError(f"--scale: must be in (0, 1], got {text}")
    return value


_scale.bounds = (0, 1)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m cvs_tf.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)

    p = sub.add_parser("inspect", help="print a summary table of a feature set")
    p.add_argument("dataset", help="feature-set directory, or a name under $CVS_TF_DATA / an embedded set")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check of every array")

    p = sub.add_parser("synth", help="write a synthetic stand-in with a dataset's published shapes")
    p.add_argument("name", choices=SYNTH_NAMES)
    p.add_argument("--out", required=True, type=Path, help="output directory (must not exist)")
    p.add_argument("--scale", type=_scale, default=1.0, help="shrink every count by this factor (0, 1]")
    p.add_argument("--seed", type=seed_int(), default=0, help="in [0, 2**32) [0]")
    p.add_argument("--val-fraction", type=_fraction, default=0.1,
                   help="share of train held out as val, in [0, 1); 0: no validation split [0.1]")
    p.add_argument("--multi-label", action="store_true", help=f"{', '.join(MULTI_LABEL['synth'])} only: multi-hot labels")

    p = sub.add_parser("convert", help="convert official feature files to a feature set")
    p.add_argument("name", choices=CONVERT_NAMES)
    p.add_argument("src", type=Path, help="the official file or directory (layouts: docs/data.md)")
    p.add_argument("--out", required=True, type=Path, help="output directory (must not exist)")
    p.add_argument("--val-fraction", type=_fraction, default=0.1,
                   help="share of train held out as val, in [0, 1); 0: no validation split [0.1]")
    p.add_argument("--seed", type=seed_int(), default=0, help="seed of the validation carve-out, in [0, 2**32) [0]")
    p.add_argument("--allow-extra-classes", action="store_true",
                   help="accept labels beyond the dataset's documented class count (a variant with more classes)")
    p.add_argument("--multi-label", action="store_true",
                   help=f"{', '.join(MULTI_LABEL['convert'])} only: (N, C) multi-hot label files")
    p.add_argument("--variant", choices=VARIANTS, default="auto",
                   help=f"{', '.join(offering('variant'))} only: full file or the image-text Doc2Vec file "
                        "(auto: from the file name)")
    data_import.add_parser(sub, _fraction)
    data_extract.add_parser(sub, _fraction)
    return parser


def parse_args(argv: Sequence[str] | None = None):
    args = build_parser().parse_args(argv)
    owners = MULTI_LABEL.get(args.command, [])
    if getattr(args, "multi_label", False) and args.name not in owners:
        raise CliError(f"--multi-label: only {', '.join(owners)} has a multi-label option, not {args.name}")
    if args.command == "convert" and args.variant != "auto" and args.name not in offering("variant"):
        raise CliError(f"--variant: only {', '.join(offering('variant'))} has variants, not {args.name}")
    return args


def _inspect(args) -> int:
    fs = load_feature_set(dataset_path(args.dataset), verify=not args.no_verify)
    print(format_summary(fs))
    return 0


def _synth(args) -> int:
    from cvs_tf.data.synthetic import write_synthetic

    out = write_synthetic(args.name, args.out, args.scale, args.seed, multi_label=args.multi_label,
                          val_fraction=args.val_fraction)
    print(f"wrote synthetic stand-in {args.name} to {out}")
    print(format_summary(load_feature_set(out)))
    return 0


def _convert(args) -> int:
    from cvs_tf.data.converters import convert

    options = {option: getattr(args, option) for option in CONVERTERS[args.name].options}
    out = convert(args.name, args.src, args.out, val_fraction=args.val_fraction, seed=args.seed,
                  report=print, allow_extra_classes=args.allow_extra_classes, **options)
    print(f"wrote {args.name} to {out}")
    print(format_summary(load_feature_set(out)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return {"inspect": _inspect, "synth": _synth, "convert": _convert, "import": data_import.run,
            "extract": data_extract.run}[args.command](args)
