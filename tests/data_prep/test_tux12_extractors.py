"""Pure parts of the Tux-12/Digits-10 extractors and build plumbing, with hand-derived expected values."""

import numpy as np
import pytest

from cvs_tf.data.encoders import audio, offline
from cvs_tf.data.encoders.image import to_square_rgb
from cvs_tf.utils.cli import CliError
from data_prep import extractors as ex
from data_prep.tuxdigits_common import float16_ulp_distance, split_rows


def test_svg_units_converted_to_px_on_the_root_element_only():
    svg = ('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" stroke-width="2pt" '
           'width="128pt" height=\'3cm\' viewBox="0 0 10 10"><rect width="5mm" height="1in"/></svg>')
    out = ex.svg_to_px_units(svg)
    # 128 pt * 4/3 = 170.667 px; 3 cm * 96/2.54 = 113.386 px
    assert 'width="170.667"' in out and "height='113.386'" in out
    assert 'stroke-width="2pt"' in out                      # not a size attribute of the root
    assert '<rect width="5mm" height="1in"/>' in out       # child elements untouched
    assert ex.svg_to_px_units('<svg width="40px" height="50">') == '<svg width="40" height="50">'
    assert ex.svg_to_px_units("no svg here") == "no svg here"


def test_normalize_image_uses_the_efficientnet_lite_scaling():
    img = np.array([[[127, 255, 0]]], dtype=np.uint8)[None]          # (1, 1, 1, 3)
    x = offline.normalize_image(img)
    assert x.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(x[0, :, 0, 0], [0.0, 1.0, -127 / 128])


def test_to_square_rgb_puts_transparent_pixels_on_white_and_pads_to_a_square():
    pytest.importorskip("PIL")
    rgba = np.zeros((2, 4, 4), dtype=np.uint8)     # 2 rows x 4 columns, fully transparent
    rgba[:, :, 0] = 200
    rgba[0, 0] = [10, 20, 30, 255]                 # one opaque pixel
    out = to_square_rgb(rgba, size=4)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    # the padded rows (top and bottom) and the transparent pixels are white
    assert (out[3] == 255).all() and (out[0, 3] == 255).all()
    assert out[1, 0].tolist() != [255, 255, 255]   # the opaque pixel survives near the left edge


def test_mel_filterbank_peaks_at_the_mel_spaced_centres():
    fb = audio.mel_filterbank(n_mels=10, n_fft=512, sr=16000)
    assert fb.shape == (10, 257)
    assert (fb >= 0).all() and fb.max() <= 1.0 + 1e-12
    centres = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(8000), 12))[1:-1]
    peak_hz = fb.argmax(1) * 16000 / 512
    assert np.all(np.abs(peak_hz - centres) <= 16000 / 512)   # within one FFT bin
    assert audio.hz_to_mel(700) == pytest.approx(2595 * np.log10(2))


def test_frame_signal_counts_and_pads():
    assert audio.frame_signal(np.zeros(16000), 400, 160).shape == (98, 400)   # 1 + (16000-400)//160
    short = audio.frame_signal(np.ones(10), 400, 160)
    assert short.shape == (1, 400) and short[0, :10].sum() == 10 and short[0, 10:].sum() == 0


def test_deltas_of_a_linear_ramp_equal_its_slope_inside():
    c = np.arange(10, dtype=float)[:, None] * np.array([[2.0, -1.0]])
    d = audio.deltas(c, width=2)
    np.testing.assert_allclose(d[2:-2], [[2.0, -1.0]] * 6)
    # first frame: (1*(c1-c0) + 2*(c2-c0)) / 10 with the edge repeated = (1*2 + 2*4)/10 = 1.0 for slope 2
    assert d[0, 0] == pytest.approx(1.0)


def test_mfcc_of_a_tone_peaks_in_the_filter_of_its_frequency():
    sr, f = 16000, 1000.0
    t = np.arange(sr) / sr
    wave = 0.5 * np.sin(2 * np.pi * f * t)
    c = audio.mfcc(wave, sr, n_mfcc=40, n_mels=40)
    # with all 40 coefficients the DCT is invertible: recover the log-mel energies
    from scipy.fft import idct
    logmel = idct(c, type=2, norm="ortho", axis=1)
    centres = audio.mel_to_hz(np.linspace(0, audio.hz_to_mel(8000), 42))[1:-1]
    assert np.bincount(logmel.argmax(1)).argmax() == np.abs(centres - f).argmin()
    feat = audio.mfcc_stats(wave, sr)
    assert feat.shape == (60,) and feat.dtype == np.float32 and np.isfinite(feat).all()
    assert np.all(feat[20:] >= 0)                  # standard deviations
    assert audio.mfcc_stats(np.ones(50)).shape == (60,)   # shorter than one frame: still a feature


def test_pool_states_and_clip_frames():
    states = np.arange(6, dtype=np.float32).reshape(3, 2)       # [[0, 1], [2, 3], [4, 5]]
    np.testing.assert_allclose(offline.pool_states(states), [2.0, 3.0, 4.0, 5.0])
    feats = np.ones((80, 7), dtype=np.float32)
    even = offline.clip_frames(feats)                                # 7 frames -> 8, the last one zero
    assert even.shape == (80, 8) and even[:, 7].sum() == 0 and even[:, :7].sum() == 80 * 7
    assert offline.clip_frames(np.ones((80, 10))).shape == (80, 10)
    assert offline.clip_frames(np.ones((80, 3333))).shape == (80, 3000)   # 30 s at most


def test_require_names_the_missing_distribution_and_the_install_command(monkeypatch):
    real = ex.importlib.util.find_spec
    monkeypatch.setattr(ex.importlib.util, "find_spec",
                        lambda name: None if name == "resvg_py" else real(name))
    with pytest.raises(CliError, match=r"resvg-py.*pip install -r requirements-dataprep.txt"):
        ex.require(["image"])


def test_float16_ulp_distance():
    one = np.float16(1.0)
    nxt = np.nextafter(one, np.float16(2.0))
    assert float16_ulp_distance(np.array([one]), np.array([nxt]))[0] == 1
    assert float16_ulp_distance(np.array([-0.0], np.float16), np.array([0.0], np.float16))[0] == 0
    # crossing zero: the smallest subnormals on each side are 2 ulps apart
    tiny = np.float16(2.0**-24)
    assert float16_ulp_distance(np.array([tiny]), np.array([-tiny]))[0] == 2


def test_split_rows_is_stratified_seeded_and_disjoint():
    y = np.repeat([0, 1, 2], [10, 20, 3])
    a, b = split_rows(len(y), y, 0.3, seed=5), split_rows(len(y), y, 0.3, seed=5)
    assert np.array_equal(a["test"], b["test"])
    assert np.bincount(y[a["test"]]).tolist() == [3, 6, 1]    # round(0.3 * n_c)
    assert len(np.intersect1d(a["train"], a["test"])) == 0
    assert len(a["train"]) + len(a["test"]) == len(y)


def test_a_model_that_fails_to_load_is_one_line_with_the_reinstall_command():
    with pytest.raises(CliError, match=r"^cannot load Whisper \(x\) from its package \(RuntimeError: bad model.bin\); "
                                       r"run: pip install -r requirements-dataprep.txt"):
        with offline.model_errors("Whisper (x)"):
            raise RuntimeError("bad\nmodel.bin")
