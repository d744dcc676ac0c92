"""The ``import`` subcommand of ``python -m cvs_tf.data``: own features in a generic layout to a feature set."""

from __future__ import annotations

from pathlib import Path

from cvs_tf.utils.cli import seed_int


def add_parser(sub, fraction) -> None:
    """Add ``import DIR --out FS [...]`` to the subparsers ``sub`` (``fraction``: the --val-fraction type)."""
    from cvs_tf.data.importer import PAIRINGS

    p = sub.add_parser("import", help="import own features from a generic layout (docs/serving.md)")
    p.add_argument("src", type=Path, metavar="DIR",
                   help="folder of <modality>.<split>.npy|npz|parquet files (+ labels, ids, classes.txt)")
    p.add_argument("--out", required=True, type=Path, help="output directory (must not exist)")
    p.add_argument("--val-fraction", type=fraction, default=None,
                   help="share of train held out as val, in [0, 1); 0: no validation split "
                        "[0.1; not allowed when DIR has val files]")
    p.add_argument("--seed", type=seed_int(), default=0, help="seed of the validation carve-out, in [0, 2**32) [0]")
    p.add_argument("--pairing", choices=PAIRINGS, default="auto",
                   help="instance: items paired across modalities (by ids, else row i); class: by class only; "
                        "auto: instance when every file has ids [auto]")
    p.add_argument("--label-base", type=int, choices=(0, 1), default=0, help="smallest class id in the labels [0]")
    p.add_argument("--name", help="dataset name recorded in the manifest [DIR's name]")
    p.add_argument("--allow-id-overlap", action="store_true",
                   help="accept an item id in two splits of one modality (refused by default: a test item "
                        "that is also a train item leaks)")


def run(args) -> int:
    """Import ``args.src`` into ``args.out`` and print the new set's summary."""
    from cvs_tf.data.importer import import_layout
    from cvs_tf.data.store import load_feature_set
    from cvs_tf.data.summary import format_summary

    out = import_layout(args.src, args.out, val_fraction=args.val_fraction, seed=args.seed, pairing=args.pairing,
                        label_base=args.label_base, name=args.name, report=print,
                        allow_id_overlap=args.allow_id_overlap)
    print(f"wrote {out}")
    print(format_summary(load_feature_set(out)))
    return 0
