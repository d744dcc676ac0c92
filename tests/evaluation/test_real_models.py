"""The evaluation protocols and table on the real cvs_tf.models spaces (CVS, RVS), not just the test stand-in."""

import numpy as np
import pytest

from cvs_tf.evaluation import cross_modal_table, map_at_k, map_at_k_from_scores, score_matrix
from cvs_tf.models import CVSModel, RVSModel
from tests.evaluation.fakes import one_pair_at_a_time

pytestmark = pytest.mark.toy(n_test=10)


@pytest.fixture(autouse=True)
def _seeded():
    """Fixed initial weights: an unseeded random model depends on what ran before it in the session."""
    import keras

    keras.utils.set_random_seed(0)


def _dims(fs):
    return {m: fs.dim(m) for m in fs.modalities}


def test_cvs_pairwise_is_exact_and_feeds_the_table(toy):
    model = CVSModel(_dims(toy), toy.num_classes, dim=8)
    x, y = toy.x, toy.y
    s = score_matrix(model, "audio", x("audio", "test"), "image", x("image", "test"), "pairwise")
    want = one_pair_at_a_time(model, "audio", x("audio", "test"), "image", x("image", "test"))
    np.testing.assert_allclose(s, want, rtol=0, atol=1e-5)
    df = cross_modal_table(model, "test", 5, protocol="pairwise", dataset=toy)
    assert df.attrs["fallback_cells"] == [] and df.attrs["protocol"] == "pairwise"
    assert df.at["audio", "image"] == pytest.approx(
        map_at_k_from_scores(want, y("audio", "test"), y("image", "test"), 5), abs=1e-12)
    ind = cross_modal_table(model, "test", None, dataset=toy)
    emb = {m: np.asarray(model.embed(m, x(m, "test"))) for m in toy.modalities}
    assert ind.at["text", "audio"] == map_at_k(emb["text"], emb["audio"], y("text", "test"), y("audio", "test"), None)


def test_rvs_table_falls_back_off_the_reference(toy):
    model = RVSModel(_dims(toy), toy.num_classes, reference="text", dim=8)
    model.set_stage(model.num_stages - 1, recompile=False)             # every modality trained
    df = cross_modal_table(model, "test", 5, protocol="rerank@4", dataset=toy)
    assert sorted(map(tuple, df.attrs["fallback_cells"])) == [("audio", "image"), ("image", "audio")]
    assert df.attrs["protocol"] == "rerank@4"
    x = toy.x
    s = score_matrix(model, "image", x("image", "test"), "text", x("text", "test"), "pairwise")
    np.testing.assert_allclose(s, one_pair_at_a_time(model, "image", x("image", "test"), "text", x("text", "test")),
                               rtol=0, atol=1e-5)
