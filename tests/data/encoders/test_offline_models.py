"""Encoder lane: extract with each offline model of requirements-dataprep.txt equals the model's direct use."""

import numpy as np
import pytest

from cvs_tf.data.store import load_feature_set
from tests.data.cli_helpers import data_cli
from tests.data.encoders.conftest import require_offline_models
from tests.data.media import text_of, write_manifest

pytestmark = pytest.mark.encoders
CASES = [("minilm", "text", ("text", "audio")), ("efficientnet-lite0", "image", ("image", "text")),
         ("whisper-base", "audio", ("text", "audio"))]


@pytest.mark.parametrize("name,mod,mods", CASES)
def test_extract_with_an_offline_model_gives_its_features(tmp_path, capsys, name, mod, mods):
    require_offline_models([name])
    from cvs_tf.data.encoders import build_encoder

    spec = write_manifest(tmp_path, 6, modalities=mods)
    code, _, err = data_cli(["extract", spec, "--out", tmp_path / "fs", "--quiet", "--encoder", f"{mod}={name}"], capsys)
    assert code == 0, err
    fs = load_feature_set(tmp_path / "fs")
    enc = build_encoder(name)
    assert fs.dim(mod) == enc.dim and fs.manifest["provenance"]["encoders"][mod]["encoder"] == name
    ids = fs.manifest["item_ids"]["id"]["test"]
    value = {"text": text_of, "image": lambda i: f"image{i:02d}.png", "audio": lambda i: f"audio{i:02d}.wav"}[mod]
    want = enc.encode([enc.read(value(int(i[-2:])), tmp_path) for i in ids])
    np.testing.assert_allclose(fs.x(mod, "test"), want, atol=1e-4)
