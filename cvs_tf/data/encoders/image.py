"""Image encoders: a ``keras.applications`` backbone (ImageNet, a local weights file, or seeded random weights), global average pooled."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvs_tf.data.encoders import Encoder, EncoderError, ItemError

SIZE = 224
#: registry name -> keras.applications constructor
BACKBONES = {"efficientnetb0": "EfficientNetB0", "mobilenetv3small": "MobileNetV3Small",
             "mobilenetv3large": "MobileNetV3Large"}
RANDOM_SEED = 0


def to_square_rgb(rgba: np.ndarray, size: int = SIZE) -> np.ndarray:
    """An RGBA/RGB/L uint8 array composited on white, centred on a white square, resized (bicubic)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(rgba)).convert("RGBA")
    bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
    bg.alpha_composite(img)
    img = bg.convert("RGB")
    w, h = img.size
    side = max(w, h)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(img, ((side - w) // 2, (side - h) // 2))
    return np.asarray(square.resize((size, size), Image.BICUBIC), dtype=np.uint8)


def load_image(path: Path, size: int = SIZE) -> np.ndarray:
    """(size, size, 3) uint8 pixels of an image file; ItemError when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            rgba = np.asarray(img.convert("RGBA"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ItemError(f"cannot decode image ({' '.join(str(exc).split())[:160]})") from None
    if rgba.shape[0] == 0 or rgba.shape[1] == 0:
        raise ItemError("empty image (0 pixels)")
    return to_square_rgb(rgba, size)


class KerasImageEncoder(Encoder):
    """A ``keras.applications`` backbone without its top, average pooled; input (N, 224, 224, 3) pixels in [0, 255].

    ARG: absent for the ImageNet weights (Keras fetches them once into ``~/.keras/models``), a
    local weights file (``.weights.h5`` or ``.h5``, no top), or ``none`` for random weights drawn
    with seed 0 (tests and smoke runs: the same weights in every process).
    """

    kind = "image"
    keras_native = True
    preprocessing = (f"RGBA composited on white, padded to a white square, resized to {SIZE}x{SIZE} (PIL bicubic); "
                     "float32 pixels in [0, 255] (the backbone's own preprocessing layers scale them)")

    def __init__(self, name: str, arg: str | None = None):
        super().__init__(name, arg)
        import keras

        weights: str | None = "imagenet"
        if arg is not None and arg.lower() == "none":
            weights = None
            keras.utils.set_random_seed(RANDOM_SEED)
        elif arg is not None:
            if not Path(arg).is_file():
                raise EncoderError(f"encoder {self.spec}: weights file {arg}: no such file")
            weights = arg
        build = getattr(keras.applications, BACKBONES[name])
        try:
            self.model = build(include_top=False, weights=weights, input_shape=(SIZE, SIZE, 3), pooling="avg")
        except Exception as exc:  # a download that fails offline, or a weights file of another network
            raise EncoderError(f"encoder {self.spec}: cannot build {BACKBONES[name]} with weights {weights!r} "
                               f"({' '.join(str(exc).split())[:200]}); give a local file: {name}@PATH") from None
        self.dim = int(self.model.output_shape[-1])
        self.weights = weights

    def read(self, value: str, base: Path) -> np.ndarray:
        return load_image(base / value)

    def encode(self, items: list) -> np.ndarray:
        x = np.stack(items).astype(np.float32)
        return np.asarray(self.model(x, training=False), dtype=np.float32)

    def raw_fn(self):
        """``(fn, input spec, tracked Keras object, input description)`` of the end-to-end export."""
        import tensorflow as tf

        spec = tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="pixels")
        return (lambda x: self.model(x, training=False)), spec, self.model, \
            f"(N, {SIZE}, {SIZE}, 3) float32 RGB pixels in [0, 255], prepared as: {self.preprocessing}"

    def versions(self) -> dict:
        import keras

        from cvs_tf.utils.weights import weights_sha256

        out = {"backbone": f"keras.applications.{BACKBONES[self.name]} (include_top=False, pooling='avg')",
               "keras": keras.__version__, "weights_sha256": weights_sha256(self.model),
               "weights": "random (seed 0)" if self.weights is None else "imagenet" if self.weights == "imagenet"
               else Path(self.weights).name}
        if self.weights not in (None, "imagenet"):
            from cvs_tf.data.store import sha256_file

            out["weights_file_sha256"] = sha256_file(self.weights)
        return out
