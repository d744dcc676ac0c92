"""Every experiment end to end with --quick (integration lane: `make test-integration`; minutes each on 2 cores)."""

import json

import pytest

from cvs_tf.utils.cli import run_cli
from experiments.__main__ import main
from experiments.data import SYNTH_LABEL, missing_real_data
from experiments.kinds import get_kind
from experiments.spec import available
from tests.experiments import load_or_pending

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One stand-in cache for the whole lane (each stand-in is generated once)."""
    return tmp_path_factory.mktemp("synth-cache")


@pytest.mark.parametrize("name", available())
def test_experiment_runs_quick_and_writes_its_outputs(name, tmp_path, cache, capsys):
    exp = load_or_pending(name)
    if exp is None:
        pytest.skip(f"{name} names a preset that has not shipped yet")
    missing = missing_real_data(exp, None)
    if missing:
        pytest.skip(missing)
    res = tmp_path / "results"
    code = run_cli(main, ["run", name, "--quick", "--results", str(res), "--runs", str(tmp_path / "runs"),
                          "--cache", str(cache)])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    md = (res / f"{name}.md").read_text()
    title = md.splitlines()[0]
    assert title.startswith(f"## {exp.title}")
    synthetic = any(not d.real_only for d in exp.datasets)
    assert (SYNTH_LABEL in title) == synthetic
    assert "**Quick run**" in md and "- command: `python -m experiments run" in md
    rec = json.loads((res / f"{name}.json").read_text())
    assert rec["experiment"] == name and rec["quick"] is True
    assert (res / f"{name}.csv").stat().st_size > 0
    if get_kind(exp.kind).figure or exp.options.get("figure"):
        assert list(res.glob(f"{name}*.png")), "no figure written"
