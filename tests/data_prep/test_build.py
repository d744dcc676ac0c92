"""What both real-data builds share: extraction through cvs_tf's extract machinery (one batch per modality), and the staging of pictures."""

import json
import os

import numpy as np
import pytest

from cvs_tf.utils.cli import CliError
from data_prep import build
from data_prep.tuxdigits_common import Progress
from tests.data.temporaries import dead_pid, fake_temp
from tests.data_prep.stubs import StubEncoder, feature


class CountingEncoder(StubEncoder):
    def __init__(self, *a, calls, **k):
        super().__init__(*a, **k)
        self.calls = calls

    def encode(self, items):
        self.calls.append((self.modality, len(items)))
        return super().encode(items)


def test_extract_spec_gives_every_row_by_id_each_encoder_seeing_the_whole_list(tmp_path):
    rows = [{"id": f"i{k}", "class": "ab"[k % 2], "text": f"text {k}", "audio": f"a{k}.wav"} for k in range(45)]
    for k in range(45):
        (tmp_path / f"a{k}.wav").write_text(f"clip {k}")
    (tmp_path / "spec.json").write_text(json.dumps(rows))
    calls = []
    encs = {m: CountingEncoder(m, 4, calls=calls) for m in ("text", "audio")}
    feats = build.extract_spec(tmp_path / "spec.json", encs, tmp_path / "work", Progress("t", quiet=True))
    assert sorted(calls) == [("audio", 45), ("text", 45)]      # one batch each, not the CLI's 32
    assert set(feats["text"]) == {f"i{k}" for k in range(45)}
    np.testing.assert_allclose(feats["text"]["i7"], feature("text", "text 7", 4).astype(np.float32))
    np.testing.assert_allclose(feats["audio"]["i44"], feature("audio", "clip 44", 4).astype(np.float32))
    encs["audio"].shift = np.nan
    with pytest.raises(CliError, match="audio: the encoder returned non-finite values"):
        build.extract_spec(tmp_path / "spec.json", encs, tmp_path / "work2", Progress("t", quiet=True))


def test_a_png_is_staged_as_it_is_and_an_svg_as_its_rendering(tmp_path):
    ext = build.BaseExtractors(tmp_path, 1, Progress("t", quiet=True))
    png = tmp_path / "a.png"
    png.write_bytes(b"not read")
    assert ext.stage_image(png, tmp_path / "staged.png") == png and not (tmp_path / "staged.png").exists()
    pytest.importorskip("resvg_py")
    svg = tmp_path / "b.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10pt" height="20"><rect width="5" height="20" fill="red"/></svg>')
    out = ext.stage_image(svg, tmp_path / "b.png")
    from PIL import Image

    from cvs_tf.data.encoders.image import load_image
    from data_prep.extractors import render_stamp

    with Image.open(out) as img:
        assert max(img.size) >= 2 * 224                         # rendered zoomed, as render_stamp renders
    np.testing.assert_array_equal(load_image(out), render_stamp(svg))


def test_the_scratch_folder_goes_afterwards_and_a_killed_builds_with_the_next(tmp_path):
    stale = fake_temp(tmp_path / "cache", "tux12-extract", dead_pid())
    live = fake_temp(tmp_path / "cache", "tux12-extract", os.getpid())   # a running build's: kept
    with pytest.raises(RuntimeError), build.scratch(tmp_path / "cache", "tux12") as folder:
        assert folder.parent == tmp_path / "cache" and not stale.exists()
        (folder / "staged.wav").write_text("x")
        raise RuntimeError("the build failed")
    assert not folder.exists() and live.exists()


def test_a_mesh_is_staged_as_an_off_file_that_reads_back_bit_for_bit(tmp_path):
    pytest.importorskip("trimesh")
    from cvs_tf.data.mesh import load_mesh, mesh_descriptors

    rng = np.random.default_rng(0)
    t = np.pi / 7  # a rotation whose products are not round numbers, and coordinates of every magnitude
    turn = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    v = (rng.normal(size=(40, 3)) * 10.0 ** rng.integers(-6, 4, size=(40, 1))) @ turn.T
    v[0] = [-0.0, 1e-300, 1 / 3]
    f = rng.integers(0, 40, size=(60, 3))
    ext = build.BaseExtractors(tmp_path, 1, Progress("t", quiet=True))
    path = ext.stage_mesh(v, f, tmp_path / "m.off")
    v2, f2 = load_mesh(path)
    np.testing.assert_array_equal(v2.view(np.int64), v.view(np.int64))   # every bit, the sign of zero included
    np.testing.assert_array_equal(f2, f)
    np.testing.assert_array_equal(mesh_descriptors(path), mesh_descriptors((v, f)))
