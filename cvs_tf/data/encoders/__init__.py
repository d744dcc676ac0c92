"""Encoders of raw media (image, text, audio, mesh) into feature vectors, by name: the registry ``extract`` and ``export --with-encoders`` use.

An encoder is named ``NAME`` or ``NAME@ARG`` (``--encoder image=efficientnetb0@none``); ARG is
the encoder's one option (a weights file or ``none`` for images, a dimension for ``hashed``).
Every encoder reads one item with :meth:`Encoder.read` (a file, or for text the text itself),
which raises :class:`ItemError` for an item it cannot use (corrupt image, empty text, silent or
truncated WAV, broken mesh), and encodes a batch with :meth:`Encoder.encode`. Keras-native
encoders also give :meth:`Encoder.raw_fn`, the TensorFlow computation from the raw input
(pixels, strings) that ``export --with-encoders`` puts in front of a space.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np

KINDS = ("image", "text", "audio", "mesh")
SUFFIXES = {
    "image": (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"),
    "audio": (".wav",),
    "mesh": (".obj", ".off", ".ply", ".stl"),
}
#: the encoder each kind gets without ``--encoder``
DEFAULTS = {"image": "efficientnetb0", "text": "hashed", "audio": "mfcc", "mesh": "shape-descriptors"}
#: name -> (kind, "module:Class"); modules load on first use
_REGISTRY: dict[str, tuple[str, str]] = {
    "efficientnetb0": ("image", "cvs_tf.data.encoders.image:KerasImageEncoder"),
    "mobilenetv3small": ("image", "cvs_tf.data.encoders.image:KerasImageEncoder"),
    "mobilenetv3large": ("image", "cvs_tf.data.encoders.image:KerasImageEncoder"),
    "hashed": ("text", "cvs_tf.data.encoders.text:HashedTextEncoder"),
    "keras-hub": ("text", "cvs_tf.data.encoders.text:KerasHubTextEncoder"),
    "mfcc": ("audio", "cvs_tf.data.encoders.audio:MfccEncoder"),
    "shape-descriptors": ("mesh", "cvs_tf.data.encoders.mesh:MeshEncoder"),
    "efficientnet-lite0": ("image", "cvs_tf.data.encoders.offline:LiteImageEncoder"),
    "minilm": ("text", "cvs_tf.data.encoders.offline:MiniLMTextEncoder"),
    "whisper-base": ("audio", "cvs_tf.data.encoders.offline:WhisperAudioEncoder"),
}


class EncoderError(ValueError):
    """An encoder name that is unknown, or an encoder that cannot be built (one-line message)."""


class ItemError(ValueError):
    """One item an encoder cannot use; the message is the reason (the caller adds the file)."""


class Encoder:
    """Base of every encoder: ``kind``, ``name``, ``arg``, ``dim``, :meth:`read`, :meth:`encode`, :meth:`info`."""

    kind = ""
    keras_native = False
    preprocessing = ""

    def __init__(self, name: str, arg: str | None = None):
        self.name, self.arg = name, arg

    @property
    def spec(self) -> str:
        return self.name if self.arg is None else f"{self.name}@{self.arg}"

    def read(self, value: str, base: Path):
        """One raw item: ``value`` is a path relative to ``base`` (text: the text itself); raises ItemError."""
        raise NotImplementedError

    def encode(self, items: list) -> np.ndarray:
        """(N, dim) float32 features of N items returned by :meth:`read`."""
        raise NotImplementedError

    def info(self) -> dict:
        """What the feature set's provenance records about this encoder."""
        return {"encoder": self.spec, "kind": self.kind, "dim": int(self.dim), "preprocessing": self.preprocessing,
                "keras_native": self.keras_native, **self.versions()}

    def versions(self) -> dict:
        return {}


def names(kind: str | None = None) -> list[str]:
    """Registered encoder names (of one kind)."""
    return [n for n, (k, _) in _REGISTRY.items() if kind in (None, k)]


def register(name: str, kind: str, target: str) -> None:
    """Register an encoder class ``"module:Class"`` under ``name`` (its constructor takes ``(name, arg)``)."""
    if kind not in KINDS:
        raise EncoderError(f"unknown encoder kind {kind!r} (kinds: {', '.join(KINDS)})")
    _REGISTRY[name] = (kind, target)


def kind_of_path(path: str | Path) -> str | None:
    """The kind a file's extension says (image, audio, mesh), or None."""
    suffix = Path(path).suffix.lower()
    return next((k for k, sfx in SUFFIXES.items() if suffix in sfx), None)


def split_spec(spec: str) -> tuple[str, str | None]:
    name, sep, arg = spec.partition("@")
    if name not in _REGISTRY:
        raise EncoderError(f"unknown encoder {name!r} (encoders: {', '.join(names())})")
    if sep and not arg:
        raise EncoderError(f"encoder {spec!r}: empty value after '@'")
    return name, (arg if sep else None)


def encoder_kind(spec: str) -> str:
    return _REGISTRY[split_spec(spec)[0]][0]


def build_encoder(spec: str) -> Encoder:
    """The encoder named ``spec`` (``NAME`` or ``NAME@ARG``), ready to encode; EncoderError otherwise."""
    name, arg = split_spec(spec)
    module, _, cls = _REGISTRY[name][1].partition(":")
    return getattr(importlib.import_module(module), cls)(name, arg)


def require_modules(what: str, modules: list[tuple[str, str]], install: str) -> None:
    """One EncoderError naming the missing distributions of ``(import name, distribution)`` and how to install them."""
    missing = [dist for mod, dist in modules if importlib.util.find_spec(mod) is None]
    if missing:
        raise EncoderError(f"encoder {what} needs {', '.join(missing)}, which is not installed; run: {install}")
