"""The Beam pipeline of `python -m cvs_tf.embed_beam` on the DirectRunner (Beam lane: `make test-beam`).

Embeddings equal the export's signature called in-process to 1e-6, ids and row order survive the
shards, the merged index answers `cvs_tf.search`, and a failing worker is one `error:` line with no
output left. The main virtualenv has no apache-beam and skips this module; the Beam lane sets
CVS_TF_BEAM_LANE=1, so a missing Beam there is a failure, not a skip.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("CVS_TF_BEAM_LANE"):
    import apache_beam  # noqa: F401  (the Beam lane must run these tests for real)
else:
    pytest.importorskip("apache_beam")

from cvs_tf.cli.embed_beam import main as embed_cli  # noqa: E402
from cvs_tf.cli.search import main as search_cli  # noqa: E402
from cvs_tf.retrieval import Index  # noqa: E402
from cvs_tf.serving import Export  # noqa: E402
from cvs_tf.serving import shards as shard_io  # noqa: E402
from tests.serving.beam_gallery import SIZES, argv_for, make_gallery  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The toy gallery embedded once by the pipeline (batches of 4 rows, so batches span shard ends)."""
    tmp = tmp_path_factory.mktemp("beam")
    exp, shards, rows = make_gallery(tmp)
    prefix = tmp / "out" / "emb"
    assert embed_cli([*argv_for(exp, shards / "*.np?", prefix), "--batch-size", "4"]) == 0
    return exp, rows, prefix


def test_pipeline_embeddings_equal_the_signature_and_ids_keep_their_shard_and_order(embedded):
    import tensorflow as tf

    exp, rows, prefix = embedded
    names = sorted(p.name for p in prefix.parent.iterdir())
    assert names == [f"emb-{i:05d}-of-00003.npz" for i in range(3)]          # nothing else (no temporaries)
    sig = tf.saved_model.load(str(exp / "text")).signatures["serving_default"]
    for i, (name, (x, ids)) in enumerate(rows.items()):
        meta, emb, got_ids = shard_io.read_output(str(prefix.parent / names[i]))
        assert meta["shard"] == i and meta["source"] == name and meta["rows"] == SIZES[name]
        assert got_ids.tolist() == ids                                        # ids of this shard, in its row order
        want = sig(features=tf.constant(x))["output_0"].numpy()
        assert emb.dtype == np.float32 and emb.shape == (SIZES[name], 16)
        assert np.max(np.abs(emb - want)) <= 1e-6
        assert np.max(np.abs(emb - Export(exp).embed("text", x))) <= 1e-6


def test_merged_shards_are_an_index_that_search_queries(embedded, tmp_path, capsys):
    exp, rows, prefix = embedded
    assert embed_cli(["merge", "--shards", f"{prefix}-*", "--out", str(tmp_path / "ix")]) == 0
    ix = Index.load(tmp_path / "ix", export=Export(exp))
    assert ix.ids.tolist() == [i for _, ids in rows.values() for i in ids]
    x_c, ids_c = rows["c.npy"]
    np.save(tmp_path / "q.npy", x_c)
    capsys.readouterr()
    assert search_cli([str(tmp_path / "ix"), "--query-modality", "text", "--query-features", str(tmp_path / "q.npy"),
                       "--k", "2", "--json"]) == 0
    queries = json.loads(capsys.readouterr().out)["results"][0]["queries"]
    assert [q[0]["id"] for q in queries] == ids_c                         # every row finds itself first
    assert all(q[0]["score"] == pytest.approx(1.0, abs=1e-5) for q in queries)


def test_a_failing_worker_is_one_error_line_and_leaves_no_output(embedded, tmp_path):
    exp, _, _ = embedded
    x = np.ones((6, 12), np.float32)
    x[4, 3] = np.nan
    np.save(tmp_path / "bad.npy", x)
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "cvs_tf.embed_beam", *argv_for(exp, tmp_path / "*.npy", out / "emb")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "bad.npy: features contain NaN or Inf" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == []                    # no shard, no temporary
