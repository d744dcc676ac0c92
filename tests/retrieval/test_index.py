"""cvs_tf.retrieval.Index: exact search equals a numpy brute force, approximate kinds, save/load and refusals."""

import json

import numpy as np
import pytest

from cvs_tf.retrieval import Index, RetrievalError, default_nlist, default_nprobe

D = 24
EXPORT = {"sha256": "a" * 64, "dim": D, "space": "cvs", "stage": 1, "run": "toy"}


def unit_rows(n, d=D, seed=0, clusters=8):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, d))
    x = centers[rng.integers(0, clusters, n)] + 0.7 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(q, g, k):
    s = q.astype(np.float64) @ g.astype(np.float64).T
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, axis=1), order, s


def untied(s, k, gap=1e-5):
    """Rows whose k-th and (k+1)-th best scores are apart by more than ``gap`` (no tie at the cut)."""
    srt = -np.sort(-s, axis=1)
    return srt[:, k - 1] - srt[:, k] > gap


def test_exact_search_equals_numpy_brute_force_top_k():
    g, q = unit_rows(3000), unit_rows(50, seed=1)
    ix = Index.build(g, "exact")
    scores, rows = ix.search(q, 10)
    want_s, want_r, full = brute_force(q, g, 10)
    ok = untied(full, 10)
    assert ok.mean() > 0.9
    for i in np.flatnonzero(ok):
        assert set(rows[i]) == set(want_r[i])
    np.testing.assert_allclose(scores, want_s, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()                    # best first


def test_exact_top_k_with_deliberate_ties_keeps_the_tied_scores():
    g = np.repeat(unit_rows(20), 3, axis=0)                              # every item three times
    q = g[0:15:3]                                                         # items 0..4
    scores, rows = Index.build(g, "exact").search(q, 4)
    want_s, _, _ = brute_force(q, g, 4)
    np.testing.assert_allclose(scores, want_s, atol=1e-5)                 # ties aside, same scores
    assert all(set(r[:3]) == {3 * i, 3 * i + 1, 3 * i + 2} for i, r in enumerate(rows))


def test_ivf_scanning_every_list_equals_exact_and_fewer_lists_find_most():
    g, q = unit_rows(4000), unit_rows(40, seed=2)
    ix = Index.build(g, "ivf", nlist=16, nprobe=2)
    assert ix.params["nlist"] == 16 and ix.nprobe == 2
    _, exact = Index.build(g, "exact").search(q, 10)
    _, full = ix.search(q, 10, nprobe=16)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(full, exact)]) == 1.0
    _, some = ix.search(q, 10)
    assert 0.5 < np.mean([len(set(a) & set(b)) / 10 for a, b in zip(some, exact)]) <= 1.0


def test_hnsw_recall_and_ef_search_override():
    g, q = unit_rows(3000), unit_rows(40, seed=3)
    ix = Index.build(g, "hnsw", hnsw_m=16, ef_construction=40, ef_search=16)
    _, exact = Index.build(g, "exact").search(q, 10)
    _, wide = ix.search(q, 10, ef_search=256)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(wide, exact)]) >= 0.95
    ix.ef_search = 64
    assert ix.params["ef_search"] == 64


def test_save_load_round_trip_keeps_results_ids_labels_and_export(tmp_path):
    g, q = unit_rows(500), unit_rows(7, seed=4)
    ids = np.array([f"item-{i}" for i in range(500)])
    labels = np.arange(500) % 8
    for kind in ("exact", "ivf", "hnsw"):
        ix = Index.build(g, kind, ids=ids, labels=labels, classes=[f"c{i}" for i in range(8)], modality="text",
                         export=EXPORT, source={"type": "npy", "file": "g.npy"})
        before = ix.search(q, 5)
        ix.save(tmp_path / kind)
        back = Index.load(tmp_path / kind, export=EXPORT)
        after = back.search(q, 5)
        np.testing.assert_array_equal(before[1], after[1])
        np.testing.assert_array_equal(before[0], after[0])
        assert back.kind == kind and back.modality == "text" and back.count == 500 and back.dim == D
        assert list(back.ids[:2]) == ["item-0", "item-1"] and back.class_name(9) == "c1"
        assert back.export["sha256"] == EXPORT["sha256"] and back.params == ix.params
        assert back.source == {"type": "npy", "file": "g.npy"}
        man = json.loads((tmp_path / kind / "index.json").read_text())
        assert set(man["files"]) == {"faiss.index", "ids.npy", "labels.npy"}


def test_multi_label_class_names(tmp_path):
    g = unit_rows(4)
    y = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1]], np.uint8)
    ix = Index.build(g, labels=y, classes=["a", "b", "c"])
    ix.save(tmp_path / "m")
    back = Index.load(tmp_path / "m")
    assert back.label_kind == "multi"
    assert [back.class_name(i) for i in range(4)] == ["a+c", "b", "", "a+b+c"]


def test_index_built_for_another_export_or_dimension_is_refused(tmp_path):
    Index.build(unit_rows(50), export=EXPORT).save(tmp_path / "ix")
    with pytest.raises(RetrievalError, match="built with another export"):
        Index.load(tmp_path / "ix", export=dict(EXPORT, sha256="b" * 64))
    with pytest.raises(RetrievalError, match="D = 24 embeddings but the export has D = 32"):
        Index.load(tmp_path / "ix", export=dict(EXPORT, dim=32))
    Index.build(unit_rows(50)).save(tmp_path / "bare")
    with pytest.raises(RetrievalError, match="records no export"):
        Index.load(tmp_path / "bare", export=EXPORT)


def test_wrong_query_dimension_bad_k_and_misplaced_parameters_are_refused():
    ix = Index.build(unit_rows(30), "exact")
    with pytest.raises(RetrievalError, match="dimension 5; the index holds D = 24"):
        ix.search(np.zeros((2, 5), np.float32), 3)
    with pytest.raises(RetrievalError, match=r"k must be in \[1, 100000\], got 0"):
        ix.search(unit_rows(1), 0)
    with pytest.raises(RetrievalError, match="nprobe applies to an ivf index"):
        ix.search(unit_rows(1), 3, nprobe=4)
    with pytest.raises(RetrievalError, match="NaN"):
        ix.search(np.full((1, D), np.nan, np.float32), 3)
    with pytest.raises(RetrievalError, match="nprobe must be in"):
        Index.build(unit_rows(200), "ivf", nlist=4).search(unit_rows(1), 3, nprobe=5)
    with pytest.raises(RetrievalError, match="empty gallery"):
        Index.build(np.zeros((0, D), np.float32))
    with pytest.raises(RetrievalError, match="unknown index kind"):
        Index.build(unit_rows(3), "lsh")


def test_k_beyond_the_gallery_returns_every_item_and_one_vector_is_one_query():
    g = unit_rows(6)
    scores, rows = Index.build(g).search(g[0], 50)
    assert rows.shape == (1, 6) and sorted(rows[0]) == list(range(6)) and rows[0, 0] == 0


@pytest.mark.parametrize("damage,needle", [
    ("truncate", "does not match index.json"),
    ("drop-ids", "ids.npy: missing"),
    ("json", "not valid JSON"),
    ("format", "format is not 'cvs_tf.index'"),
])
def test_damaged_index_is_one_clear_error(tmp_path, damage, needle):
    path = Index.build(unit_rows(40), export=EXPORT).save(tmp_path / "ix")
    if damage == "truncate":
        blob = (path / "faiss.index").read_bytes()
        (path / "faiss.index").write_bytes(blob[: len(blob) // 2])
    elif damage == "drop-ids":
        (path / "ids.npy").unlink()
    elif damage == "json":
        (path / "index.json").write_text("{")
    else:
        man = json.loads((path / "index.json").read_text())
        (path / "index.json").write_text(json.dumps(dict(man, format="other")))
    with pytest.raises(RetrievalError, match=needle):
        Index.load(path)


def test_unverified_load_still_rejects_an_unreadable_faiss_file(tmp_path):
    path = Index.build(unit_rows(40)).save(tmp_path / "ix")
    size = (path / "faiss.index").stat().st_size
    (path / "faiss.index").write_bytes(b"\0" * size)                       # same size, garbage
    with pytest.raises(RetrievalError, match="faiss.index: unreadable"):
        Index.load(path, verify=False)


def test_save_never_overwrites_unless_asked_and_leaves_no_temp_dirs(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    ix = Index.build(unit_rows(10))
    with pytest.raises(RetrievalError, match="exists and is not empty"):
        ix.save(tmp_path / "mine")
    with pytest.raises(RetrievalError, match="not an index written by cvs_tf"):
        ix.save(tmp_path / "mine", overwrite=True)
    ix.save(tmp_path / "ix")
    Index.build(unit_rows(12)).save(tmp_path / "ix", overwrite=True)
    assert Index.load(tmp_path / "ix").count == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix", "mine"]
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_nbytes_and_defaults():
    g = unit_rows(2000)
    assert Index.build(g).nbytes() == 2000 * D * 4
    ivf = Index.build(g, "ivf", nlist=8)
    assert ivf.nbytes() == 2000 * (D * 4 + 8) + 8 * D * 4
    assert Index.build(g, "hnsw", hnsw_m=8).nbytes() > 2000 * D * 4
    assert default_nlist(10) == 1 and default_nlist(1_000_000) == 1024 and default_nprobe(1024) == 16
