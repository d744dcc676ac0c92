"""`python -m cvs_tf.export RUN_DIR --out DIR`: a run's per-modality encoders as SavedModels (and optionally ONNX)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from cvs_tf.utils.cli import MAX_STAGE, ArgumentParser, CliError, bounded_int, run_dir_parser


def build_parser() -> ArgumentParser:
    p = run_dir_parser(
        "python -m cvs_tf.export",
        "Export a trained run's encoders: one SavedModel per modality, mapping features (N, d_m) "
        "float32 to L2-normalised embeddings (N, D), plus export.json. Loads with plain tf.saved_model.load.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="export directory (must not exist, or be empty)")
    p.add_argument("--stage", type=bounded_int("--stage", 1, MAX_STAGE), help="export the model of this (1-based) stage [last]")
    p.add_argument("--format", choices=("savedmodel", "onnx"), default="savedmodel",
                   help="savedmodel (default), or onnx: the SavedModels plus <modality>.onnx (needs tf2onnx)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    p.add_argument("--with-encoders", action="store_true",
                   help="also <modality>.raw SavedModels from raw input (pixels, strings) through the feature set's "
                        "Keras-native encoders (sets made by python -m cvs_tf.data extract); other encoders are recorded")
    return p


def parse_args(argv: Sequence[str] | None = None):
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from cvs_tf.serving.export import EXPORT_MANIFEST, export_run
    from cvs_tf.training.run_dir import RunDirError

    formats = ("savedmodel", "onnx") if args.format == "onnx" else ("savedmodel",)
    try:
        out = export_run(args.run_dir, args.out, stage=args.stage, formats=formats, overwrite=args.overwrite,
                         with_encoders=args.with_encoders)
    except RunDirError as exc:
        raise CliError(str(exc)) from None
    manifest = json.loads((out / EXPORT_MANIFEST).read_text())
    mods = ", ".join(f"{m} ({manifest['modalities'][m]['input_dim']})" for m in manifest["modality_order"])
    print(f"exported {manifest['space']} stage {manifest['stage_name']} to {out}: D = {manifest['dim']}; "
          f"modalities {mods}; formats {', '.join(manifest['formats'])}")
    return 0
