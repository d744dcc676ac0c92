"""Shared helpers of the report tests: a media folder for the toy feature set."""

import struct
import wave


def write_toy_media(path, ids):
    """``path/<modality>/<id>.<ext>``: a PNG per image, a caption per text and a short WAV per audio item."""
    from PIL import Image

    for m in ("image", "text", "audio"):
        (path / m).mkdir(parents=True, exist_ok=True)
    for i in ids:
        Image.new("RGB", (32, 24), (200, 30, 30)).save(path / "image" / f"{i}.png")
        (path / "text" / f"{i}.txt").write_text(f"caption of {i}\n")
        with wave.open(str(path / "audio" / f"{i}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(struct.pack("<80h", *([0] * 80)))
