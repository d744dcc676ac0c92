"""The experiment runner: data resolution (real vs stand-in), aggregation over seeds, table text, CLI errors."""

import json
import math

import numpy as np
import pytest

from cvs_tf.utils.cli import run_cli
from experiments.__main__ import main
from experiments.claims import check_claims
from experiments.data import REAL_LABEL, SYNTH_LABEL, check_data_arg, resolve_data, synthetic_path
from experiments.errors import ExperimentError
from experiments.report import aggregate, cell_text, grid_markdown, long_rows
from experiments.spec import ClaimSpec, DataSpec, load
from tests.helpers import make_toy_featureset

MODS = ["image", "text", "audio"]


def _table(values):
    """A 3-modality mAP table in cross_modal_table's layout (NaN diagonal, row/column means)."""
    from cvs_tf.evaluation.table import table_from_matrix

    return table_from_matrix(np.array(values, dtype=float), MODS, proto="independent", split="test", k=50,
                     data_label="x", fallback=[])


A = [[np.nan, 0.2, 0.4], [0.6, np.nan, 0.8], [0.1, 0.3, np.nan]]
B = [[np.nan, 0.4, 0.4], [0.2, np.nan, 0.6], [0.3, 0.3, np.nan]]


def test_aggregate_mean_and_sample_std_by_hand():
    mean, std = aggregate([_table(A), _table(B)])
    assert mean.at["image", "text"] == pytest.approx(0.3)
    assert std.at["image", "text"] == pytest.approx(math.sqrt(0.02))  # (0.2, 0.4): var (0.01 + 0.01) / 1
    assert std.at["image", "audio"] == pytest.approx(0.0)
    assert math.isnan(mean.at["image", "image"])
    # overall mean: A 2.4 / 6 = 0.4, B 2.2 / 6 = 0.3667 -> 0.38333
    assert mean.at["mean", "mean"] == pytest.approx((0.4 + 2.2 / 6) / 2)
    _, one = aggregate([_table(A)])
    assert math.isnan(one.at["image", "text"])  # one seed: no spread


def test_cell_text_and_grid_put_the_thesis_beside_ours():
    assert cell_text(0.5, 0.1, 0.4) == "0.500 ± 0.100 / 0.400 / +0.100"
    assert cell_text(0.3, 0.02, 0.45) == "0.300 ± 0.020 / 0.450 / −0.150"
    assert cell_text(0.3, float("nan"), None) == "0.300"
    assert cell_text(float("nan"), float("nan"), 0.5) == "—"
    mean, std = aggregate([_table(A), _table(B)])
    md = grid_markdown(mean, std, {"text>image": 0.9, "mean": 0.5})
    rows = {line.split(" | ")[0].strip("| *"): line for line in md.splitlines()[2:]}
    assert "0.400 ± 0.283 / 0.900 / −0.500" in rows["text"]
    assert rows["mean"].rstrip(" |").endswith("0.383 ± 0.024 / 0.500 / −0.117")
    assert rows["image"].split(" | ")[1] == "—"


def test_long_rows_hold_every_cell_with_thesis_and_difference():
    frames = [_table(A), _table(B)]
    mean, std = aggregate(frames)
    rows = long_rows(mean, std, frames, {"image>text": 0.25}, variant="v")
    assert len(rows) == 6 + 3 + 3 + 1  # pairs, row means, column means, overall
    it = next(r for r in rows if (r["query"], r["retrieval"]) == ("image", "text"))
    assert it["diff"] == pytest.approx(0.05) and it["per_seed"] == "0.200000;0.400000" and it["n_seeds"] == 2


# --------------------------------------------------------------------------- data resolution


def test_without_real_data_the_stand_in_is_generated_once_and_labelled(tmp_path, monkeypatch):
    monkeypatch.delenv("CVS_TF_DATA", raising=False)
    spec = DataSpec(name="pascal", quick_scale=0.02)
    r = resolve_data(spec, data=None, cache=tmp_path, quick=True, log=lambda m: None)
    assert r.synthetic and r.label == SYNTH_LABEL == "synthetic stand-in — not comparable to the thesis"
    assert r.path == synthetic_path(tmp_path, spec, 0.02) == tmp_path / "pascal-s0.02-seed0"
    assert r.featureset().synthetic and r.record()["scale"] == 0.02
    stamp = (r.path / "manifest.json").stat().st_mtime_ns
    again = resolve_data(spec, data=None, cache=tmp_path, quick=True, log=lambda m: pytest.fail("regenerated"))
    assert again.path == r.path and (r.path / "manifest.json").stat().st_mtime_ns == stamp


def test_real_features_win_from_data_dir_root_and_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("CVS_TF_DATA", raising=False)
    single = make_toy_featureset(tmp_path / "conv", name="xmedia")
    spec = DataSpec(name="xmedia")
    r = resolve_data(spec, data=single, cache=tmp_path / "c", quick=True)
    assert (r.path, r.source, r.synthetic, r.label) == (single, "--data", False, REAL_LABEL)
    root = tmp_path / "root"
    make_toy_featureset(root / "xmedia", name="xmedia")
    assert resolve_data(spec, data=root, cache=tmp_path / "c", quick=False).path == root / "xmedia"
    monkeypatch.setenv("CVS_TF_DATA", str(root))
    env = resolve_data(spec, data=None, cache=tmp_path / "c", quick=False)
    assert (env.path, env.source) == (root / "xmedia", "$CVS_TF_DATA")
    assert not (tmp_path / "c").exists()  # no stand-in was generated


def test_data_dir_of_another_dataset_is_an_error_not_a_silent_fallback(tmp_path):
    other = make_toy_featureset(tmp_path / "p", name="pascal")
    with pytest.raises(ExperimentError, match="holds dataset 'pascal', but table8 needs xmedia"):
        check_data_arg(other, load("table8").datasets, "table8")
    with pytest.raises(ExperimentError, match="no such directory"):
        check_data_arg(tmp_path / "missing", load("table8").datasets, "table8")
    check_data_arg(other, load("table5").datasets, "table5")  # pascal is one of table5's
    with pytest.raises(ExperimentError, match="neither a converted feature set nor a folder holding xmedia/"):
        check_data_arg(tmp_path, load("table8").datasets, "table8")  # holds p/, not xmedia/
    make_toy_featureset(tmp_path / "root" / "nuswide", name="nuswide")
    check_data_arg(tmp_path / "root", load("table5").datasets, "table5")  # nuswide real, pascal stand-in


def test_real_only_dataset_missing_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CVS_TF_DATA", raising=False)
    with pytest.raises(ExperimentError, match="nosuchset: real dataset not found"):
        resolve_data(DataSpec(name="nosuchset", real_only=True), data=None, cache=tmp_path, quick=True)


def test_claims_are_decided_on_the_paired_seed_differences():
    class Ctx:
        exp = type("E", (), {"claims": [ClaimSpec("att helps", "greater", "A", "B"),
                                        ClaimSpec("close", "close", "C", "A", tolerance=0.1)]})

    data = type("D", (), {"synthetic": False, "spec": DataSpec(name="tux12", title="Tux-12")})
    # diffs 0.10, 0.11, 0.09: mean 0.10, sd 0.01, 2 se = 0.0115 -> holds; C within 10% of A (gap 0.04 / 0.51)
    lines, recs = check_claims(Ctx, {"A": [0.50, 0.52, 0.51], "B": [0.40, 0.41, 0.42], "C": [0.47, 0.48, 0.46]}, data)
    assert [r["verdict"] for r in recs] == ["holds", "holds"]
    assert "2 standard errors = 0.012" in lines[0] and "higher in 3/3 seeds" in lines[0] and "gap 7.8%" in lines[1]
    # diffs 0.10, -0.02: mean 0.04 < 2 se = 0.085 -> not resolved (the seeds disagree)
    _, recs = check_claims(Ctx, {"A": [0.5, 0.6], "B": [0.4, 0.62], "C": [0.3, 0.3]}, data)
    assert [r["verdict"] for r in recs] == ["not resolved", "does not hold"] and not recs[0]["holds"]
    # clearly lower -> does not hold; one seed -> the sign decides and the line says so
    _, recs = check_claims(Ctx, {"A": [0.3, 0.31], "B": [0.5, 0.52], "C": [0.3, 0.31]}, data)
    assert recs[0]["verdict"] == "does not hold"
    lines, recs = check_claims(Ctx, {"A": [0.5], "B": [0.4], "C": [0.5]}, data)
    assert recs[0]["verdict"] == "holds" and "one seed: no noise estimate" in lines[0]


def test_render_rebuilds_the_same_table_from_the_recorded_runs(tmp_path):
    from cvs_tf.evaluation.table import table_record
    from experiments.context import Context
    from experiments.data import StoredData
    from experiments.kinds.cross_modal import render_cross_modal
    from experiments.report import finish
    from experiments.runner import rerender
    from experiments.spec import ExperimentSpec, VariantSpec

    spec = ExperimentSpec(name="toytable", title="Toy", kind="cross_modal",
                          datasets=[DataSpec(name="toy", modalities=MODS, thesis={"CVS": {"image>text": 0.25}})],
                          variants=[VariantSpec("CVS", {"attention": False}), VariantSpec("CVS + attention")],
                          seeds=[0, 1], claims=[ClaimSpec("att", "greater", "CVS + attention", "CVS")],
                          options={"figure": "bars"})
    runs = [{"dataset": "toy", "variant": v, "seed": seed, "tables": {"independent": table_record(_table(t))}}
            for v, tabs in (("CVS", (A, B)), ("CVS + attention", (B, A))) for seed, t in enumerate(tabs)]
    rec = {"dataset": "toy", "title": "toy", "path": str(tmp_path), "source": "--data", "synthetic": False,
           "data_label": REAL_LABEL, "classes": 4, "pairing": "class",
           "counts": {m: {"train": 10, "val": 2, "test": 5} for m in MODS}}
    ctx = Context(exp=spec, seeds=[0, 1], results=tmp_path / "res", command="python -m experiments run toytable")
    out = render_cross_modal(ctx, [StoredData(spec.datasets[0], rec)], runs)
    first = finish(ctx, out, 1.5)["md"].read_text()
    assert "0.300 ± 0.141 / 0.250 / +0.050" in first and "**not resolved**" in first
    assert "items train/val/test: image 10/2/5, text 10/2/5, audio 10/2/5" in first
    paths = rerender("toytable", tmp_path / "res")
    assert paths["md"].read_text() == first and (tmp_path / "res" / "toytable.png").is_file()
    assert json.loads(paths["json"].read_text())["runs"] == runs
    with pytest.raises(ExperimentError, match="no results to render"):
        rerender("missing", tmp_path / "res")


# --------------------------------------------------------------------------- command line


@pytest.mark.parametrize("argv, message", [
    (["run", "table99"], "table99: no such experiment"),
    (["run", "table8", "--seeds", "0"], "--seeds: must be >= 1"),
    (["run", "table8", "--data", "/no/such/dir"], "--data /no/such/dir: no such directory"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_error_line_and_status_2(capsys, argv, message):
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_list_names_every_experiment(capsys):
    assert run_cli(main, ["list"]) == 0
    out = capsys.readouterr().out
    for name in ("table8", "table13", "fig27", "real_tux12", "figures", "all"):
        assert name in out


def test_results_json_is_strict(tmp_path):
    from experiments.report import clean_json

    rec = clean_json({"a": float("nan"), "b": [np.float32(0.5), np.int64(3)], "c": (1, float("inf"))})
    assert json.loads(json.dumps(rec, allow_nan=False)) == {"a": None, "b": [0.5, 3], "c": [1, None]}


# --------------------------------------------------------------------------- end to end (slow)


@pytest.mark.slow
def test_training_never_reads_the_test_split_before_the_final_evaluation(tmp_path, monkeypatch):
    """Early stopping and the best epoch come from validation: the test split is untouched until training ends."""
    from cvs_tf.data.store import FeatureSet, load_feature_set
    from cvs_tf.training.trainer import Trainer
    from experiments.context import Context
    from experiments.spec import ExperimentSpec, VariantSpec

    state = {"final": False, "early": []}

    class Guarded(FeatureSet):
        def _get(self, modality, split):
            if split == "test" and not state["final"]:
                state["early"].append(modality)
            return super()._get(modality, split)

    original = Trainer.final_metrics

    def final_metrics(self, reports):
        state["final"] = True
        return original(self, reports)

    monkeypatch.setattr(Trainer, "final_metrics", final_metrics)
    fs = load_feature_set(make_toy_featureset(tmp_path / "toy", modalities={"image": 8, "text": 6}, name="toy"))
    guarded = Guarded(fs.path, fs.manifest, fs.arrays)
    spec = ExperimentSpec(name="t", title="t", kind="cross_modal", datasets=[DataSpec(name="toy")],
                          variants=[VariantSpec("CVS + attention", {"space": "cvs", "attention": True})],
                          model={"dim": 8}, train={"epochs": 4, "patience": 10, "batch_size": 16, "jit": False})
    ctx = Context(exp=spec, data=str(fs.path), runs=tmp_path / "runs", log=lambda m: None)
    data = ctx.resolve(spec.datasets[0])
    tr = ctx.train(data, spec.variants[0], 0, featureset=guarded)
    assert state["final"] and state["early"] == []
    hist = json.loads((tr.run_dir / "history.json").read_text())["stages"][0]
    monitor = hist["monitor"]                         # the library default: validation mAP@50
    assert monitor == "val_map"
    val = [e[monitor] for e in hist["epochs"]]
    assert hist["best_epoch"] == int(np.argmax(val)) + 1
    assert not list(tr.run_dir.glob("stages/*/model.keras"))  # dropped unless --keep-models
    assert not (tr.run_dir / "checkpoint").exists()
    tables = ctx.evaluate(tr)
    assert list(tables) == ["independent"] and tables["independent"] is tr.result.tables["test"]


@pytest.mark.slow
def test_table8_runs_unchanged_on_a_converted_official_xmedia_file(tmp_path, capsys):
    """A tiny official-layout XMediaFeatures.mat -> `python -m cvs_tf.data convert` -> `run table8 --data DIR --quick`."""
    from cvs_tf.cli.data import main as data_main
    from tests.data.converters.layouts import xmedia

    layout = xmedia(tmp_path / "src")
    conv = tmp_path / "xmedia"
    assert run_cli(data_main, ["convert", "xmedia", str(layout.src), "--out", str(conv)]) == 0
    res = tmp_path / "results"
    code = run_cli(main, ["run", "table8", "--data", str(conv), "--quick", "--results", str(res),
                          "--runs", str(tmp_path / "runs"), "--cache", str(tmp_path / "cache")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert not (tmp_path / "cache").exists()  # no stand-in was made
    md = (res / "table8.md").read_text()
    title = md.splitlines()[0]
    assert title.endswith("— real features") and "synthetic" not in title
    assert f"real features from `{conv}` (--data)" in md
    grids = [line for line in md.splitlines() if line.startswith("| query \\ retrieval")]
    assert len(grids) == 2 and grids[0].split(" | ")[1:6] == ["image", "text", "audio", "video", "3d"]
    cvs_part, att_part = md.split("#### CVS + attention")
    image_row = next(line for line in cvs_part.splitlines() if line.startswith("| image |"))
    assert image_row.split(" | ")[2].endswith(" / 0.895 / " + image_row.split(" | ")[2].split(" / ")[-1])
    assert "/ 0.908 /" in att_part and "/ 0.600 /" in att_part and "/ 0.494 /" in cvs_part
    assert "- seeds: 0 " in md and "- protocol: independent" in md
    rec = json.loads((res / "table8.json").read_text())
    assert rec["data"][0]["source"] == "--data" and rec["data"][0]["synthetic"] is False
    assert rec["data"][0]["counts"]["video"]["test"] == 3  # what the fake file holds
    rows = (res / "table8.csv").read_text().splitlines()
    assert rows[0].startswith("experiment,dataset,data_label,variant,protocol,k,query,retrieval,mean,std")
    assert len(rows) == 1 + 2 * (20 + 5 + 5 + 1)
    assert (res / "table8.png").read_bytes()[:4] == b"\x89PNG"


def test_render_of_an_unreadable_results_file_names_it(tmp_path, capsys):
    (tmp_path / "table8.json").write_text("{not json")
    assert run_cli(main, ["render", "table8", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'table8.json'}: unreadable (") and err.count("\n") == 1
    assert (tmp_path / "table8.json").read_text() == "{not json"  # nothing written
