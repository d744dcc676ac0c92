"""The three-set selection of --preset best reads validation only, and the instance-level rows."""

import json

import pytest

from experiments import preset_selection
from experiments.instance import margin_lines, recall_summary


def _result(dataset, vals, tests, base_val):
    runs = [{"dataset": dataset, "variant": v, "seed": s, "val_overall": val,
             "tables": {"independent": {"overall_mean": tests[v][s]}}}
            for v, per in vals.items() for s, val in enumerate(per)]
    return {"kind": "cross_modal", "experiment": f"real_{dataset}_selection", "quick": False, "runs": runs,
            "data": [{"dataset": dataset, "baselines": {b: {"val": x, "overall_mean": 0.9} for b, x in base_val.items()}}]}


def test_selection_uses_val_margins_not_test(tmp_path, capsys):
    # set a: A margins +0.10, B +0.20; set b: A +0.30, B +0.00 -> A mean 0.20 > B 0.10.
    # B has by far the better test numbers: a selection that read test would pick B.
    a = _result("a", {"A": [0.5, 0.5], "B": [0.6, 0.6]}, {"A": [0.1, 0.1], "B": [0.9, 0.9]},
                {"posterior": 0.4, "label": 0.3, "chance": 0.99})
    b = _result("b", {"A": [0.6, 0.6], "B": [0.3, 0.3], "C": [0.9, 0.9]}, {"A": [0.1, 0.1], "B": [0.9, 0.9], "C": [0.0, 0.0]},
                {"cca": 0.3})
    paths = []
    for i, rec in enumerate((a, b)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(rec))
    assert preset_selection.main([str(p) for p in paths] + ["--out", str(tmp_path / "sel.md")]) == 0
    out = capsys.readouterr().out
    assert "Chosen: **A**." in out
    assert "| C " not in out  # C did not run on every set
    assert "+0.200" in out and "+0.100" in out
    assert (tmp_path / "sel.md").read_text() in out


@pytest.mark.parametrize("change, message", [({"quick": True}, "--quick"), ({"runs": []}, "not a finished"),
                                             ({"kind": "blocks"}, "not a finished")])
def test_selection_refuses_other_results(tmp_path, capsys, change, message):
    rec = {**_result("a", {"A": [0.5]}, {"A": [0.1]}, {"posterior": 0.4}), **change}
    p = tmp_path / "r.json"
    p.write_text(json.dumps(rec))
    assert preset_selection.main([str(p)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_recall_summary_and_paired_margin():
    rec = {"image": {"text": {"1": 0.2, "5": 0.4, "10": 0.6, "median_rank": 8.0}},
           "text": {"image": {"1": 0.4, "5": 0.6, "10": 0.8, "median_rank": 4.0}}}
    s = recall_summary(rec)
    assert s["1"] == pytest.approx(0.3) and s["10"] == pytest.approx(0.7) and s["median_rank"] == pytest.approx(6.0)
    assert s["i2t"]["1"] == 0.2
    base = {"cca": {"recall": {"1": 0.25, "5": 0.5, "10": 0.5, "median_rank": 5.0}},
            "posterior": {"recall": {"1": 0.0, "5": 0.1, "10": 0.2, "median_rank": 9.0}}}
    line = margin_lines([{"variant": "v", "per_seed": [s, {**s, "1": 0.2}]}], base, {"cca": "CCA"})[0]
    # strongest by R@1+R@5+R@10: CCA (1.25); seeds R@1 0.3 and 0.2 -> +0.05 and -0.05, mean 0.000, above in 1 of 2
    assert "CCA, R@1 0.250" in line and "R@1 +0.000 (above in 1 of 2 seeds)" in line and "R@10 +0.200" in line
