"""``python -m cvs_tf.evaluate RUN_DIR --projector``: Embedding Projector files read back by TensorBoard's own plugin, before and after training."""

import json
import shutil

import numpy as np
import pytest

from cvs_tf.cli.evaluate import main as evaluate
from cvs_tf.evaluation.projector import initial_model
from cvs_tf.training.run_dir import load_run
from tests.helpers import make_toy_featureset

pytestmark = pytest.mark.trains

FAST = ["--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet", "--early-stopping", "none"]


@pytest.fixture(scope="module")
def run(tiny_run, tmp_path_factory):
    """A short CVS run (D = 16) on a toy instance-paired set, copied and evaluated with --projector."""
    trained = tiny_run({"paired": True}, dim=16, epochs=2, steps=2, seed=3)
    run_dir = shutil.copytree(trained, tmp_path_factory.mktemp("projector") / "run")
    assert evaluate([str(run_dir), "--projector"]) == 0
    return run_dir


def tensorboard_plugin(logdir):
    """TensorBoard's Embedding Projector plugin over ``logdir`` (no event files: the root run ".")."""
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin

    class NoRuns:
        def list_runs(self, ctx, experiment_id):
            return []

    return ProjectorPlugin(base_plugin.TBContext(logdir=str(logdir), data_provider=NoRuns()))


def get(plugin, route, **args):
    from werkzeug.test import Client

    resp = Client(plugin.get_plugin_apps()[route]).get(route, query_string=args)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_data()


def test_projector_config_parses_with_the_projector_protos(run):
    from google.protobuf import text_format
    from tensorboard.plugins.projector import ProjectorConfig

    config = text_format.Parse((run / "projector" / "projector_config.pbtxt").read_text(), ProjectorConfig())
    assert [e.tensor_name for e in config.embeddings] == ["before", "after"]
    for e in config.embeddings:
        assert e.tensor_path == f"{e.tensor_name}.tsv" and e.metadata_path == "metadata.tsv"
        assert list(e.tensor_shape) == [36, 16]          # 12 test items x 3 modalities, D = 16


def test_tensors_are_the_models_embeddings_before_and_after_training(run):
    model, fs, _ = load_run(run)
    after = np.loadtxt(run / "projector" / "after.tsv", delimiter="\t")
    before = np.loadtxt(run / "projector" / "before.tsv", delimiter="\t")
    want_after = np.concatenate([model.embed(m, fs.x(m, "test")).numpy() for m in model.modalities])
    init = initial_model(run, fs)
    want_before = np.concatenate([init.embed(m, fs.x(m, "test")).numpy() for m in model.modalities])
    np.testing.assert_allclose(after, want_after, atol=1e-6)
    np.testing.assert_allclose(before, want_before, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)
    assert np.abs(after - before).max() > 1e-3                        # training moved the space


def test_metadata_has_class_and_modality_columns(run):
    _, fs, _ = load_run(run)
    lines = (run / "projector" / "metadata.tsv").read_text().splitlines()
    assert lines[0] == "class\tmodality\tid" and len(lines) == 1 + 36
    rows = [ln.split("\t") for ln in lines[1:]]
    assert [r[1] for r in rows] == ["image"] * 12 + ["text"] * 12 + ["audio"] * 12
    assert [r[0] for r in rows[:12]] == [fs.classes[c] for c in fs.y("image", "test")]
    assert rows[12][2] == "test:0"
    info = json.loads((run / "projector" / "projector.json").read_text())
    assert info["stage"] == 1 and info["seed"] == 3 and info["modalities"] == {"image": 12, "text": 12, "audio": 12}


def test_tensorboard_serves_the_files(run):
    plugin = tensorboard_plugin(run / "projector")
    assert json.loads(get(plugin, "/runs")) == ["."]
    info = json.loads(get(plugin, "/info", run="."))
    assert [e["tensorName"] for e in info["embeddings"]] == ["before", "after"]
    served = np.frombuffer(get(plugin, "/tensor", run=".", name="after"), dtype=np.float32).reshape(36, 16)
    np.testing.assert_allclose(served, np.loadtxt(run / "projector" / "after.tsv", delimiter="\t"), atol=1e-7)
    meta = get(plugin, "/metadata", run=".", name="before").decode().splitlines()
    assert meta[0] == "class\tmodality\tid" and len(meta) == 37


def test_png_has_pca_and_tsne_before_and_after(run):
    import matplotlib.image

    img = matplotlib.image.imread(run / "projector" / "space.png")
    assert img.ndim == 3 and img.shape[0] > 800 and img.shape[1] > 800


@pytest.mark.parametrize("extra", [[], ["--standardize"]], ids=["plain", "standardize"])
def test_before_is_the_initial_weights_the_trainer_started_from(tmp_path, extra):
    """Re-building from the run's config and seed gives exactly the weights of the first training step's start
    (with --standardize: the train-split statistics too)."""
    import keras

    from cvs_tf.cli.train import config_from_args, parse_args
    from cvs_tf.data.store import load_feature_set
    from cvs_tf.training.trainer import Trainer

    ds = make_toy_featureset(tmp_path / "ds")
    seen = []

    class FirstWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if not seen:
                seen.append([np.array(w) for w in self.model.get_weights()])

    cfg = config_from_args(parse_args(["--dataset", str(ds), "--epochs", "1", "--seed", "11", "--no-attention", *extra, *FAST]))
    Trainer(cfg, tmp_path / "run", verbose=0, callbacks=[FirstWeights()], log=lambda m: None).run()
    rebuilt = initial_model(tmp_path / "run", load_feature_set(ds)).get_weights()
    assert len(rebuilt) == len(seen[0])
    for a, b in zip(rebuilt, seen[0]):
        np.testing.assert_array_equal(a, b)


def test_projector_of_a_missing_run_is_one_line(tmp_path, capsys):
    from cvs_tf.utils.cli import run_cli

    assert run_cli(evaluate, [str(tmp_path / "nope"), "--projector"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "nope").exists()
