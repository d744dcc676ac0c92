"""MODEL_CARD.md: written into every finished run and every export, its numbers those of metrics.json and calibration.json."""

import json
import re

from cvs_tf.evaluation.calibration import CALIBRATION_FILE
from cvs_tf.report.card import CARD_PRECISION, MODEL_CARD


def _check_card_numbers(card: str, metrics: dict, calibration: dict) -> None:
    for split in ("test", "val"):
        rec = metrics[split]
        line = next(ln for ln in card.splitlines() if ln.startswith(f"- {rec['metric']}, independent protocol, {split} split"))
        assert f"**{rec['overall_mean']:.3f}**" in line and f"over {rec['n_pairs']} ordered pairs" in line
    test = metrics["test"]
    rows = dict(re.findall(r"^\| (\w+→\w+) \| ([0-9.]+) \|$", card, flags=re.M))
    expected = {f"{q}→{r}": f"{test['matrix'][q][r]:.3f}" for q in test["modalities"] for r in test["modalities"] if q != r}
    assert rows == expected
    recalls = [rec for per in metrics["recall"]["test"].values() for rec in per.values()]
    assert f"R@1 {sum(r['1'] for r in recalls) / len(recalls):.3f}" in card
    for q in calibration["modalities"]:
        for r in calibration["modalities"]:
            t = calibration["pairs"][q][r]["thresholds"][str(CARD_PRECISION)]
            if q != r:
                assert (f"- {q}→{r}: {t:.3f} (" if t is not None else f"- {q}→{r}: unreachable") in card


def test_a_finished_run_has_a_model_card_with_its_own_numbers(tiny_export):
    run, _, _ = tiny_export
    card = (run / MODEL_CARD).read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    calibration = json.loads((run / CALIBRATION_FILE).read_text())
    assert card.startswith(f"# Model card: {run.name}") and "Synthetic stand-in" in card
    assert "| image | 16 |" in card and "| text | 12 |" in card
    assert calibration["split"] == "val" and calibration["protocol"] == "independent"
    _check_card_numbers(card, metrics, calibration)


def test_an_export_has_a_model_card_and_the_calibration_in_export_json(tiny_export):
    run, export, _ = tiny_export
    manifest = json.loads((export / "export.json").read_text())
    assert manifest["model_card"] == MODEL_CARD
    card = (export / MODEL_CARD).read_text()
    assert card.startswith(f"# Model card: {run.name} (export)")
    # the export's calibration is that of the exported model on the same split and seed: the run's own
    run_cal = json.loads((run / CALIBRATION_FILE).read_text())
    assert manifest["calibration"]["pairs"]["image"]["text"]["thresholds"] == run_cal["pairs"]["image"]["text"]["thresholds"]
    _check_card_numbers(card, json.loads((run / "metrics.json").read_text()), manifest["calibration"])
