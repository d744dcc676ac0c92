"""experiments.sections: the strongest recorded baseline and each variant's margin over it."""

from experiments.sections import BASELINE_NAMES, margin_lines


def test_margin_lines_name_the_strongest_learned_baseline():
    rec = {"baselines": {"posterior": {"overall_mean": 0.499}, "label": {"overall_mean": 0.486},
                         "chance": {"overall_mean": 0.9}}}
    srows = [{"variant": "best preset", "mean": 0.520}, {"variant": "thesis recipe", "mean": 0.480}]
    lines = margin_lines(srows, rec)
    assert lines[0] == (f"Strongest baseline: {BASELINE_NAMES['posterior']}, 0.499. "
                        "Margin over it: best preset +0.021, thesis recipe −0.019.")
    assert margin_lines(srows, {"baselines": {"chance": {"overall_mean": 0.2}}}) == []
    assert margin_lines(srows, {}) == []
