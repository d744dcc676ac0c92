"""Baselines: CCA on hand-built views, class-aligned pairing, posterior product, chance, nothing chosen on test."""

import json
import shutil

import numpy as np
import pytest

from cvs_tf.data.store import FeatureSet, load_feature_set, sha256_file
from cvs_tf.evaluation import baselines as bl
from cvs_tf.evaluation.metrics import chance_map_at_k
from tests.helpers import make_toy_featureset


def test_cca_finds_the_shared_signal():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(500, 1))
    xa = np.hstack([s, rng.normal(size=(500, 1))])                # view a: signal + noise
    xb = np.hstack([rng.normal(size=(500, 2)), -3 * s + 1])        # view b: noise + scaled signal
    cca = bl.PairCCA(bl.View(xa), bl.View(xb), xa, xb, lam=1e-6)
    assert cca.corr[0] == pytest.approx(1.0, abs=1e-4)              # exact linear relation
    assert cca.corr[1] < 0.2                                        # the rest is independent noise
    za, zb = cca.project(xa, "a", 1), cca.project(xb, "b", 1)
    assert abs(np.corrcoef(za[:, 0], zb[:, 0])[0, 1]) == pytest.approx(1.0, abs=1e-4)
    # a larger ridge shrinks the correlations
    assert bl.PairCCA(bl.View(xa), bl.View(xb), xa, xb, lam=10.0).corr[0] < cca.corr[0]


def test_class_aligned_pairs_cover_the_larger_side_once():
    ya, yb = np.array([0, 0, 0, 1, 2]), np.array([1, 0, 1, 3])
    ia, ib = bl.class_aligned_pairs(ya, yb, seed=0)
    assert np.array_equal(ya[ia], yb[ib])                           # every pair shares its class
    assert sorted(ia[ya[ia] == 0].tolist()) == [0, 1, 2] and ib[ya[ia] == 0].tolist() == [1, 1, 1]
    assert sorted(ib[yb[ib] == 1].tolist()) == [0, 2] and ia[ya[ia] == 1].tolist() == [3, 3]
    assert 2 not in ya[ia] and 3 not in yb[ib]                      # classes on one side only: skipped


@pytest.fixture(scope="module")
def paired_set(tmp_path_factory):
    return make_toy_featureset(tmp_path_factory.mktemp("p") / "toy", paired=True, n_train=60, n_test=24,
                               modalities={"image": 10, "text": 6, "audio": 4})


def test_tables_beat_chance_and_chance_is_exact(paired_set):
    fs, tables, chosen = bl.run(str(paired_set), log=lambda s: None)
    mods = fs.modalities
    for q in mods:
        for r in mods:
            want = chance_map_at_k(fs.y(q, "test"), fs.y(r, "test"), 50)
            assert tables["chance"].at[q, r] == pytest.approx(want) if q != r else np.isnan(tables["chance"].at[q, r])
    # the toy set is separable: both learned baselines are far above chance everywhere
    for b in ("posterior", "cca", "label"):
        off = [(q, r) for q in mods for r in mods if q != r]
        assert all(tables[b].at[q, r] > tables["chance"].at[q, r] + 0.3 for q, r in off), b
        assert tables[b].attrs["split"] == "test" and tables[b].attrs["metric"] == "mAP@50"
    pairs = {"image-text", "image-audio", "text-audio"}
    assert set(chosen["cca"]) == pairs | {f"{p} (R@K)" for p in pairs}      # class level, instance level
    assert chosen["cca"]["image-text"]["lambda"] in bl.CCA_LAMBDAS
    assert set(chosen["label"]) == set(mods)
    assert set(chosen["posterior"]) == set(mods) and chosen["posterior"]["text"]["C"] in bl.POSTERIOR_CS


def test_hyper_parameters_never_depend_on_test(paired_set, tmp_path):
    """Replacing every test feature by noise changes the test numbers but not one choice."""
    noisy = tmp_path / "noisy"
    shutil.copytree(paired_set, noisy)
    manifest = json.loads((noisy / "manifest.json").read_text())
    rng = np.random.default_rng(1)
    for m in manifest["modalities"]:
        name = f"{m}.test.x.npy"
        x = np.load(noisy / name)
        np.save(noisy / name, rng.normal(size=x.shape).astype(x.dtype))
        manifest["arrays"][name]["sha256"] = sha256_file(noisy / name)
    (noisy / "manifest.json").write_text(json.dumps(manifest))
    load_feature_set(noisy)
    _, t1, c1 = bl.run(str(paired_set), ("posterior", "cca", "label"), log=lambda s: None)
    _, t2, c2 = bl.run(str(noisy), ("posterior", "cca", "label"), log=lambda s: None)
    assert c1 == c2 and "image-text (R@K)" in c1["cca"]
    assert t1["cca"].attrs["overall_mean"] != t2["cca"].attrs["overall_mean"]
    assert t1["cca"].attrs["recall"] != t2["cca"].attrs["recall"]


def test_class_paired_data_uses_class_aligned_cca(tmp_path):
    path = make_toy_featureset(tmp_path / "toy", paired=False, n_train=60, n_test=24)
    fs = load_feature_set(path)
    assert fs.count("image", "train") != fs.count("audio", "train")
    _, tables, _ = bl.run(str(path), ("cca", "chance"), log=lambda s: None)
    assert tables["cca"].attrs["overall_mean"] > tables["chance"].attrs["overall_mean"] + 0.3


@pytest.mark.parametrize("bad, fragment", [(["image", "image"], "listed twice"), (["image"], "at least two"),
                                           (["image", "smell"], "no modality 'smell'")])
def test_bad_modalities_are_value_errors(paired_set, bad, fragment):
    fs = load_feature_set(paired_set)
    with pytest.raises(ValueError, match=fragment):
        bl.baseline_tables(fs, ("chance",), modalities=bad)
    with pytest.raises(ValueError, match="unknown baselines"):
        bl.baseline_tables(fs, ("svm",))


class NoTestSet(FeatureSet):
    """A feature set whose test split cannot be read."""

    def _get(self, modality, split):
        if split == "test":
            raise AssertionError(f"read the test split of {modality}")
        return super()._get(modality, split)


def test_posterior_never_reads_test(paired_set):
    """C is chosen by CV on train only: the same choices and val scores without any test access."""
    fs = load_feature_set(paired_set)
    guarded = NoTestSet(fs.path, fs.manifest, fs.arrays)
    mods = bl.check_modalities(fs)
    _, chosen = bl.posterior_models(fs, mods)
    _, chosen_guarded = bl.posterior_models(guarded, mods)
    assert chosen == chosen_guarded
    post = bl.posterior_embeddings(guarded, mods, splits=("train", "val"))
    assert set(post["image"]) == {"train", "val"}
    scores = bl.baseline_validation_scores(guarded)
    assert scores == bl.baseline_validation_scores(fs)
    assert set(scores) == {"posterior", "cca", "label", "chance"}
    assert scores["posterior"] > scores["chance"] + 0.3
    with pytest.raises(AssertionError, match="test split"):
        bl.posterior_embeddings(guarded, mods)


def test_posterior_ignores_the_val_and_test_features(paired_set):
    """Val and test features replaced by NaN: the chosen C cannot change (they are never fitted on)."""
    fs = load_feature_set(paired_set)
    arrays = {key: ((np.full_like(x, np.nan), y) if key[1] != "train" else (x, y)) for key, (x, y) in fs.arrays.items()}
    mods = bl.check_modalities(fs)
    assert bl.posterior_models(FeatureSet(fs.path, fs.manifest, arrays), mods)[1] == bl.posterior_models(fs, mods)[1]


def test_posterior_embeddings_are_class_posteriors(paired_set):
    fs = load_feature_set(paired_set)
    post = bl.posterior_embeddings(fs, ["image", "text"], folds=3, seed=1)
    for m in ("image", "text"):
        for split in ("train", "val", "test"):
            p = post[m][split]
            assert p.shape == (fs.count(m, split), fs.num_classes)
            np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-9)
        assert np.mean(post[m]["test"].argmax(1) == fs.y(m, "test")) > 0.9   # the toy set is separable
    scores = bl.posterior_scores(post["image"]["test"], post["text"]["test"])
    np.testing.assert_allclose(scores[2, 5], post["image"]["test"][2] @ post["text"]["test"][5])
    with pytest.raises(ValueError, match="folds"):
        bl.posterior_models(fs, ["image"], folds=1)


def test_posterior_multi_label_is_one_vs_rest(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "multi", label_kind="multi", paired=True))
    post = bl.posterior_embeddings(fs, ["image", "text"], folds=3)
    p = post["image"]["test"]
    assert p.shape == (fs.count("image", "test"), fs.num_classes)
    assert np.all((p >= 0) & (p <= 1)) and not np.allclose(p.sum(1), 1.0)   # independent per-class posteriors
    assert np.mean(p.argmax(1) == fs.y("image", "test").argmax(1)) > 0.9


def test_instance_level_cca_and_posterior(paired_set):
    """The instance-level CCA finds partners well above chance; the records hold every ordered pair."""
    fs = load_feature_set(paired_set)
    mods = bl.check_modalities(fs)
    record, chosen = bl.cca_recall(fs, mods)
    assert list(record) == mods and all(list(record[q]) == [r for r in mods if r != q] for q in mods)
    n = fs.count("image", "test")
    assert set(chosen) == {"image-text (R@K)", "image-audio (R@K)", "text-audio (R@K)"}
    assert chosen["image-text (R@K)"]["lambda"] in bl.CCA_LAMBDAS
    assert record["image"]["text"]["10"] > 2 * 10 / n              # chance R@10 is 10/n
    tables, _ = bl.baseline_tables(fs, ("posterior", "cca"))
    assert tables["cca"].attrs["recall"] == record
    post = tables["posterior"].attrs["recall"]
    assert set(post["audio"]) == {"image", "text"} and 1 <= post["audio"]["text"]["median_rank"] <= n
    assert bl.rsum(record["image"]["text"]) == pytest.approx(sum(record["image"]["text"][k] for k in ("1", "5", "10")))


def test_class_paired_sets_have_no_instance_level(tmp_path):
    fs = load_feature_set(make_toy_featureset(tmp_path / "toy", paired=False))
    with pytest.raises(ValueError, match="class-paired"):
        bl.cca_recall(fs, fs.modalities)
    tables, chosen = bl.baseline_tables(fs, ("cca",))
    assert "recall" not in tables["cca"].attrs and not any("R@K" in key for key in chosen["cca"])


def test_strongest_summary_names_the_best_learned_baseline_and_margins():
    def table(v, recall=None):
        df = bl.table_from_matrix(np.full((2, 2), v), ["image", "text"])
        if recall is not None:
            df.attrs["recall"] = {"image": {"text": recall}, "text": {"image": recall}}
        return df

    rec = lambda r1, r10: {"1": r1, "5": 0.5, "10": r10, "median_rank": 4.0}  # noqa: E731
    tables = {"posterior": table(0.5, rec(0.1, 0.4)), "cca": table(0.4, rec(0.2, 0.6)), "chance": table(0.9)}
    assert bl.strongest_baseline({b: t.attrs["overall_mean"] for b, t in tables.items()}) == ("posterior", 0.5)
    lines = bl.strongest_summary(tables, {"ours": 0.53}, {"ours": {"image": {"text": rec(0.25, 0.5)}}})
    assert lines[0] == "strongest baseline, class level (overall mAP@50): posterior product 0.500"
    assert lines[1] == "  ours: 0.530 (+0.030 over posterior product)"
    assert lines[2].startswith("strongest baseline, instance level") and "CCA (tuned) R@1 0.200" in lines[2]
    assert lines[3] == "  ours: R@1 0.250 (+0.050), R@5 0.500 (+0.000), R@10 0.500 (-0.100)"
    assert bl.strongest_summary({"chance": tables["chance"]}) == []
    with pytest.raises(ValueError, match="only chance"):
        bl.strongest_baseline({"chance": 0.2})


class _Arrays:
    """Just the x/y access posterior_models uses."""

    def __init__(self, x, y):
        self._x, self._y = x, y

    def x(self, modality, split):
        return self._x

    def y(self, modality, split):
        return self._y


def test_posterior_folds_shrink_to_the_rarest_class():
    rng = np.random.default_rng(0)
    y = np.array([0] * 10 + [1] * 10 + [2] * 3)
    x = rng.normal(size=(len(y), 4)) + 3 * np.eye(3, 4)[y]
    assert bl.posterior_models(_Arrays(x, y), ["m"])[1]["m"]["folds"] == 3
    y1 = np.array([0] * 10 + [1] * 10 + [2])                     # one item of class 2: no CV, C = 1
    _, chosen = bl.posterior_models(_Arrays(x[:21], y1), ["m"])
    assert chosen["m"]["folds"] is None and chosen["m"]["C"] == 1.0
