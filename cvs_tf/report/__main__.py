"""`python -m cvs_tf.report RUN_DIR [--out FILE.html] [--media DIR]`: one self-contained HTML report of a finished run."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cvs_tf.utils.cli import CliError, existing_path, run_cli, run_dir_parser, seed_int


def build_parser():
    p = run_dir_parser("python -m cvs_tf.report",
                       "Write one self-contained HTML file (figures and media inlined; opens offline) about a finished "
                       "run: summary, mAP heat map and recall beside the baselines, loss curves, per-class AP, "
                       "retrieved-class confusion, the space before and after training, calibrated scores and "
                       "galleries of retrieved items (docs/report.md).")
    p.add_argument("--out", metavar="FILE.html",
                   help="where to write the report; an existing file is replaced only with --overwrite, and only a "
                        "report [RUN_DIR/report.html, which replaces the run's earlier report]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out report")
    p.add_argument("--media", metavar="DIR", type=existing_path("--media", "dir", "media directory"),
                   help="raw media of the set's items for the galleries: a folder with a media.json index, the Tux "
                        "Paint stamps folder, or DIR/<modality>/<id>.<ext> [Tux-12: the unpacked Debian package]")
    p.add_argument("--baselines", default="posterior,cca,label,chance", metavar="LIST",
                   help="comma-separated baselines to set beside the run (posterior, cca, label, chance), or none "
                        "[posterior,cca,label,chance]")
    p.add_argument("--seed", type=seed_int(), default=0, help="seed of the gallery sample and calibration halves [0]")
    return p


def parse_args(argv: Sequence[str] | None = None):
    return build_parser().parse_args(argv)


def _baseline_names(text: str) -> tuple[str, ...]:
    from cvs_tf.evaluation.baselines import BASELINES

    if text.strip().lower() == "none":
        return ()
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in BASELINES]
    if bad or not names:
        raise CliError(f"--baselines: unknown baseline {bad[0] if bad else text!r} "
                       f"(use a comma-separated list of {', '.join(BASELINES)}, or none)")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = _baseline_names(args.baselines)
    if args.overwrite and not args.out:
        raise CliError("--overwrite applies to --out (the run's own report.html is always replaced)")
    if args.out and not args.out.lower().endswith((".html", ".htm")):
        raise CliError(f"--out must name an .html file, got {args.out!r}")
    from cvs_tf.report.build import write_report

    path = write_report(args.run_dir, args.out, overwrite=args.overwrite, error=CliError, media=args.media,
                        baselines=names, seed=args.seed, log=lambda m: print(f"[report] {m}", file=sys.stderr))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
