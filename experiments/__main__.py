"""``python -m experiments``: list, run and publish the thesis experiments (one JSON config per table or figure).

Usage::

    python -m experiments list
    python -m experiments run NAME [NAME ...] [--data DIR] [--quick] [--seeds N]
    python -m experiments render NAME [NAME ...]      # rewrite results/NAME.* from its recorded runs
    python -m experiments publish NAME [NAME ...] [--force]  # results/NAME.md (+ PNG) -> docs/results/NAME.md

``NAME`` is a config name (``table8``, ``fig25``, ``real_tux12``, ...), ``figures`` (every
figure) or ``all``. ``--data DIR`` (or ``$CVS_TF_DATA``) points at converted real features: a
feature-set folder, or a folder holding them by name (``DIR/xmedia``, ``DIR/pascal``, ...);
without them each dataset's synthetic stand-in is generated (cached under
``data_cache/synth/``) and every title says "synthetic stand-in — not comparable to the thesis".
Outputs: ``results/NAME.{md,csv,json}`` and ``results/NAME*.png``; run folders under
``runs/experiments/``.

``publish`` writes each experiment's page ``docs/results/NAME.md`` (``--pages DIR``; its figures go to
``docs/figures/``); the summary ``docs/results.md`` links the pages and is written by hand. It never
replaces a full result with a ``--quick`` one unless ``--force`` is given: each published section
records which it holds (``<!-- run: full -->`` / ``<!-- run: quick -->``; a section without the
marker is taken as full unless its text says "Quick run").
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from cvs_tf.utils.atomic import atomic_file
from cvs_tf.utils.cli import ArgumentParser, CliError, positive_int, run_cli

PAGES = "docs/results"  # one page per experiment: docs/results/NAME.md
SUMMARY = "results.md"  # the summary page beside it, docs/results.md, links each page
FIG_DIR = "figures"  # figures go to docs/figures/


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m experiments", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    sub.add_parser("list", help="list the experiments, their kind and title")
    r = sub.add_parser("run", help="run experiments and write results/NAME.{md,csv,json} and figures")
    r.add_argument("names", nargs="+", metavar="NAME", help="experiment name, 'figures' or 'all'")
    r.add_argument("--data", metavar="DIR", help="converted real features: one feature set, or a folder of them by name "
                   "[$CVS_TF_DATA; else the synthetic stand-in]")
    r.add_argument("--quick", action="store_true", help="scaled data, few epochs, one seed: minutes on 2 cores")
    r.add_argument("--seeds", type=positive_int("--seeds"), metavar="N", help="train seeds 0..N-1 [the config's seeds]")
    r.add_argument("--results", default="results", metavar="DIR", help="where NAME.{md,csv,json,png} go [results]")
    r.add_argument("--runs", default=os.path.join("runs", "experiments"), metavar="DIR",
                   help="where the run folders go [runs/experiments]")
    r.add_argument("--cache", default=os.path.join("data_cache", "synth"), metavar="DIR",
                   help="synthetic stand-in cache [data_cache/synth]")
    r.add_argument("--keep-models", action="store_true", help="keep each run's stages/*/model.keras")
    d = sub.add_parser("render", help="rewrite results/NAME.{md,csv,json} of a cross-modal experiment from its "
                       "recorded runs, without training")
    d.add_argument("names", nargs="+", metavar="NAME")
    d.add_argument("--results", default="results", metavar="DIR")
    u = sub.add_parser("publish", help=f"copy results/NAME.md and its figures into the page {PAGES}/NAME.md")
    u.add_argument("names", nargs="+", metavar="NAME")
    u.add_argument("--results", default="results", metavar="DIR")
    u.add_argument("--pages", default=None, metavar="DIR", help=f"the folder of result pages [{PAGES}; must exist]")
    u.add_argument("--force", action="store_true", help="replace a published full result even with a --quick one")
    return p


def parse_args(argv: Sequence[str] | None = None):
    return build_parser().parse_args(argv)


def _list() -> int:
    from experiments.data import missing_real_data
    from experiments.errors import SpecError
    from experiments.spec import GROUPS, available, load

    for name in available():
        try:
            exp = load(name)
        except SpecError as exc:  # one broken config does not hide the others
            print(f"{name:22s} {'invalid':12s} {exc}")
            continue
        missing = missing_real_data(exp, None)
        note = f"  [needs real data: {missing.split(' (')[0]}]" if missing else ""
        print(f"{name:22s} {exp.kind:12s} {exp.title}{note}")
    for g, members in GROUPS.items():
        print(f"{g:22s} {'group':12s} {', '.join(members)}")
    print(f"{'all':22s} {'group':12s} every experiment above")
    return 0


VALUE_OPTIONS = ("--data", "--seeds", "--results", "--runs", "--cache")


def single_command(argv: Sequence[str], names: Sequence[str], name: str) -> str:
    """The command that runs experiment ``name`` alone with the same options: ``argv`` (``run NAME… OPTIONS``)
    with its experiment names replaced by ``name``."""
    out, wanted, first = [], list(names), True
    for i, a in enumerate(argv):
        after_option = i > 0 and argv[i - 1] in VALUE_OPTIONS
        if a in wanted and not after_option and i > 0:
            wanted.remove(a)
            if first:
                out.append(name)
                first = False
            continue
        out.append(a)
    return "python -m experiments " + " ".join(shlex.quote(a) for a in out)


def _run(args, argv) -> int:
    from experiments.context import Context, code_version
    from experiments.data import missing_real_data
    from experiments.errors import ExperimentError
    from experiments.runner import run_experiment
    from experiments.spec import expand, load

    names = expand(args.names)
    command = "python -m experiments " + " ".join(shlex.quote(a) for a in argv)
    if args.data is not None and not Path(args.data).is_dir():
        raise CliError(f"--data {args.data}: no such directory")
    specs = [load(name) for name in names]  # every config checked before anything trains
    code = code_version()
    written = []
    for name, exp in zip(names, specs):
        if len(names) > 1:
            missing = missing_real_data(exp, args.data)
            if missing:
                print(f"[{name}] skipped: {missing}", flush=True)
                continue
        alone = single_command(argv, args.names, name)
        ctx = Context(exp=exp, quick=args.quick, seeds=exp.seeds_for(args.quick, args.seeds), data=args.data,
                      results=Path(args.results), runs=Path(args.runs), cache=Path(args.cache),
                      keep_models=args.keep_models, command=alone, batch="" if alone == command else command,
                      code=code, log=lambda m: print(m, flush=True))
        try:
            paths = run_experiment(ctx)
        except ExperimentError as exc:
            raise CliError(str(exc)) from None
        written.append(paths)
        print("\n" + paths["md"].read_text(), flush=True)
        print(f"[{name}] wrote {', '.join(str(p) for p in paths.values())}", flush=True)
    return 0


BEGIN, END = "<!-- experiment:{} -->", "<!-- /experiment:{} -->"
RUN_MARK = "<!-- run: {} -->"
QUICK_TEXT = "**Quick run**"  # the line report.header_markdown puts under the title of a --quick result


def _section(text: str, name: str) -> str | None:
    """The body of the ``<!-- experiment:NAME -->`` block of a results page, or None."""
    m = re.search(re.escape(BEGIN.format(name)) + r"(.*?)" + re.escape(END.format(name)), text, flags=re.S)
    return m.group(1) if m else None


def published_kind(text: str, name: str) -> str | None:
    """``"quick"`` or ``"full"`` for the published section of NAME (None when there is none)."""
    body = _section(text, name)
    if body is None:
        return None
    m = re.search(r"<!-- run: (quick|full) -->", body)
    if m:
        return m.group(1)
    return "quick" if QUICK_TEXT in body else "full"  # sections published before the marker existed


def result_kind(results: Path, name: str, md_text: str) -> str:
    """``"quick"`` or ``"full"`` for results/NAME: its JSON record's ``quick`` field, else the Markdown."""
    path = Path(results) / f"{name}.json"
    try:
        rec = json.loads(path.read_text())
    except FileNotFoundError:
        return "quick" if QUICK_TEXT in md_text else "full"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"{path}: unreadable ({' '.join(str(exc).split())}): cannot tell a --quick result from a full one") from None
    quick = rec.get("quick") if isinstance(rec, dict) else None
    if not isinstance(quick, bool):
        raise CliError(f"{path}: field 'quick' missing or not true/false: cannot tell a --quick result from a full one")
    return "quick" if quick else "full"


def publish_section(page: Path, name: str, body: str, kind: str | None = None, footer: str = "") -> None:
    """Replace the ``<!-- experiment:NAME -->`` block of a result page, or add it at the end; other text is kept.

    A new page is the block followed by ``footer``. ``kind`` (``"quick"``/``"full"``) is recorded in the block
    as ``<!-- run: KIND -->``. The page's directory must exist (nothing is created around it)."""
    text = page.read_text() if page.exists() else ""
    b0, b1 = BEGIN.format(name), END.format(name)
    mark = f"{RUN_MARK.format(kind)}\n" if kind else ""
    block = f"{b0}\n{mark}{body.strip()}\n{b1}"
    if b0 in text and b1 in text:
        text = re.sub(re.escape(b0) + r".*?" + re.escape(b1), lambda _: block, text, flags=re.S)
    elif text.strip():
        text = text.rstrip("\n") + f"\n\n{block}\n"
    else:
        text = f"{block}\n" + (f"\n{footer.strip()}\n" if footer.strip() else "")
    with atomic_file(page) as f:
        f.write(text)


def page_body(md_text: str, figures: str) -> str:
    """A result's Markdown as a page of its own: headings one level up (its ``##`` title becomes the page's
    ``#``), and its figures linked under ``figures`` (the figure folder relative to the page)."""
    body = re.sub(r"^#(#+ )", r"\1", md_text, flags=re.M)
    return re.sub(r"\]\(([\w.-]+\.png)\)", lambda m: f"]({figures}/{m.group(1)})", body)


def _pages_dir(arg: str | None) -> Path:
    pages = Path(arg or PAGES)
    if not pages.is_dir():
        raise CliError(f"{pages}/ not found here (run from the repository root, or pass --pages DIR)" if arg is None
                       else f"--pages {pages}: no such directory")
    return pages


def _publish(args) -> int:
    from experiments.spec import expand

    pages = _pages_dir(args.pages)
    results = Path(args.results)
    todo = []
    for name in expand(args.names):  # every check before anything is written
        md, page = results / f"{name}.md", pages / f"{name}.md"
        if not md.is_file():
            raise CliError(f"{md}: no results yet (run `python -m experiments run {name}` first)")
        body = md.read_text()
        kind = result_kind(results, name, body)
        current = page.read_text() if page.is_file() else ""
        if kind == "quick" and published_kind(current, name) == "full" and not args.force:
            raise CliError(f"{name}: {md} is a --quick result and {page} holds a full one; nothing published "
                           "(pass --force to replace it)")
        todo.append((name, md, page, body, kind))
    figs = pages.parent / FIG_DIR
    summary = pages.parent / SUMMARY
    for name, md, page, body, kind in todo:
        for png in sorted(results.glob(f"{name}*.png")):
            if re.fullmatch(re.escape(name) + r"(-[\w.-]+)?\.png", png.name):
                figs.mkdir(exist_ok=True)
                shutil.copyfile(png, figs / png.name)
        back = f"Back to the [results summary]({os.path.relpath(summary, pages)})." if summary.is_file() else ""
        publish_section(page, name, page_body(body, os.path.relpath(figs, pages)), kind, footer=back)
        print(f"published {md} ({kind} run) as {page}")
        link = f"{pages.name}/{page.name}"
        if summary.is_file() and f"]({link}" not in summary.read_text():
            print(f"note: {summary} does not link {link} yet: add it to its summary", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*shuffle=True.* was passed")  # Keras, for tf.data input
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.command == "list":
        return _list()
    if args.command == "publish":
        return _publish(args)
    if args.command == "render":
        from experiments.errors import ExperimentError
        from experiments.runner import rerender

        for name in args.names:
            try:
                paths = rerender(name, Path(args.results))
            except ExperimentError as exc:
                raise CliError(str(exc)) from None
            print(f"[{name}] re-rendered {', '.join(str(p) for p in paths.values())}")
        return 0
    return _run(args, argv)


if __name__ == "__main__":
    sys.exit(run_cli(main))
