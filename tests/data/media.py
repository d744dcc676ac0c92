"""Shared helpers of the raw-media tests: tiny PNG, WAV, mesh and text files, a spec of them, and a tiny random-weight Keras image encoder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from cvs_tf.data.encoders import Encoder, register
from cvs_tf.data.encoders.image import SIZE, load_image

CLASSES = ("red", "green", "blue")
TINY_IMAGE = "tiny-image-test"


class TinyImageEncoder(Encoder):
    """A 6-d random-weight (seeded) Keras CNN over 224x224 pixels: the tests' stand-in for a backbone."""

    kind = "image"
    keras_native = True
    preprocessing = "tests: load_image, tiny seeded CNN"

    def __init__(self, name, arg=None):
        super().__init__(name, arg)
        import keras

        init = keras.initializers.GlorotUniform(seed=1)
        self.model = keras.Sequential([
            keras.Input((SIZE, SIZE, 3)), keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(4, 8, strides=8, activation="relu", kernel_initializer=init, name="tiny_conv"),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(6, kernel_initializer=init, name="tiny_dense")],
            name="tiny_image")  # fixed names: the weights' checksum covers their paths
        self.dim = 6

    def read(self, value, base):
        return load_image(base / value)

    def encode(self, items):
        return np.asarray(self.model(np.stack(items).astype(np.float32), training=False), np.float32)

    def raw_fn(self):
        import tensorflow as tf

        spec = tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="pixels")
        return (lambda x: self.model(x, training=False)), spec, self.model, "pixels"

    def versions(self):
        from cvs_tf.serving.export import weights_sha256

        return {"weights_sha256": weights_sha256(self.model)}


register(TINY_IMAGE, "image", f"{__name__}:TinyImageEncoder")


def write_png(path: Path, i: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(i)
    img = rng.integers(0, 60, size=(24 + i % 5, 32, 3), dtype=np.uint8)
    img[..., i % 3] += 180
    Image.fromarray(img).save(path)
    return path


def write_wav(path: Path, i: int, rate: int = 8000) -> Path:
    from scipy.io import wavfile

    t = np.arange(rate // 2) / rate
    wave = np.sin(2 * np.pi * (200 + 150 * (i % 3) + 7 * i) * t) * 8000
    wavfile.write(path, rate, wave.astype(np.int16))
    return path


def write_off(path: Path, i: int) -> Path:
    """A box whose proportions depend on the class of item ``i``, as an OFF mesh."""
    sx, sy, sz = (1.0, 1.0 + (i % 3), 1.0 + 0.1 * i)
    v = np.array([[x * sx, y * sy, z * sz] for x in (0, 1) for y in (0, 1) for z in (0, 1)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [f for a, b, c, d in quads for f in ((a, b, c), (a, c, d))]
    lines = ["OFF", f"{len(v)} {len(faces)} 0", *(" ".join(map(str, p)) for p in v), *(f"3 {a} {b} {c}" for a, b, c in faces)]
    path.write_text("\n".join(lines) + "\n")
    return path


def text_of(i: int) -> str:
    return f"a {CLASSES[i % 3]} thing, number {i}"


def write_manifest(root: Path, n: int = 12, *, modalities=("text", "audio"), fmt: str = "csv",
                   split: bool = False) -> Path:
    """A CSV or JSON manifest of ``n`` items with files for ``modalities`` (text, audio, image, 3d)."""
    writers = {"audio": ("wav", write_wav), "image": ("png", write_png), "3d": ("off", write_off)}
    rows = []
    for i in range(n):
        row = {"id": f"item{i:02d}", "class": CLASSES[i % 3]}
        if split:
            row["split"] = "test" if i >= n - 3 else "train"
        for m in modalities:
            if m == "text":
                row[m] = text_of(i)
            else:
                ext, write = writers[m]
                row[m] = write(root / f"{m}{i:02d}.{ext}", i).name
        rows.append(row)
    path = root / f"spec.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path


def write_folder(root: Path, n: int = 12, modalities=("image", "text")) -> Path:
    """``root/<modality>/<class>/<item>.<ext>`` (png, txt, wav): an instance-paired folder layout."""
    writers = {"image": ("png", write_png), "audio": ("wav", write_wav),
               "text": ("txt", lambda path, i: path.write_text(text_of(i)))}
    for i in range(n):
        c = CLASSES[i % 3]
        for m in modalities:
            ext, write = writers[m]
            (root / m / c).mkdir(parents=True, exist_ok=True)
            write(root / m / c / f"item{i:02d}.{ext}", i)
    return root
