"""Tests for cvs_tf.evaluation.table: the Q×R layout, means, writers round-trip, fallback cells, no label leak."""

import json

import numpy as np
import pandas as pd
import pytest

from cvs_tf.data.store import FeatureSet, load_feature_set
from cvs_tf.evaluation import (
    MEAN,
    cross_modal_recall,
    cross_modal_table,
    format_table,
    map_at_k,
    map_at_k_from_scores,
    read_table,
    recall_at_k,
    recall_at_k_from_scores,
    score_matrix,
    write_table,
)
from cvs_tf.evaluation import table as table_mod
from cvs_tf.evaluation.table import format_recall, recall_markdown, recall_rows
from tests.evaluation.fakes import cvs_fake, rvs_fake
from tests.helpers import make_toy_featureset

pytestmark = pytest.mark.toy(n_test=16)


def _embedded(seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for m, n in (("text", 12), ("image", 10), ("audio", 7)):      # deliberately not in canonical order
        y = rng.integers(0, 3, n)
        out[m] = (rng.normal(size=(n, 4)) + np.eye(3, 4)[y] * 2.0, y)
    return out


def test_layout_values_and_means():
    data = _embedded()
    df = cross_modal_table(data, "test", 5, data_label="synthetic stand-in")
    mods = ["image", "text", "audio"]                               # canonical order
    assert list(df.index) == mods + [MEAN] and list(df.columns) == mods + [MEAN]
    for q in mods:
        assert np.isnan(df.at[q, q])
        for r in mods:
            if q != r:
                assert df.at[q, r] == map_at_k(data[q][0], data[r][0], data[q][1], data[r][1], 5)
        assert df.at[q, MEAN] == pytest.approx(np.mean([df.at[q, r] for r in mods if r != q]), abs=1e-15)
        assert df.at[MEAN, q] == pytest.approx(np.mean([df.at[r, q] for r in mods if r != q]), abs=1e-15)
    cells = [df.at[q, r] for q in mods for r in mods if q != r]
    assert len(cells) == 6
    assert df.attrs["overall_mean"] == pytest.approx(np.mean(cells), abs=1e-15)
    assert df.at[MEAN, MEAN] == pytest.approx(np.mean(cells), abs=1e-15)
    assert df.attrs["protocol"] == "independent" and df.attrs["split"] == "test" and df.attrs["k"] == 5
    assert df.attrs["data_label"] == "synthetic stand-in" and df.attrs["n_pairs"] == 6
    assert df.attrs["title"] == "mAP@5 — independent protocol, test split (synthetic stand-in)"
    assert cross_modal_table(data, "val", None).attrs["metric"] == "mAP@all"
    assert cross_modal_table(data, "val", "all").attrs["k"] == "all"


def test_modalities_argument_sets_order_and_subset():
    df = cross_modal_table(_embedded(), k=3, modalities=["audio", "text"])
    assert list(df.index) == ["audio", "text", MEAN]


def test_format_and_writers_round_trip(tmp_path):
    df = cross_modal_table(_embedded(), "test", 5, data_label="synthetic stand-in")
    text = format_table(df)
    assert text.splitlines()[0] == df.attrs["title"] and "—" in text and "nan" not in text.lower()
    paths = write_table(df, tmp_path / "sub" / "table")
    assert sorted(p.name for p in paths.values()) == ["table.csv", "table.json", "table.md"]
    md = paths["md"].read_text()
    assert df.attrs["title"] in md and "| image | — |" in md and "synthetic stand-in" in md
    csv = pd.read_csv(paths["csv"], index_col=0)
    np.testing.assert_array_equal(csv.to_numpy(), df.to_numpy())          # NaN in the same places
    rec = json.loads(paths["json"].read_text())
    assert (rec["protocol"], rec["split"], rec["k"], rec["data_label"]) == ("independent", "test", 5, "synthetic stand-in")
    assert rec["matrix"]["image"]["image"] is None
    assert rec["matrix"]["text"]["audio"] == df.at["text", "audio"]
    assert rec["overall_mean"] == df.attrs["overall_mean"] and rec["fallback_cells"] == []
    back = read_table(paths["json"])
    np.testing.assert_array_equal(back.to_numpy(), df.to_numpy())
    assert back.attrs == df.attrs


def test_read_table_rejects_other_files(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    (tmp_path / "y.json").write_text("not json")
    with pytest.raises(ValueError, match="not a cvs_tf.map_table"):
        read_table(tmp_path / "x.json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_table(tmp_path / "y.json")


def test_empty_modality_is_a_clear_error_not_nan(tmp_path):
    data = _embedded()
    data["audio"] = (np.zeros((0, 4)), np.zeros(0, int))
    with pytest.raises(ValueError, match="modality 'audio' has no items in the test split"):
        cross_modal_table(data)
    fs = load_feature_set(make_toy_featureset(tmp_path / "toy"))
    manifest = json.loads(json.dumps(fs.manifest))
    manifest["modalities"]["audio"]["counts"]["test"] = 0
    arrays = dict(fs.arrays)
    x, y = arrays[("audio", "test")]
    arrays[("audio", "test")] = (x[:0], y[:0])
    empty = FeatureSet(fs.path, manifest, arrays)
    model = cvs_fake({m: fs.dim(m) for m in fs.modalities})
    with pytest.raises(ValueError, match="modality 'audio' has no items in the test split"):
        cross_modal_table(model, "test", 5, dataset=empty)


def test_other_errors():
    data = _embedded()
    with pytest.raises(ValueError, match="needs the model"):
        cross_modal_table(data, protocol="pairwise")
    with pytest.raises(ValueError, match="at least two modalities"):
        cross_modal_table(data, modalities=["image"])
    with pytest.raises(ValueError, match="no embeddings for modality 'video'"):
        cross_modal_table(data, modalities=["image", "video"])
    with pytest.raises(ValueError, match="dataset="):
        cross_modal_table(cvs_fake({"image": 3, "text": 3}))
    with pytest.raises(ValueError, match="k must"):
        cross_modal_table(data, k=0)


def test_model_table_independent_and_pairwise_cells(toy):
    model = cvs_fake({m: toy.dim(m) for m in toy.modalities}, seed=2)
    ind = cross_modal_table(model, "test", 5, dataset=toy)
    pw = cross_modal_table(model, "test", 5, protocol="pairwise", dataset=toy)
    assert ind.attrs["data_label"] == "synthetic stand-in" and pw.attrs["protocol"] == "pairwise"
    x, y = toy.x, toy.y
    emb = {m: np.asarray(model.embed(m, x(m, "test"))) for m in toy.modalities}
    assert ind.at["image", "audio"] == map_at_k(emb["image"], emb["audio"], y("image", "test"), y("audio", "test"), 5)
    s = score_matrix(model, "audio", x("audio", "test"), "text", x("text", "test"), "pairwise")
    assert pw.at["audio", "text"] == pytest.approx(
        map_at_k_from_scores(s, y("audio", "test"), y("text", "test"), 5), abs=1e-12)
    assert not np.allclose(ind.to_numpy()[:3, :3][~np.eye(3, dtype=bool)], pw.to_numpy()[:3, :3][~np.eye(3, dtype=bool)])
    assert pw.attrs["fallback_cells"] == []


def test_rvs_table_lists_fallback_cells(toy):
    model = rvs_fake({m: toy.dim(m) for m in toy.modalities}, reference="text")
    df = cross_modal_table(model, "test", 5, protocol="rerank@3", dataset=toy)
    assert df.attrs["fallback_cells"] == [["image", "audio"], ["audio", "image"]]
    assert "0." in format_table(df) and "*" in format_table(df)
    assert "independent protocol (no attention block" in format_table(df)


def test_no_leak_permuted_labels_change_nothing_but_the_scoring(toy, monkeypatch):
    """Permuting the test labels before embedding leaves every score matrix the model produces unchanged."""
    rng = np.random.default_rng(0)
    arrays = dict(toy.arrays)
    for m in toy.modalities:
        x, y = arrays[(m, "test")]
        arrays[(m, "test")] = (x, np.asarray(y)[rng.permutation(len(y))])
    permuted = FeatureSet(toy.path, toy.manifest, arrays)

    real_scores, real_emb = table_mod.map_at_k_from_scores, table_mod.map_at_k

    def capture(store):
        def from_scores(scores, yq, yr, k, **kw):
            store.append(("scores", np.array(scores)))
            return real_scores(scores, yq, yr, k, **kw)

        def from_emb(eq, er, yq, yr, k, **kw):
            store.append(("emb", np.array(eq), np.array(er)))
            return real_emb(eq, er, yq, yr, k, **kw)

        monkeypatch.setattr(table_mod, "map_at_k_from_scores", from_scores)
        monkeypatch.setattr(table_mod, "map_at_k", from_emb)

    for protocol in ("independent", "pairwise"):
        runs = []
        for fs in (toy, permuted):
            model = cvs_fake({m: toy.dim(m) for m in toy.modalities}, seed=5)
            store = []
            capture(store)
            df = cross_modal_table(model, "test", 5, protocol=protocol, dataset=fs)
            runs.append((model.seen, store, df))
        (seen_a, store_a, df_a), (seen_b, store_b, df_b) = runs
        assert seen_a == seen_b                               # the model saw exactly the same inputs
        assert len(store_a) == len(store_b) == 6
        for a, b in zip(store_a, store_b):
            assert a[0] == b[0] and all(np.array_equal(u, v) for u, v in zip(a[1:], b[1:]))
        # ... and labels do matter for the score itself, so the check above is not vacuous
        assert not np.allclose(df_a.to_numpy()[:3, :3][~np.eye(3, dtype=bool)],
                               df_b.to_numpy()[:3, :3][~np.eye(3, dtype=bool)])


def test_recall_record_of_a_paired_model(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "paired", paired=True, n_test=16))
    model = cvs_fake({m: fs.dim(m) for m in fs.modalities}, seed=3)
    rec = cross_modal_recall(model, "test", dataset=fs)
    assert list(rec) == ["image", "text", "audio"] and list(rec["image"]) == ["text", "audio"]
    emb = {m: np.asarray(model.embed(m, fs.x(m, "test"))) for m in fs.modalities}
    assert rec["text"]["audio"] == recall_at_k(emb["text"], emb["audio"])
    assert set(rec["text"]["audio"]) == {"1", "5", "10", "median_rank"}
    pw = cross_modal_recall(model, "test", ks=(1, 3), protocol="pairwise", dataset=fs)
    s = score_matrix(model, "audio", fs.x("audio", "test"), "image", fs.x("image", "test"), "pairwise")
    assert pw["audio"]["image"] == recall_at_k_from_scores(s, (1, 3))
    header, rows = recall_rows(rec)
    assert header == ["pair", "R@1", "R@5", "R@10", "median rank"] and len(rows) == 7
    assert rows[-1][0] == MEAN
    assert rows[-1][1] == pytest.approx(np.mean([rec[q][r]["1"] for q in rec for r in rec[q]]))
    text = format_recall(rec, "R@K, test")
    assert text.splitlines()[0] == "R@K, test" and "image→text" in text and "median rank" in text
    assert "| **mean** |" in recall_markdown(rec)


def test_recall_needs_instance_pairs(toy):
    model = cvs_fake({m: toy.dim(m) for m in toy.modalities}, seed=3)
    with pytest.raises(ValueError, match="class-paired"):
        cross_modal_recall(model, "test", dataset=toy)
    data = _embedded()
    with pytest.raises(ValueError, match="as many queries"):
        cross_modal_recall(data)
