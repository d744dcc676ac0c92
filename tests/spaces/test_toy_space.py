"""A new space is one file: a "star" space defined and registered here only, trained and evaluated through the CLIs.

The star links a hub modality (``--reference``, any modality of the dataset) to every other one
with plain ``AlignedAttention`` blocks: RVS's plan with CVS's blocks and no shared layer.
Nothing under cvs_tf/ knows about it.
"""

import json

import keras
import pytest

import cvs_tf
from cvs_tf.cli.evaluate import main as evaluate
from cvs_tf.cli.train import main as train
from cvs_tf.config import ConfigError
from cvs_tf.models.base import CrossModalModel
from cvs_tf.spaces import Space, get_space, register_space, space_names
from cvs_tf.utils.cli import run_cli
from tests.helpers import make_toy_featureset, write_small_config

pytestmark = pytest.mark.trains

FAST = ["--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--no-jit", "--quiet"]


def star_stages(modalities, hub):
    others = [m for m in modalities if m != hub]
    return [[hub, others[0]]] + [[m] for m in others[1:]]


@keras.saving.register_keras_serializable(package="tests")
class StarModel(CrossModalModel):
    """Stage 1 = hub + one modality; each later stage adds one modality linked to the hub only."""

    def default_stages(self):
        return star_stages(list(self.modality_dims), self.reference)

    @staticmethod
    def plan_of(stages, reference):
        if reference not in stages[0]:
            raise ConfigError(f"star stage 1 must hold the hub {reference!r}, got {stages[0]}")
        return [{"blocks": p, "pairs": p} for p in ([(reference, m) for m in s if m != reference] for s in stages)]

    def make_plan(self, stages):
        return self.plan_of(stages, self.reference)


class Star(Space):
    name = "star"
    model_class = StarModel
    multi_stage = True
    options = ("reference",)

    def check_options(self, model_config, fs=None):
        if fs is not None and model_config.reference not in fs.modalities:
            raise ConfigError(f"star hub {model_config.reference!r} is not a modality of {fs.name}")

    def default_stages(self, modalities, config, fs):
        return star_stages(modalities, config.model.reference)

    def run_tag(self, config):
        return f"star-{config.model.reference}"


register_space(Star(), replace=True)


@pytest.fixture(scope="module")
def star_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("star")
    ds = make_toy_featureset(tmp / "ds")
    cfg = write_small_config(tmp / "small.json", 8)
    out = tmp / "run"
    assert train(["--space", "star", "--reference", "audio", "--dataset", str(ds), "--config", str(cfg), *FAST,
                  "--out", str(out)]) == 0
    return ds, out


def test_the_star_is_registered_beside_the_built_in_spaces():
    assert space_names()[:3] == ["cvs", "mcvs", "rvs"] and "star" in space_names()
    assert get_space("star").model_class is StarModel


def test_the_star_trains_through_the_train_cli(star_run):
    _, out = star_run
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["space"] == "star" and config["model"]["reference"] == "audio"
    assert config["resolved"]["stages"] == [["audio", "image"], ["text"]]
    assert sorted(p.name for p in (out / "stages").iterdir()) == ["1-audio_image", "2-text"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["attention_blocks"] for r in metrics["stages"]] == [1, 2]
    model = cvs_tf.load_model(out)
    assert type(model) is StarModel and model.current_stage == 1
    assert sorted(model.blocks) == ["audio__image", "audio__text"]
    assert all(type(b).__name__ == "AlignedAttention" for b in model.blocks.values())


def test_the_star_evaluates_through_the_evaluate_cli(star_run, capsys):
    _, out = star_run
    assert evaluate([str(out), "--protocol", "pairwise", "--k", "all"]) == 0
    assert "pairwise" in capsys.readouterr().out
    rec = json.loads((out / "eval" / "test-pairwise-kall.json").read_text())
    # blocks link the hub only: image<->text falls back to the independent protocol
    assert sorted(map(tuple, rec["fallback_cells"])) == [("image", "text"), ("text", "image")]


def test_the_star_hub_is_checked_by_the_star_only(star_run, tmp_path, capsys):
    ds, _ = star_run
    code = run_cli(train, ["--space", "star", "--reference", "smell", "--dataset", str(ds), *FAST,
                           "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: star hub 'smell' is not a modality of toy"]
    assert not (tmp_path / "r").exists()
