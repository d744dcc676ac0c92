"""The space registry: names, lookup errors, registration, the built-in spaces' plans and options, and the CLI's use of it."""

import subprocess
import sys

import pytest

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.data.store import load_feature_set
from cvs_tf.models import CVSModel, MCVSModel, RVSModel, build_model
from cvs_tf.plan import RunPlan
from cvs_tf.spaces import (
    DEFAULT_SPACE,
    Space,
    get_space,
    register_space,
    space_for_model,
    space_names,
)
from cvs_tf.utils.cli import run_cli
from tests.conftest import make_toy_featureset
from tests.models.test_spaces import small_config


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return load_feature_set(make_toy_featureset(tmp_path_factory.mktemp("reg") / "toy"))


def _config(space, **model):
    return small_config(space, **{"dim": 8, **model})


def test_built_in_spaces_and_their_model_classes():
    assert space_names()[:3] == ["cvs", "mcvs", "rvs"] and DEFAULT_SPACE == "cvs"
    assert [get_space(n).model_class for n in ("cvs", "mcvs", "rvs")] == [CVSModel, MCVSModel, RVSModel]
    assert [get_space(n).multi_stage for n in ("cvs", "mcvs", "rvs")] == [False, True, True]
    assert RunConfig().model.space == DEFAULT_SPACE


def test_unknown_space_is_one_line_listing_the_known_ones():
    with pytest.raises(ConfigError, match=r"^unknown space 'quantum' \(known: cvs, mcvs, rvs"):
        get_space("quantum")
    with pytest.raises(ConfigError, match="model.space must be one of cvs, mcvs, rvs"):
        _config("quantum").validate()


def test_register_refuses_a_taken_name_or_a_bad_space():
    class Copy(Space):
        name = "cvs"
        model_class = CVSModel

    with pytest.raises(ValueError, match="'cvs' is already registered"):
        register_space(Copy())
    with pytest.raises(ValueError, match="needs a Space with a name and a model_class"):
        register_space(Space())
    assert get_space("cvs").model_class is CVSModel


def test_space_for_model(toy):
    model = build_model(_config("rvs", reference="text"), toy)
    assert space_for_model(model) is get_space("rvs")
    assert get_space("rvs").run_tag(_config("rvs", reference="text")) == "rvs-text"


@pytest.mark.parametrize("reference", ["image", "text", "audio"])
def test_rvs_reference_is_any_modality_of_the_dataset(toy, reference):
    model = build_model(_config("rvs", reference=reference), toy)
    assert model.stages[0][0] == reference and len(model.blocks) == 2
    assert all(reference in key.split("__") for key in model.blocks)


@pytest.mark.parametrize("model_kw,needle", [
    ({"reference": "smell"}, "reference modality 'smell' is not in dataset toy (has image, text, audio)"),
    ({"reference": "text", "modalities": ["image", "audio"]}, "must include the RVS reference 'text'"),
    ({"reference": "text", "stages": [["image", "audio"], ["text"]]}, "RVS stage 1 must be [reference, one modality]"),
])
def test_rvs_reference_errors(toy, model_kw, needle):
    with pytest.raises(ConfigError) as err:
        build_model(_config("rvs", **model_kw), toy)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_plan_pairs_and_parameters_without_a_model(toy):
    cfg = _config("rvs", reference="text")
    assert RunPlan.build(cfg, toy).pairs == ((("text", "image"),), (("text", "audio"),))
    assert RunPlan.build(_config("mcvs"), toy).pairs == ((("image", "text"),), (("image", "audio"), ("text", "audio")))
    assert get_space("cvs").attention_parameters(8, 3) == 4 * 3 * 64
    assert get_space("rvs").attention_parameters(8, 2) == (3 * 2 + 2) * 64
    model = build_model(cfg, toy)
    model.set_stage(1, recompile=False)
    weights = {id(v): v.numpy().size for b in model.blocks.values() for v in b.weights}  # shared ones once
    assert sum(weights.values()) == get_space("rvs").attention_parameters(8, 2)


def test_mcvs_uses_the_dataset_family_plan(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "x", name="xmedianet-mini",
                                              modalities={"text": 4, "video": 4, "image": 4}))
    assert RunPlan.build(_config("mcvs"), fs).stage_lists() == [["image", "text"], ["video"]]
    cfg = _config("mcvs", modalities=["video", "text", "image"])
    assert RunPlan.build(cfg, fs).stage_lists() == [["video", "text"], ["image"]]


def test_stages_on_a_single_stage_space_name_the_multi_stage_ones(toy, capsys, tmp_path):
    with pytest.raises(ConfigError, match=r"space cvs trains every modality in one stage; stages need a "
                                          r"multi-stage space \(mcvs, rvs"):
        build_model(_config("cvs", stages=[["image", "text"], ["audio"]]), toy)
    from cvs_tf.cli.train import main

    code = run_cli(main, ["--space", "cvs", "--stages", "image,text", "audio", "--out", str(tmp_path / "r")])
    assert code == 2 and capsys.readouterr().err.strip().startswith("error: --stages needs --space mcvs or rvs")


def test_default_run_dir_takes_the_space_tag():
    from cvs_tf.cli.train import default_run_dir

    assert default_run_dir(_config("rvs", reference="audio")).name.startswith("rvs-audio-tux12-")
    assert default_run_dir(_config("mcvs", attention=False)).name.startswith("mcvs-noatt-tux12-")


def test_train_help_lists_the_spaces_without_starting_tensorflow():
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "cvs_tf.train", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "{cvs,mcvs,rvs" in r.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "cvs_tf.spaces" in imported and "tensorflow" not in imported and "keras" not in imported
