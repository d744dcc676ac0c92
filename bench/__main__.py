"""Run every benchmark module of ``bench`` (``python -m bench [--quick] [--only NAME ...] [--space SPACE]``) and print one combined table."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from collections.abc import Sequence

import bench
from bench.train_step import SPACE_NAMES
from cvs_tf.utils.cli import ArgumentParser, CliError, run_cli


def discover() -> dict[str, object]:
    """Every ``bench/<name>.py`` that defines ``run(quick)``, by name (sorted)."""
    found = {}
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)):
            found[info.name] = module
    return found


def combined_table(rows: list[dict]) -> str:
    """Rows of every benchmark as one aligned text table (union of keys, first-seen order)."""
    if not rows:
        return "(no results)"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])


def main(argv: Sequence[str] | None = None) -> int:
    modules = discover()
    parser = ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes / few repeats: a smoke run (docs untouched)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(modules),
                        help=f"run only these benchmarks (of: {', '.join(modules)})")
    parser.add_argument("--space", choices=SPACE_NAMES,
                        help="train_step: measure this space alone (docs untouched)")
    args = parser.parse_args(argv)
    selected = [name for name in modules if not args.only or name in args.only]
    if args.space and "train_step" not in selected:
        raise CliError("--space applies to train_step, which is not selected (--only)")
    rows: list[dict] = []
    for name in selected:
        module = modules[name]
        print(f"== bench.{name}{' (quick)' if args.quick else ''}", flush=True)
        t0 = time.perf_counter()
        result = module.run(args.quick, **({"space": args.space} if name == "train_step" and args.space else {}))
        if not isinstance(result, list):
            raise CliError(f"bench.{name}.run must return a list of dict rows, got {type(result).__name__}")
        rows += result
        print(f"   done in {time.perf_counter() - t0:.1f} s", flush=True)
    print()
    print(combined_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
