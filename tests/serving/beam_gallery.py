"""The toy gallery of the embed_beam tests: an export and three text feature shards, and the command line over them."""

import numpy as np

from cvs_tf.data.store import load_feature_set
from tests.helpers import make_toy_featureset
from tests.retrieval.exports import make_export

TEXT_DIM = 12  # the toy set's text features
#: the gallery's shards: name -> rows (a.npz with ids; b.npy with b.ids.txt; c.npy with row ids)
SIZES = {"a.npz": 7, "b.npy": 5, "c.npy": 3}


def make_gallery(tmp):
    """A toy export and three text feature shards in ``tmp/shards``; returns (export dir, shards dir, rows by shard)."""
    fs = load_feature_set(make_toy_featureset(tmp / "ds"))
    exp = make_export(tmp / "exp", fs, 0)
    rng = np.random.default_rng(3)
    d = tmp / "shards"
    d.mkdir()
    rows = {}
    for name, n in SIZES.items():
        x = rng.normal(size=(n, TEXT_DIM)).astype(np.float32)
        stem = name.split(".")[0]
        ids = [f"{stem}-item{i}" for i in range(n)]
        if name.endswith(".npz"):
            np.savez(d / name, features=x, ids=np.asarray(ids))
        else:
            np.save(d / name, x)
            if stem == "b":
                (d / f"{stem}.ids.txt").write_text("".join(i + "\n" for i in ids))
            else:
                ids = [f"{name}:{i}" for i in range(n)]
        rows[name] = (x, ids)
    return exp, d, rows


def argv_for(exp, features, out, modality="text"):
    return ["--export", str(exp), "--features", str(features), "--modality", modality, "--out", str(out)]
