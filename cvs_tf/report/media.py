"""Raw media of a feature set's items for the report's galleries: pictures, caption texts, sound clips.

Where the media come from, first found wins:

1. ``--media DIR`` holding ``media.json``, a media index: ``{"format": "cvs_tf.media_index",
   "items": {modality: {item id: "path below DIR" | {"text": "..."}}}}``;
2. ``--media DIR`` (or a folder found by default) laid out as the Tux Paint stamps the Tux-12 set was
   built from: ``<id>.svg|png`` (picture), ``<id>.txt`` (its English caption: the first line that is
   not ``xx.utf8=...``), ``<id>_desc_fr.ogg`` (the French spoken description: speech and MFCC audio);
3. ``--media DIR`` with one file per item, ``DIR/<modality>/<id>.<ext>`` or ``DIR/<id>.<ext>``.

Without ``--media``, the stamps of Debian's ``tuxpaint-stamps-default`` are looked for where
``make data-tux12`` and ``make test-report`` unpack them (``data_cache/root/tuxpaint-stamps-default_*/``
below the working directory or the source checkout) and where the package installs them (``/usr/share/tuxpaint/stamps``), for a set whose provenance names that package.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

MEDIA_INDEX = "media.json"
MEDIA_FORMAT = "cvs_tf.media_index"
TUX_PACKAGE = "tuxpaint-stamps-default"
TUX_STAMPS = "usr/share/tuxpaint/stamps"
TUX_SPEECH_LANG = "fr"
IMAGE_EXTS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
              ".webp": "image/webp", ".svg": "image/svg+xml"}
SOUND_EXTS = {".ogg": "audio/ogg", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac",
              ".opus": "audio/ogg"}
THUMB_PX = 160
_LANG_LINE = re.compile(r"^[A-Za-z]{2,3}(_[A-Za-z]{2})?(@[A-Za-z]+)?\.utf8=")


def media_kind(modality: str) -> str:
    """How an item of a modality is shown: ``image``, ``text``, ``sound`` or ``id`` (id and class only)."""
    m = modality.lower()
    if m in ("image", "picture", "photo", "video"):
        return "image"
    if m in ("text", "caption", "sentence"):
        return "text"
    if m in ("audio", "speech", "sound", "voice"):
        return "sound"
    return "id"


@dataclass
class MediaItem:
    """One item's medium: ``kind`` image/sound with a data URI, or text with its text."""

    kind: str
    data_uri: str | None = None
    text: str | None = None


def _data_uri(path: Path, mime: str) -> str:
    blob = path.read_bytes()
    if mime in ("image/png", "image/jpeg", "image/gif", "image/webp"):
        blob, mime = _thumbnail(blob, mime)
    return f"data:{mime};base64,{base64.b64encode(blob).decode('ascii')}"


def _thumbnail(blob: bytes, mime: str) -> tuple[bytes, str]:
    """A PNG at most THUMB_PX wide or high (the original when Pillow cannot read it)."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(blob)) as im:
            im.thumbnail((THUMB_PX, THUMB_PX))
            out = io.BytesIO()
            im.save(out, format="PNG", optimize=True)
            return out.getvalue(), "image/png"
    except Exception:  # Pillow raises many types for files it cannot decode
        return blob, mime


def read_caption(txt: Path) -> str | None:
    """The first non-empty line of a Tux Paint ``.txt`` that is not a ``xx.utf8=`` translation."""
    for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line and not _LANG_LINE.match(line):
            return line
    return None


class MediaSource:
    """Looks up the medium of (modality, item id); ``where`` says where from (or why none)."""

    def __init__(self, root: Path | None, layout: str, index: dict | None = None, where: str = ""):
        self.root, self.layout, self.index, self.where = root, layout, index or {}, where
        self.asked = self.found = 0

    def lookup(self, modality: str, item_id: str) -> MediaItem | None:
        kind = media_kind(modality)
        self.asked += 1
        if self.root is None or kind == "id":
            return None
        try:
            if self.layout == "index":
                item = self._from_index(modality, item_id, kind)
            elif self.layout == "tuxpaint":
                item = self._tux(item_id, kind)
            else:
                item = self._files(modality, item_id, kind)
        except (OSError, ValueError):
            return None
        self.found += item is not None
        return item

    def _from_index(self, modality: str, item_id: str, kind: str) -> MediaItem | None:
        entry = (self.index.get(modality) or {}).get(item_id)
        if isinstance(entry, dict) and isinstance(entry.get("text"), str):
            return MediaItem("text", text=entry["text"])
        if isinstance(entry, str):
            return self._file(self.root / entry, kind)
        return None

    def _file(self, path: Path, kind: str) -> MediaItem | None:
        if not path.is_file() or self.root not in path.resolve().parents:
            return None
        if kind == "text":
            return MediaItem("text", text=read_caption(path) or "")
        table = IMAGE_EXTS if kind == "image" else SOUND_EXTS
        mime = table.get(path.suffix.lower())
        return MediaItem(kind, data_uri=_data_uri(path, mime)) if mime else None

    def _tux(self, item_id: str, kind: str) -> MediaItem | None:
        stem = self.root / item_id
        names = {"image": [".svg", ".png"], "text": [".txt"], "sound": [f"_desc_{TUX_SPEECH_LANG}.ogg"]}[kind]
        for suffix in names:
            if (found := self._file(Path(f"{stem}{suffix}"), kind)) is not None:
                return found
        return None

    def _files(self, modality: str, item_id: str, kind: str) -> MediaItem | None:
        exts = [".txt"] if kind == "text" else list(IMAGE_EXTS if kind == "image" else SOUND_EXTS)
        for base in (self.root / modality / item_id, self.root / item_id):
            for ext in exts:
                if (found := self._file(Path(f"{base}{ext}"), kind)) is not None:
                    return found
        return None


def _is_tux_root(root: Path) -> bool:
    return root.is_dir() and (root / "animals").is_dir()


def _default_roots(fs) -> list[Path]:
    """Where the stamps may be, for a set whose items are Tux Paint stamps (Tux-12 records ``item_ids.stamp``)."""
    if (TUX_PACKAGE not in ((fs.manifest.get("provenance") or {}).get("debian_packages") or {})
            or "stamp" not in (fs.manifest.get("item_ids") or {})):
        return []
    checkout = Path(__file__).resolve().parents[2]  # a source checkout's data_cache/, as make data-tux12 fills it
    roots = [p for base in dict.fromkeys([Path.cwd(), checkout])
             for p in sorted((base / "data_cache" / "root").glob(f"{TUX_PACKAGE}_*/{TUX_STAMPS}"))]
    return roots + [Path("/") / TUX_STAMPS]


def media_source(fs, media_dir: str | Path | None) -> MediaSource:
    """The media of a feature set: ``media_dir`` (see the module docstring) or the default locations."""
    if media_dir is not None:
        root = Path(media_dir).resolve()
        if (root / MEDIA_INDEX).is_file():
            data = json.loads((root / MEDIA_INDEX).read_text())
            if not isinstance(data, dict) or data.get("format") != MEDIA_FORMAT:
                raise ValueError(f"{root / MEDIA_INDEX}: not a {MEDIA_FORMAT!r} media index")
            return MediaSource(root, "index", data.get("items") or {}, where=f"{root / MEDIA_INDEX}")
        for cand in (root, root / TUX_STAMPS):
            if _is_tux_root(cand):
                return MediaSource(cand.resolve(), "tuxpaint", where=f"{cand} (Tux Paint stamps)")
        return MediaSource(root, "files", where=str(root))
    for cand in _default_roots(fs):
        if _is_tux_root(cand):
            return MediaSource(cand.resolve(), "tuxpaint", where=f"{cand} (Tux Paint stamps, {TUX_PACKAGE})")
    return MediaSource(None, "none", where="no media at hand (pass --media DIR)")
