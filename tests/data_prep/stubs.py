"""Stand-ins for the builders' real encoders and staging: features are a function of each item's source (no model, no decoding)."""

import zlib
from pathlib import Path

import numpy as np

from cvs_tf.data.encoders import Encoder


def feature(modality: str, key: str, dim: int) -> np.ndarray:
    """The stub feature of one item: seeded by the modality and the item's source (a file path, or the text)."""
    return np.random.default_rng(zlib.crc32(f"{modality}:{key}".encode())).normal(size=dim)


class StubEncoder(Encoder):
    """Reads a staged file back as the source path written into it (a text as itself); encodes it as :func:`feature`."""

    def __init__(self, modality: str, dim: int, shift: float = 0.0):
        super().__init__(f"stub-{modality}")
        self.kind = {"image": "image", "text": "text", "3d": "mesh"}.get(modality, "audio")
        self.modality, self.dim, self.shift = modality, dim, shift

    def read(self, value, base):
        return value if self.kind == "text" else (Path(base) / value).read_text()

    def encode(self, items):
        return np.stack([feature(self.modality, k, self.dim) for k in items]) + self.shift


class StubExtractors:
    """The builders' extractor object (``encoders``, ``stage_image``, ``stage_audio``, ``stage_mesh``, ``info``) with stub encoders."""

    dims = {"image": 8, "text": 6, "speech": 5, "audio": 3, "3d": 5}

    def __init__(self, cache, threads, log, shift=0.0):
        self.info = {}
        self.shift = shift
        self.staged = []

    @classmethod
    def feature(cls, modality, key):
        return feature(modality, str(key), cls.dims[modality])

    def encoders(self, modalities):
        self.info.update({m: {"name": f"stub {m}", "dim": self.dims[m]} for m in modalities})
        return {m: StubEncoder(m, self.dims[m], self.shift) for m in modalities}

    def stage_image(self, src, dest):
        self.staged.append(("image", src))
        dest.write_text(str(src))
        return dest

    def stage_audio(self, src, dest):
        self.staged.append(("audio", src))
        dest.write_text(str(src))
        return dest

    @staticmethod
    def mesh_key(vertices, faces):
        """What :meth:`stage_mesh` writes for a mesh: a digest of its float64 vertices and faces."""
        return f"mesh {zlib.crc32(np.ascontiguousarray(vertices, np.float64).tobytes())} {len(faces)}"

    def stage_mesh(self, vertices, faces, dest):
        self.staged.append(("mesh", self.mesh_key(vertices, faces)))
        dest.write_text(self.mesh_key(vertices, faces))
        return dest
