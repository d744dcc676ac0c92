"""Every space lists its modalities (and so its tables' rows and columns) in the canonical order, whatever the stage plan."""

import pytest

from cvs_tf.data.store import load_feature_set, order_modalities
from cvs_tf.evaluation.table import cross_modal_table
from cvs_tf.models import CVSModel, MCVSModel, RVSModel
from tests.helpers import make_toy_featureset

DIMS = {"image": 6, "text": 5, "audio": 4}


@pytest.mark.parametrize("make", [
    lambda: RVSModel({"text": 5, "image": 6, "audio": 4}, 3, reference="text", dim=8, current_stage=1),
    lambda: MCVSModel({"text": 5, "audio": 4, "image": 6}, 3, stages=[["text", "audio"], ["image"]], dim=8,
                      current_stage=1),
    lambda: CVSModel({"audio": 4, "text": 5, "image": 6}, 3, dim=8),
], ids=["rvs-text-reference", "mcvs-text-first", "cvs-user-order"])
def test_modalities_are_canonical_whatever_the_stage_plan(make):
    model = make()
    assert model.modalities == ["image", "text", "audio"] == order_modalities(model.modalities)


def test_rvs_table_rows_and_columns_are_image_text_audio(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "toy", modalities=DIMS, n_classes=3, n_train=12, n_test=6))
    model = RVSModel(DIMS, 3, reference="text", stages=[["text", "image"], ["audio"]], dim=8, current_stage=1)
    df = cross_modal_table(model, split="test", k=5, dataset=fs, modalities=model.modalities)  # as the CLIs call it
    assert list(df.index) == ["image", "text", "audio", "mean"] and list(df.columns)[:3] == ["image", "text", "audio"]
    stage1 = RVSModel(DIMS, 3, reference="text", stages=[["text", "image"], ["audio"]], dim=8)
    assert stage1.modalities == ["image", "text"]                  # only the trained ones, still canonical
