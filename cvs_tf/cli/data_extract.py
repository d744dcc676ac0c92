"""The ``extract`` subcommand of ``python -m cvs_tf.data``: raw media (pictures, texts, WAV sounds, meshes) to a feature set."""

from __future__ import annotations

from pathlib import Path

from cvs_tf.utils.cli import CliError, bounded_int, existing_path, seed_int


def _encoder(text: str) -> tuple[str, str]:
    """``MOD=NAME`` (NAME may carry ``@ARG``)."""
    from cvs_tf.data.encoders import EncoderError, split_spec

    mod, sep, name = text.partition("=")
    if not sep or not mod or not name:
        raise CliError(f"--encoder: expected MODALITY=NAME (e.g. image=efficientnetb0), got {text!r}")
    try:
        split_spec(name)
    except EncoderError as exc:
        raise CliError(f"--encoder: {exc}") from None
    return mod, name


def _test_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"--test-fraction: not a number: {text!r}") from None
    if not 0 < value < 1:  # also refuses nan
        raise CliError(f"--test-fraction: must be in (0, 1), got {text}")
    return value


_test_fraction.bounds = (0, 1)


def add_parser(sub, fraction) -> None:
    """Add ``extract SPEC --out FS [...]`` to the subparsers ``sub`` (``fraction``: the --val-fraction type)."""
    from cvs_tf.data.encoders import DEFAULTS, names
    from cvs_tf.data.extract import DEFAULT_BATCH, DEFAULT_TEST_FRACTION, ON_ERROR

    p = sub.add_parser("extract", help="encode raw media (images, texts, WAV audio, meshes) into a feature set "
                                       "(docs/data.md)")
    p.add_argument("spec", metavar="SPEC", type=existing_path("SPEC", "any", "manifest or folder"),
                   help="CSV or JSON manifest (id, class|classes, [split], one column per modality), or a folder "
                        "DIR/<modality>/<class>/<file>")
    p.add_argument("--out", required=True, type=Path, help="output directory (must not exist)")
    p.add_argument("--encoder", action="append", type=_encoder, default=[], metavar="MOD=NAME",
                   help=f"encoder of a modality ({', '.join(names())}; NAME@ARG: weights file, 'none' or dim); "
                        "defaults: " + ", ".join(f"{k} {v}" for k, v in DEFAULTS.items()))
    p.add_argument("--batch-size", type=bounded_int("--batch-size", 1, 65536), default=DEFAULT_BATCH,
                   help=f"items encoded per batch (and per resumable shard) [{DEFAULT_BATCH}]")
    p.add_argument("--on-error", choices=ON_ERROR, default="fail",
                   help="an item that cannot be read: fail (stop, naming the file) or skip (drop the item, "
                        "report it, record it in the manifest) [fail]")
    p.add_argument("--val-fraction", type=fraction, default=None,
                   help="share of train held out as val, in [0, 1); 0: no validation split "
                        "[0.1; not allowed when the spec gives val items]")
    p.add_argument("--test-fraction", type=_test_fraction, default=DEFAULT_TEST_FRACTION,
                   help=f"share of the items carved as test when the spec has no split column [{DEFAULT_TEST_FRACTION}]")
    p.add_argument("--seed", type=seed_int(), default=0, help="seed of the test and val carve-outs [0]")
    p.add_argument("--name", help="dataset name recorded in the manifest [SPEC's name]")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    """Extract ``args.spec`` into ``args.out`` and print the new set's summary."""
    from cvs_tf.data.extract import extract
    from cvs_tf.data.store import load_feature_set
    from cvs_tf.data.summary import format_summary

    chosen = dict(args.encoder)
    if len(chosen) != len(args.encoder):
        twice = next(m for m, _ in args.encoder if [n for n, _ in args.encoder].count(m) > 1)
        raise CliError(f"--encoder: modality {twice!r} given twice")
    out = extract(args.spec, args.out, encoders=chosen, batch_size=args.batch_size, on_error=args.on_error,
                  val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed, name=args.name,
                  progress=not args.quiet, report=print)
    print(f"wrote {out}")
    print(format_summary(load_feature_set(out)))
    return 0
