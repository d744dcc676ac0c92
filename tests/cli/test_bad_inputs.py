"""Three bad inputs for every option of every command (wrong type, out of range, missing file): one `error:` line, exit 2, nothing written.

The parsers of ``python -m cvs_tf.{train, evaluate, export, index, search, tune, data, embed_beam, report}`` are
walked; every option that takes a value gets the bad values its kind calls for:

* a bounded number (its ``type`` carries ``.bounds``): a non-number, one below and one above the range;
* a choice: a value not among the choices;
* an input path (its ``type`` carries ``.path_kind``): a missing path, and a file for a directory (or
  the reverse);
* any other option must be listed in :data:`EXPLICIT` with the bad values that apply to it, or in
  :data:`ANY_VALUE` with the reason no value is wrong.

Every case runs in-process (``run_cli(main, argv)``) on top of an otherwise valid command line, and
must fail before any training starts: one ``error:`` line naming the option (or its field), exit 2,
no traceback, and no output directory. ``ATTEMPTED`` lists what was tried (printed with ``-s``).
"""

import argparse
import json

import numpy as np
import pytest

from cvs_tf.cli import data as data_cli
from cvs_tf.cli import embed_beam as beam_cli
from cvs_tf.cli import evaluate as evaluate_cli
from cvs_tf.cli import export as export_cli
from cvs_tf.cli import index as index_cli
from cvs_tf.cli import search as search_cli
from cvs_tf.cli import train as train_cli
from cvs_tf.cli import tune as tune_cli
from cvs_tf.report import __main__ as report_cli
from cvs_tf.utils.cli import run_cli
from tests.data.media import write_manifest
from tests.helpers import write_small_config

pytestmark = pytest.mark.trains

FAST = ["--batch-size", "8", "--steps-per-epoch", "1", "--no-jit", "--quiet", "--early-stopping", "none"]

# command -> (main, parsers: {subcommand path: parser}, base: the valid command line as (key, value) pairs).
# A key is an option string, or "<dest>" for a positional; OUT is the output each case must not create.
OUT = "{out}"


def _bases(w: dict) -> dict:
    ds, run, exp, ix = w["ds"], w["run"], w["exp"], w["ix"]
    return {
        "train": [("--dataset", ds), ("--config", w["cfg"]), ("--epochs", "1"), *zip(FAST[::2], FAST[1::2]),
                  ("--no-jit", None), ("--quiet", None), ("--out", OUT)],
        "evaluate": [("<run_dir>", run), ("--out", f"{OUT}/table")],
        "export": [("<run_dir>", run), ("--out", OUT)],
        "index build": [("<command>", "build"), ("<export_dir>", exp), ("--features", ds), ("--modality", "text"),
                        ("--out", OUT)],
        "index info": [("<command>", "info"), ("<index>", ix)],
        "search": [("<indexes>", ix), ("--query-modality", "text"), ("--query-features", w["query"])],
        "tune": [("--dataset", ds), ("--config", w["tune_cfg"]), ("--search-space", w["space"]), ("--trials", "1"),
                 ("--epochs", "1"), ("--out", OUT)],
        "data inspect": [("<command>", "inspect"), ("<dataset>", ds)],
        "data synth": [("<command>", "synth"), ("<name>", "xmedia"), ("--scale", "0.01"), ("--out", OUT)],
        "data convert": [("<command>", "convert"), ("<name>", "wikipedia"), ("<src>", w["file"]), ("--out", OUT)],
        "data import": [("<command>", "import"), ("<src>", w["layout"]), ("--out", OUT)],
        "data extract": [("<command>", "extract"), ("<spec>", w["spec"]), ("--out", OUT), ("--quiet", None)],
        "embed_beam": [("--export", exp), ("--features", w["shards"]), ("--modality", "text"), ("--out", f"{OUT}/emb")],
        "embed_beam merge": [("<command>", "merge"), ("--shards", w["shards"]), ("--out", OUT)],
        "report": [("<run_dir>", run), ("--out", f"{OUT}/r.html"), ("--baselines", "chance")],
    }


def _parsers() -> dict:
    """{command: (main, parser)} for every command and subcommand."""
    out = {"train": (train_cli.main, train_cli.build_parser()), "evaluate": (evaluate_cli.main, evaluate_cli.build_parser()),
           "export": (export_cli.main, export_cli.build_parser()), "search": (search_cli.main, search_cli.build_parser()),
           "tune": (tune_cli.main, tune_cli.build_parser()), "embed_beam": (beam_cli.main, beam_cli.build_parser()),
           "embed_beam merge": (beam_cli.main, beam_cli.build_merge_parser()),
           "report": (report_cli.main, report_cli.build_parser())}
    for name, mod in (("index", index_cli), ("data", data_cli)):
        for action in mod.build_parser()._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, parser in action.choices.items():
                    out[f"{name} {sub}"] = (mod.main, parser)
    return out


def _value_actions(parser):
    for a in parser._actions:
        if a.nargs == 0 or isinstance(a, argparse._HelpAction | argparse._SubParsersAction):
            continue
        yield a


def _key(a) -> str:
    return a.option_strings[0] if a.option_strings else f"<{a.dest}>"


# Options without an introspectable type: the bad values that apply to each (label, value, needle in the error).
# "{missing}" is a path that does not exist, "{file}" a regular file, "{dir}" a directory.
INT_RANGE = [("wrong type", "abc", None), ("out of range", "-1", None), ("out of range", str(2**31), None)]
FLOAT_RANGE = [("wrong type", "abc", None), ("out of range", "-1", None), ("out of range", "inf", None)]
EXPLICIT = {
    ("train", "--epochs"): INT_RANGE, ("train", "--batch-size"): INT_RANGE, ("train", "--patience"): INT_RANGE,
    ("train", "--steps-per-epoch"): INT_RANGE, ("train", "--dim"): INT_RANGE, ("train", "--hidden-dim"): INT_RANGE,
    ("train", "--depth"): INT_RANGE,
    ("train", "--seed"): [("wrong type", "abc", None), ("out of range", "-1", None), ("out of range", str(2**32), None)],
    ("train", "--lr"): FLOAT_RANGE, ("train", "--weight-decay"): FLOAT_RANGE, ("train", "--invariance"): FLOAT_RANGE,
    ("train", "--vse-margin"): FLOAT_RANGE, ("train", "--temperature"): FLOAT_RANGE,
    ("train", "--instance-weight"): FLOAT_RANGE, ("train", "--instance-temperature"): FLOAT_RANGE,
    ("train", "--xbm-size"): INT_RANGE, ("train", "--xbm-warmup"): INT_RANGE,
    ("train", "--dropout"): [("wrong type", "abc", None), ("out of range", "-1", None), ("out of range", "1", None)],
    ("train", "--label-smoothing"): [("wrong type", "abc", None), ("out of range", "-1", None),
                                     ("out of range", "1", None)],
    ("train", "--dataset"): [("missing file", "{missing}", "no such dataset"), ("wrong type", "{file}", None)],
    ("train", "--config"): [("missing file", "{missing}", "no such config file"), ("wrong type", "{dir}", None)],
    ("train", "--reference"): [("out of range", "smell", "--reference")],
    ("train", "--modalities"): [("out of range", "smell", "smell")],
    ("train", "--stages"): [("out of range", "smell", "--stages")],
    ("train", "--loss"): [("out of range", "nope", "nope")],
    ("train", "--out"): [("wrong type", "{file}/run", None)],
    ("train", "--extend"): [("missing file", "{missing}", "{missing}"), ("wrong type", "{file}", None)],
    ("train", "--select"): [("wrong type", "foo", "select"), ("out of range", "cv1", "select"),
                            ("out of range", "cv99", "select")],
    ("train", "--budget-minutes"): [("wrong type", "abc", "--budget-minutes"), ("out of range", "0", "--budget-minutes"),
                                    ("out of range", "nan", "--budget-minutes")],
    ("tune", "--select"): [("wrong type", "foo", "select"), ("out of range", "cv1", "select"),
                           ("out of range", "cv99", "select")],
    ("evaluate", "<run_dir>"): [("missing file", "{missing}", "no such run directory"), ("wrong type", "{file}", None)],
    ("evaluate", "--protocol"): [("wrong type", "nope", "unknown protocol"),
                                 ("out of range", "rerank@0", "unknown protocol"),
                                 ("out of range", "rerank@99999999999", "--protocol: rerank@K needs K in")],
    ("evaluate", "--k"): [("wrong type", "abc", "--k"), ("out of range", "0", "--k"), ("out of range", "1000001", "--k")],
    ("evaluate", "--out"): [("wrong type", "{file}/table", None)],
    ("evaluate", "--ensemble"): [("missing file", "{missing}", "no such run directory"), ("wrong type", "{file}", None)],
    ("export", "<run_dir>"): [("missing file", "{missing}", "no such run directory"), ("wrong type", "{file}", None)],
    ("export", "--out"): [("wrong type", "{file}", "not a directory")],
    ("index build", "--features"): [("missing file", "{missing}", "no such dataset"), ("wrong type", "{file}", None)],
    ("index build", "--modality"): [("out of range", "smell", "no modality 'smell'")],
    ("index build", "--out"): [("wrong type", "{file}", "not a directory")],
    ("search", "--query-modality"): [("out of range", "smell", "no modality 'smell'")],
    ("search", "--query-id"): [("wrong type", "nope", "--query-id"), ("out of range", "test:999", "--query-id")],
    ("search", "--dataset"): [("missing file", "{missing}", "no such dataset")],
    ("search", "--min-precision"): [("wrong type", "abc", "--min-precision"), ("out of range", "0", "--min-precision"),
                                    ("out of range", "1", "--min-precision"), ("out of range", "nan", "--min-precision")],
    ("report", "<run_dir>"): [("missing file", "{missing}", "no such run directory"), ("wrong type", "{file}", None)],
    ("report", "--out"): [("wrong type", "{file}/r.html", None), ("wrong type", "r.txt", "--out"),
                          ("out of range", "{file}", "--out")],
    ("report", "--baselines"): [("wrong type", "nope", "--baselines"), ("out of range", "chance,nope", "nope")],
    ("tune", "--dataset"): [("missing file", "{missing}", "no such dataset"), ("wrong type", "{file}", None)],
    ("tune", "--loss-kinds"): [("out of range", "nope", "unknown loss kind(s) nope")],
    ("tune", "--out"): [("wrong type", "{file}", None)],
    ("data inspect", "<dataset>"): [("missing file", "{missing}", "no such dataset"), ("wrong type", "{file}", None)],
    ("data synth", "--out"): [("wrong type", "{file}", None)],
    ("data convert", "<src>"): [("missing file", "{missing}", None), ("wrong type", "{dir}", None)],
    ("data convert", "--out"): [("wrong type", "{file}", None)],
    ("data import", "<src>"): [("missing file", "{missing}", "not a directory"), ("wrong type", "{file}", "not a directory")],
    ("data import", "--out"): [("wrong type", "{file}", "already exists")],
    ("data extract", "--out"): [("wrong type", "{file}", "already exists")],
    ("data extract", "--encoder"): [("wrong type", "image", "--encoder"), ("out of range", "text=nope", "unknown encoder"),
                                    ("out of range", "smell=mfcc", "no modality 'smell'")],
    ("search", "--query-raw"): [("out of range", "hello", "records no encoder")],
    ("embed_beam", "--features"): [("missing file", "{missing}", None)],
    ("embed_beam", "--modality"): [("out of range", "smell", "no modality 'smell'")],
    ("embed_beam merge", "--shards"): [("missing file", "{missing}", None)],
    ("embed_beam merge", "--out"): [("wrong type", "{file}", None)],
}
# Options no value of which is wrong, and why.
ANY_VALUE = {
    ("data import", "--name"): "a free name recorded in the manifest (empty: the folder's name)",
    ("data extract", "--name"): "a free name recorded in the manifest (empty: the spec's name)",
    ("embed_beam", "--runner"): "a Beam runner name, checked by Beam when the pipeline starts (needs apache-beam)",
    ("embed_beam", "--out"): "a file-name prefix; an existing shard set under it is refused when the pipeline starts",
}


def cases() -> list[tuple]:
    """(command, option key, label, value, needle) for every value-taking option of every command."""
    out = []
    for cmd, (_, parser) in _parsers().items():
        for a in _value_actions(parser):
            key = _key(a)
            if (cmd, key) in ANY_VALUE:
                continue
            if (cmd, key) in EXPLICIT:
                out += [(cmd, key, *c) for c in EXPLICIT[cmd, key]]
                continue
            if a.choices:
                out.append((cmd, key, "wrong type", "not-a-choice", None))
            bounds = getattr(a.type, "bounds", None)
            kind = getattr(a.type, "path_kind", None)
            if bounds:
                lo, hi = bounds
                out += [(cmd, key, "wrong type", "abc", None), (cmd, key, "out of range", str(lo - 1), None),
                        (cmd, key, "out of range", str(hi + 1 if isinstance(hi, int) else hi * 2), None)]
            if kind:
                out.append((cmd, key, "missing file", "{missing}", None))
                if kind != "any":
                    out.append((cmd, key, "wrong type", "{file}" if kind == "dir" else "{dir}", None))
            if not (a.choices or bounds or kind):
                out.append((cmd, key, "unlisted", None, None))
    return out


CASES = cases()
ATTEMPTED = [f"{cmd} {key} = {value!r} ({label})" for cmd, key, label, value, _ in CASES]


def test_every_value_option_is_covered():
    """Every option takes part: an unlisted option (no bounds, no path kind, no choices) must be added to EXPLICIT."""
    unlisted = [f"{cmd} {key}" for cmd, key, label, *_ in CASES if label == "unlisted"]
    assert not unlisted, f"options without a bound, a path check or a listed bad value: {unlisted}"
    per_cmd = {cmd for cmd, *_ in CASES}
    assert per_cmd == set(_parsers())
    print("\n".join(ATTEMPTED))


@pytest.fixture(scope="module")
def world(tiny_export, tmp_path_factory):
    """The tiny run (a toy set, one step) and its export, an index, a query, an import layout and small configs."""
    tmp = tmp_path_factory.mktemp("bad-inputs")
    run, exp, ds = tiny_export
    cfg = write_small_config(tmp / "small.json", 8)
    ix = tmp / "ix"
    assert run_cli(index_cli.main, ["build", str(exp), "--features", str(ds), "--modality", "text", "--out", str(ix)]) == 0
    np.save(tmp / "q.npy", np.zeros((2, 12), np.float32))
    layout = tmp / "layout"
    layout.mkdir()
    rng = np.random.default_rng(0)
    for m, d in (("image", 4), ("text", 3)):
        for s, n in (("train", 12), ("test", 6)):
            np.savez(layout / f"{m}.{s}.npz", features=rng.normal(size=(n, d)), labels=np.arange(n) % 3)
    tune_cfg = tmp / "tune.json"
    tune_cfg.write_text(json.dumps({"model": {"dim": 8}, "train": {"batch_size": 8, "jit": False}}))
    space = tmp / "space.json"
    space.write_text(json.dumps({"dim": {"low": 8, "high": 8}}))
    (tmp / "media").mkdir()
    spec = write_manifest(tmp / "media", 6)
    (tmp / "file.txt").write_text("not what any option wants\n")
    (tmp / "adir").mkdir()
    np.savez(tmp / "shard-0.npz", features=np.zeros((3, 12), np.float32), ids=np.array(["a", "b", "c"]))
    return {"tmp": tmp, "ds": str(ds), "cfg": str(cfg), "run": str(run), "exp": str(exp), "ix": str(ix),
            "query": str(tmp / "q.npy"), "layout": str(layout), "tune_cfg": str(tune_cfg), "space": str(space),
            "file": str(tmp / "file.txt"), "spec": str(spec), "dir": str(tmp / "adir"), "shards": str(tmp / "shard-*.npz")}


# what a case drops from the base command line (options that conflict with the one tested), and adds
DROP = {"--query-id": ("--query-features",), "--query-raw": ("--query-features",), "--dataset": ("--query-features",), "--extend": ("--config",)}
ADD = {("search", "--dataset"): [("--query-id", "test:0")], ("train", "--extend"): [("--modalities", "audio")]}


def _argv(base, key, value, exclusive=()) -> list[str]:
    pairs = [(k, v) for k, v in base if k not in exclusive]
    if any(k == key for k, _ in pairs):
        pairs = [(k, value if k == key else v) for k, v in pairs]
    else:
        pairs.append((key, value))
    argv = []
    for k, v in pairs:
        argv += [v] if k.startswith("<") else [k] if v is None else [k, v]
    return argv


@pytest.mark.parametrize("cmd,key,label,value,needle", [c for c in CASES if c[2] != "unlisted"],
                         ids=[f"{c[0]}:{c[1]}:{c[2]}:{c[3]}" for c in CASES if c[2] != "unlisted"])
def test_a_bad_value_is_one_error_line(world, tmp_path, capsys, monkeypatch, cmd, key, label, value, needle):
    if cmd == "tune":
        from tests.tuning.helpers import fake_training

        fake_training(monkeypatch)      # a tune case that slipped through must not train its trials for real
    subst = {"{missing}": str(tmp_path / "missing"), "{file}": world["file"], "{dir}": world["dir"]}
    value = subst.get(value, value.replace("{file}", world["file"]))
    out = tmp_path / "out"
    base = [(k, str(v).replace(OUT, str(out))) if v is not None else (k, v) for k, v in _bases(world)[cmd]]
    base += ADD.get((cmd, key), [])
    argv = _argv(base, key, value, DROP.get(key, ()) if cmd != "train" or key == "--extend" else ())
    main = _parsers()[cmd][0]
    code = run_cli(main, argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (argv, captured.out[-400:], captured.err[-400:])
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    if needle is None:   # the error names the option (or its field), or the path given to it
        action = next(a for a in _value_actions(_parsers()[cmd][1]) if _key(a) == key)
        needles = [key, f"argument {action.dest}", action.dest, *([action.metavar] if action.metavar else [])]
        needles += [value] if label in ("missing file", "wrong type") and "/" in value else []
        needles += [world["file"]] if world["file"] in value else []
    else:
        needles = [needle.replace("{missing}", str(tmp_path / "missing")).replace("{file}", world["file"])]
    assert any(n in lines[0] for n in needles), (needles, lines[0])
    assert not out.exists(), f"{out} was created"
