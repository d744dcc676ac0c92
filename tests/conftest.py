"""Shared pytest fixtures: quiet TF logs, toy feature sets, tiny configs and finished runs, the ``trains`` cost line."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tests.helpers import make_toy_featureset, train_tiny_run, trains_summary  # noqa: E402

#: fixtures that train a model the first time a session asks for them: tests using them carry ``trains``
TRAINING_FIXTURES = ("tiny_run", "tiny_export")


def _key(kw: dict) -> tuple:
    return tuple(sorted((k, tuple(v.items()) if isinstance(v, dict) else v) for k, v in kw.items()))


def _toy_args(request) -> dict:
    """The keyword arguments of ``@pytest.mark.toy(...)`` on the test, its class or its module (none: the defaults)."""
    marker = request.node.get_closest_marker("toy")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
def make_toy(tmp_path):
    """Factory: ``make_toy(**kw)`` writes a fresh toy set to ``tmp_path / name`` (default "toy"); the test may change it."""
    def make(name="toy", **kw):
        return make_toy_featureset(tmp_path / name, name=name, **kw)
    return make


@pytest.fixture(scope="session")
def shared_toy(tmp_path_factory):
    """Factory: ``shared_toy(**kw)``, the path of a toy set written once per session per ``kw``: read it, never change it."""
    made = {}

    def get(**kw):
        key = _key(kw)
        if key not in made:
            made[key] = make_toy_featureset(tmp_path_factory.mktemp("toy") / "toy", **kw)
        return made[key]
    return get


@pytest.fixture
def toy_set(make_toy, request):
    """Path of a fresh toy set (``@pytest.mark.toy(...)`` arguments; default: class-aligned image, text, audio)."""
    return make_toy(**_toy_args(request))


@pytest.fixture
def toy_path(shared_toy, request):
    """Path of the session's shared toy set for ``@pytest.mark.toy(...)``: read-only."""
    return shared_toy(**_toy_args(request))


@pytest.fixture
def toy(toy_path):
    """The shared toy set of ``@pytest.mark.toy(...)``, loaded (a fresh FeatureSet object per test)."""
    from cvs_tf.data.store import load_feature_set

    return load_feature_set(toy_path)


@pytest.fixture(scope="session")
def tiny_run(shared_toy, tmp_path_factory):
    """Factory: ``tiny_run(toy=None, **kw)``, a finished CLI run on a shared toy set, trained once per session per
    arguments (``toy``: the set's arguments, default paired image+text; ``kw``: :func:`tests.helpers.train_tiny_run`'s).
    Read it, never change it (copy it first)."""
    made = {}

    def get(toy=None, **kw):
        toy = toy or {"modalities": {"image": 16, "text": 12}, "paired": True}
        key = (_key(toy), _key(kw))
        if key not in made:
            made[key] = train_tiny_run(tmp_path_factory.mktemp("tiny-run") / "run", shared_toy(**toy), **kw)
        return made[key]
    return get


@pytest.fixture(scope="session")
def tiny_export(tiny_run, shared_toy, tmp_path_factory):
    """``(run_dir, export_dir, dataset)``: the default tiny run (CVS, paired image+text, D = 8, one step) and its export.

    For the tests of what the writing commands do with existing outputs, kills and concurrent writers.
    """
    from cvs_tf.serving.export import export_run

    run = tiny_run()
    ds = shared_toy(modalities={"image": 16, "text": 12}, paired=True)
    return run, export_run(run, tmp_path_factory.mktemp("tiny") / "export"), ds


def pytest_collection_modifyitems(items):
    for item in items:
        if any(f in TRAINING_FIXTURES for f in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.trains)


def pytest_terminal_summary(terminalreporter):
    line = trains_summary(terminalreporter.stats)
    if line:
        terminalreporter.write_line(line)
