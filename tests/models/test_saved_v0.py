"""`.keras` files saved before the space registry (cvs_tf 0.1, models in cvs_tf/models/) still load and score the same."""

import json
from pathlib import Path

import numpy as np
import pytest

import cvs_tf
from cvs_tf.evaluation.protocols import score_matrix

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "expected_v0.json").read_text())
SHAPES = {"cvs": ("CVSModel", [["image", "text", "audio"]], 0),
          "mcvs": ("MCVSModel", [["image", "text"], ["audio"]], 1),
          "rvs": ("RVSModel", [["text", "image"], ["audio"]], 1)}


def _inputs(model):
    return {m: np.sin(np.arange(3 * d, dtype=np.float32).reshape(3, d) + 0.5) for m, d in model.modality_dims.items()}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_a_pre_registry_keras_file_loads_with_the_same_embeddings_and_scores(name):
    """Made by the pre-change code (CVSModel etc. in cvs_tf.models.*, ``block_type``); the archive names
    its class by module and registered name, and its weights by attribute path."""
    model = cvs_tf.load_model(DATA / f"{name}_v0.keras")
    cls, stages, stage = SHAPES[name]
    assert (type(model).__name__, model.stages, model.current_stage) == (cls, stages, stage)
    x = _inputs(model)
    want = EXPECTED[name]
    for m in model.modality_dims:
        np.testing.assert_allclose(model.embed(m, x[m]).numpy(), np.array(want["embed"][m]), rtol=0, atol=1e-6)
    for key, scores in want["scores"].items():
        pair, proto = key.split("|")
        a, b = pair.split(">")
        np.testing.assert_allclose(score_matrix(model, a, x[a], b, x[b], proto), np.array(scores), rtol=0, atol=1e-6,
                                   err_msg=key)
    if name == "rvs":  # every block shares the reference's kernels again
        blocks = list(model.blocks.values())
        assert len(blocks) == 2 and blocks[0].w_ie is blocks[1].w_ie is model.shared_reference.w_ie
