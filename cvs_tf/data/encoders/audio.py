"""Audio encoder: classic MFCC statistics of a WAV file (numpy/scipy, no model)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from scipy.fft import dct

from cvs_tf.data.encoders import Encoder, ItemError

SAMPLE_RATE = 16000
MFCC_INFO = {"name": "MFCC statistics (numpy/scipy)", "dim": 60,
             "recipe": "20 MFCC of 40 HTK-mel filters, 25 ms Hamming, 10 ms hop, pre-emphasis 0.97, "
                       "512-pt FFT at 16 kHz; mean(20) + std(20) + std of deltas(20)"}


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = 40, n_fft: int = 512, sr: int = SAMPLE_RATE,
                   fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular filters, equally spaced on the HTK mel scale: (n_mels, n_fft // 2 + 1), peaks of 1."""
    fmax = sr / 2 if fmax is None else fmax
    freqs = np.linspace(0.0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return np.clip(np.minimum(up, down), 0.0, None)


def frame_signal(x: np.ndarray, frame_len: int, hop: int) -> np.ndarray:
    """(n_frames, frame_len) frames; a signal shorter than one frame is zero-padded to one frame."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < frame_len:
        x = np.pad(x, (0, frame_len - len(x)))
    n = 1 + (len(x) - frame_len) // hop
    idx = np.arange(frame_len)[None, :] + hop * np.arange(n)[:, None]
    return x[idx]


def mfcc(wave: np.ndarray, sr: int = SAMPLE_RATE, n_mfcc: int = 20, n_mels: int = 40,
         win_s: float = 0.025, hop_s: float = 0.010, n_fft: int = 512, preemph: float = 0.97) -> np.ndarray:
    """MFCCs (n_frames, n_mfcc): pre-emphasis, Hamming frames, power spectrum, log mel, DCT-II (ortho)."""
    x = np.asarray(wave, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mfcc: empty signal")
    x = np.append(x[0], x[1:] - preemph * x[:-1])
    frames = frame_signal(x, int(round(win_s * sr)), int(round(hop_s * sr)))
    frames = frames * np.hamming(frames.shape[1])
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2 / n_fft
    logmel = np.log(power @ mel_filterbank(n_mels, n_fft, sr).T + 1e-10)
    return dct(logmel, type=2, norm="ortho", axis=1)[:, :n_mfcc]


def deltas(c: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over time, edges repeated: d_t = sum_n n (c_{t+n} - c_{t-n}) / (2 sum_n n^2)."""
    c = np.asarray(c, dtype=np.float64)
    padded = np.pad(c, ((width, width), (0, 0)), mode="edge")
    t = len(c)
    num = sum(n * (padded[width + n: width + n + t] - padded[width - n: width - n + t]) for n in range(1, width + 1))
    return num / (2.0 * sum(n * n for n in range(1, width + 1)))


def mfcc_stats(wave: np.ndarray, sr: int = SAMPLE_RATE, n_mfcc: int = 20) -> np.ndarray:
    """The 60-d clip feature: mean and std of each MFCC over frames, and std of its deltas."""
    c = mfcc(wave, sr, n_mfcc=n_mfcc)
    return np.concatenate([c.mean(0), c.std(0), deltas(c).std(0)]).astype(np.float32)


def read_wav(path: Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A WAV file as float32 mono at ``sr`` Hz; ItemError for an unreadable, truncated, empty or silent file."""
    from math import gcd

    from scipy.io import wavfile
    from scipy.signal import resample_poly

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # scipy only warns about a cut-off data chunk
            rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError, Warning) as exc:
        raise ItemError(f"cannot read WAV (truncated or not a WAV file: {' '.join(str(exc).split())[:160]})") from None
    x = np.asarray(data)
    if x.dtype.kind == "u":
        x = (x.astype(np.float64) - 2 ** (8 * x.dtype.itemsize - 1)) / 2 ** (8 * x.dtype.itemsize - 1)
    elif x.dtype.kind == "i":
        x = x.astype(np.float64) / 2 ** (8 * x.dtype.itemsize - 1)
    x = x.astype(np.float64).reshape(len(x), -1).mean(axis=1) if x.size else x.astype(np.float64)
    if x.size == 0:
        raise ItemError("empty audio (0 samples)")
    if not np.isfinite(x).all():
        raise ItemError("audio holds NaN or Inf samples")
    if not np.any(x):
        raise ItemError("silent audio (every sample is 0)")
    if rate != sr:
        g = gcd(int(rate), sr)
        x = resample_poly(x, sr // g, int(rate) // g)
    return x.astype(np.float32)


class MfccEncoder(Encoder):
    """:func:`mfcc_stats` of :func:`read_wav` (60-d)."""

    kind = "audio"
    dim = MFCC_INFO["dim"]
    preprocessing = f"WAV to float mono, resampled to {SAMPLE_RATE} Hz (scipy resample_poly); {MFCC_INFO['recipe']}"

    def read(self, value: str, base: Path) -> np.ndarray:
        return read_wav(base / value)

    def encode(self, items: list) -> np.ndarray:
        return np.stack([mfcc_stats(w) for w in items]).astype(np.float32)

    def versions(self) -> dict:
        import scipy

        return {"numpy": np.__version__, "scipy": scipy.__version__, "weights_sha256": None}
