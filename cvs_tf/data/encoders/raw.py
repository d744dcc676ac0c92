"""The raw input of a Keras-native encoder's export: image pixels of a file, or the text itself."""

from __future__ import annotations

from pathlib import Path


def read_raw(kind: str, value: str, base: Path = Path(".")):
    """Image pixels of the file ``base / value`` for ``kind`` image; the checked text ``value`` otherwise."""
    if kind == "image":
        from cvs_tf.data.encoders.image import load_image

        return load_image(base / value)
    from cvs_tf.data.encoders.text import check_text

    return check_text(value)


__all__ = ["read_raw"]
