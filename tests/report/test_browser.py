"""The report as a person sees it: opened in headless Chromium (browser lane, `make test-report`).

No console error, every figure loaded, galleries with pictures and audio players, and a full-page
screenshot under ``runs/report-lane/`` (``$CVS_TF_REPORT_SHOTS``) to look at. The lane installs
Debian's ``chromium`` and unpacks the Tux Paint stamps, then sets CVS_TF_REPORT_LANE=1; elsewhere
this module is skipped.
"""

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.trains

if not os.environ.get("CVS_TF_REPORT_LANE"):
    pytest.skip("browser lane only (make test-report)", allow_module_level=True)

from cvs_tf.cli.train import main as train  # noqa: E402
from cvs_tf.report.__main__ import main as report_main  # noqa: E402
from cvs_tf.utils.cli import run_cli  # noqa: E402
from tests.helpers import make_toy_featureset, write_small_config  # noqa: E402
from tests.report.browser import chromium, open_page  # noqa: E402
from tests.report.helpers import write_toy_media  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("CVS_TF_REPORT_SHOTS") or REPO / "runs" / "report-lane")
SECTIONS = ["summary", "map", "recall", "losses", "per-class", "confusion", "projector", "calibration", "galleries"]


@pytest.fixture(scope="module")
def shots():
    assert chromium(), "the browser lane needs Debian's chromium (make test-report installs it)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


def _train(tmp_path, dataset, *extra) -> Path:
    cfg = write_small_config(tmp_path / "small.json", 32)
    run = tmp_path / "run"
    assert train(["--dataset", str(dataset), "--config", str(cfg), "--epochs", "2", "--steps-per-epoch", "3",
                  "--no-jit", "--quiet", "--out", str(run), *extra]) in (0, None)
    return run


def _check_page(found: dict) -> None:
    assert found["errors"] == [], found["errors"]
    assert found["sections"] == SECTIONS
    assert found["figures"] and all(found["figures"]), found["figures"]   # every figure decoded and drawn


def test_a_synthetic_report_opens_without_console_errors(tmp_path, shots):
    ds = make_toy_featureset(tmp_path / "ds", paired=True, n_train=48, n_test=16)
    run = _train(tmp_path, ds, "--batch-size", "8")
    media = tmp_path / "media"
    write_toy_media(media, [f"test:{r}" for r in range(16)])
    out = tmp_path / "toy.html"
    assert run_cli(report_main, [str(run), "--out", str(out), "--media", str(media), "--baselines", "chance"]) == 0
    found = open_page(out, shots / "toy-report.png")
    _check_page(found)
    assert found["banner"] and found["gallery_images"] >= 12 and found["audio"] >= 12


def test_the_tux12_report_shows_galleries_with_pictures(tmp_path, shots):
    run = _train(tmp_path, "tux12", "--batch-size", "64")
    out = tmp_path / "tux12.html"
    assert run_cli(report_main, [str(run), "--out", str(out)]) == 0   # the stamps found where the lane unpacked them
    html = out.read_text()
    assert "media: no media at hand" not in html, "the Tux Paint stamps were not found (make test-report unpacks them)"
    found = open_page(out, shots / "tux12-report.png")
    _check_page(found)
    assert not found["banner"]
    assert found["gallery_images"] >= 20 and found["audio"] >= 20 and found["audio_playable"] == found["audio"]
