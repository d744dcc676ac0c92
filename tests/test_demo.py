"""`make demo` prints its table beside the baselines and writes nothing but its run directory (no docs/, no results/)."""

import json

import numpy as np

import cvs_tf.cli.train
from cvs_tf.data.store import load_feature_set
from cvs_tf.demo import main
from cvs_tf.evaluation.table import table_from_matrix, write_table
from tests.helpers import make_toy_featureset


def test_demo_prints_beside_the_baselines_and_publishes_nothing(tmp_path, monkeypatch, capsys):
    ds = make_toy_featureset(tmp_path / "toy", paired=True, n_train=40, n_test=16, modalities={"image": 6, "text": 5})
    mods = load_feature_set(ds).modalities

    presets = []

    def fake_train(argv):  # the demo's own training is covered elsewhere; here: what it writes and prints
        out = argv[argv.index("--out") + 1]
        presets.append(argv[argv.index("--preset") + 1])
        values = np.full((len(mods), len(mods)), 0.9)
        write_table(table_from_matrix(values, mods, data_label="synthetic stand-in"),
                    f"{out}/eval/test-independent-k50")
        rec = {"1": 0.5, "5": 0.75, "10": 1.0, "median_rank": 1.5}
        (tmp_path / "work" / out / "metrics.json").write_text(json.dumps(
            {"recall": {"test": {q: {r: rec for r in mods if r != q} for q in mods}}}))
        return 0

    monkeypatch.setattr(cvs_tf.cli.train, "main", fake_train)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["--dataset", str(ds), "--out", "run"]) == 0
    out = capsys.readouterr().out
    assert "best preset (ours)" in out and "thesis recipe" in out and "CCA" in out and "label-space" in out and "chance" in out
    assert "posterior product" in out and "image→text" in out
    assert "instance level: R@1/R@5/R@10" in out and "0.500/0.750/1.000" in out
    assert "strongest baseline, class level (overall mAP@50): " in out
    assert "  best preset (ours): 0.900 (" in out               # the margin over the strongest baseline
    assert "strongest baseline, instance level" in out and "  thesis recipe: R@1 0.500 (" in out
    assert "report not written: " in out and "config.json: missing" in out   # the fake runs are no real runs
    assert presets == ["best", "thesis"] and sorted(p.name for p in (work / "run").iterdir()) == ["best", "thesis"]
    assert sorted(p.name for p in work.iterdir()) == ["run"]     # no docs/, no results/
