"""A gallery index over exported embeddings (faiss): exact inner product, IVF-flat or HNSW, saved with its ids and export.

Embeddings from an export are L2-normalised, so the inner product is the cosine similarity
(the score ``map_at_k`` ranks by). On disk an index is a directory::

    INDEX/index.json     format, kind, modality, D, count, search defaults, the export it was built
                         with (sha256 of its export.json, D), the source, class names, sha256 of the files
    INDEX/faiss.index    faiss.write_index of the faiss index (rows 0..count-1)
    INDEX/ids.npy        (count,) unicode item ids
    INDEX/labels.npy     (count,) class ids or (count, C) multi-hot, when known
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from cvs_tf.data.manifest import as_labels
from cvs_tf.data.store import all_finite, sha256_file
from cvs_tf.retrieval.checks import (
    KINDS,
    RetrievalError,
    check_bound,
    check_bounds,
    check_index_manifest,
)
from cvs_tf.utils.artifacts import read_manifest
from cvs_tf.utils.output import OutputDir, OutputKind, recover_previous

INDEX_FORMAT = "cvs_tf.index"
INDEX_FORMAT_VERSION = 1
INDEX_MANIFEST = "index.json"
#: HNSW defaults: links per node and construction beam (faiss's defaults are 32 and 40)
HNSW_M = 32
EF_CONSTRUCTION = 40
EF_SEARCH = 128
#: IVF training points per list (faiss warns below 39)
TRAIN_PER_LIST = 64


#: what ``--overwrite`` may replace: a directory whose index.json is a cvs_tf index listing every file
INDEX_KIND = OutputKind("index", INDEX_MANIFEST, INDEX_FORMAT, lambda manifest: list(manifest["files"]))


def _faiss():
    import faiss

    return faiss


def default_nlist(n: int) -> int:
    """IVF lists for ``n`` items: about sqrt(n) (a power of two), at least 1, and >= 39 items per list."""
    if n < 2 * 39:
        return 1
    nlist = 1 << max(0, round(math.log2(math.sqrt(n))))
    return max(1, min(nlist, n // 39))


def default_nprobe(nlist: int) -> int:
    """Lists visited per query by default: nlist / 64, at least 1 (recall vs speed in docs/serving.md)."""
    return max(1, min(nlist, nlist // 64))


def as_embeddings(x, dim: int | None = None, what: str = "embeddings") -> np.ndarray:
    """A C-contiguous float32 (N, D) copy-or-view of ``x`` (a 1-D vector is one row), checked."""
    a = np.asarray(x)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise RetrievalError(f"{what} must be 2-D (N, D), got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise RetrievalError(f"{what} have dimension {a.shape[1]}; the index holds D = {dim} embeddings")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise RetrievalError(f"{what} must be real numbers, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not all_finite(a):                                   # in row chunks: no (N, D) temporary
        raise RetrievalError(f"{what} contain NaN or Inf")
    return a


def _identity_of(export) -> dict | None:
    if export is None:
        return None
    if isinstance(export, dict):
        return export
    return export.identity



def _search_param(name: str) -> property:
    """A property for the search parameter ``name``: reads ``params[name]`` (None where the kind has
    none); setting it checks it against the faiss index and applies it there too."""

    def get(self) -> int | None:
        return self.params.get(name)

    def set_(self, value: int) -> None:
        self._search_params(**{name: value})
        self.params[name] = int(value)

    return property(get, set_, doc=f"default ``{name}`` of searches")

class Index:
    """Nearest neighbours by inner product over a gallery of embeddings (one modality).

    Build with :meth:`build`, query with :meth:`search`, persist with :meth:`save` / :meth:`load`.
    ``kind`` is ``"exact"`` (``IndexFlatIP``: every item scored, the same top-k as a brute-force
    matmul), ``"ivf"`` (``IndexIVFFlat``: ``nlist`` k-means lists, ``nprobe`` of them scanned per
    query) or ``"hnsw"`` (``IndexHNSWFlat``: a graph with ``hnsw_m`` links per node, a beam of
    ``ef_search`` per query). Scores are inner products of float32 vectors.
    """

    def __init__(self, faiss_index, kind: str, *, ids=None, labels=None, classes=None, label_kind=None,
                 modality: str | None = None, export: dict | None = None, source: dict | None = None,
                 params: dict | None = None, path: Path | None = None):
        if kind not in KINDS:
            raise RetrievalError(f"unknown index kind {kind!r} (use {', '.join(KINDS)})")
        self.faiss_index = faiss_index
        self.kind = kind
        n = int(faiss_index.ntotal)
        self.ids = np.arange(n).astype(str) if ids is None else np.asarray(ids).astype(str)
        if self.ids.shape != (n,):
            raise RetrievalError(f"ids have shape {self.ids.shape}; the index holds {n} items")
        self.classes = None if classes is None else [str(c) for c in classes]
        self.labels, self.label_kind = None, None
        if labels is not None:
            try:
                self.labels, self.label_kind = as_labels(labels, n, n_classes=len(self.classes) if self.classes else None,
                                                         label_kind=label_kind)
            except ValueError as exc:
                raise RetrievalError(f"{path / 'labels.npy' if path else 'labels'}: {exc}") from None
        self.modality = modality
        self.export = export
        self.source = source or {}
        self.params = dict(params or {})
        self.path = path

    def __repr__(self) -> str:
        return (f"Index(kind={self.kind!r}, modality={self.modality!r}, count={self.count}, dim={self.dim}, "
                f"export={(self.export or {}).get('sha256', '')[:12] or None})")

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, embeddings, kind: str = "exact", *, ids=None, labels=None, classes=None, modality=None,
              export=None, source=None, nlist: int | None = None, nprobe: int | None = None,
              hnsw_m: int = HNSW_M, ef_construction: int = EF_CONSTRUCTION, ef_search: int = EF_SEARCH,
              train_size: int | None = None, seed: int = 0) -> Index:
        """Index ``embeddings`` (N, D) (an export's output: L2-normalised float32).

        Args:
          kind: ``exact``, ``ivf`` or ``hnsw``.
          ids: (N,) item ids (stored as strings) [row numbers].
          labels, classes: (N,) class ids or (N, C) multi-hot, and the class names, when known.
          modality, export, source: what the embeddings are: the modality, the export (an
            :class:`~cvs_tf.serving.Export` or its ``identity``), and where the features came from.
          nlist, nprobe: IVF lists [:func:`default_nlist`] and lists scanned per query by default
            [:func:`default_nprobe`]; k-means trains on ``train_size`` seeded rows [64 per list].
          hnsw_m, ef_construction, ef_search: HNSW links per node, construction beam and the
            default search beam.
        """
        faiss = _faiss()
        if kind not in KINDS:
            raise RetrievalError(f"unknown index kind {kind!r} (use {', '.join(KINDS)})")
        check_bounds(nlist=nlist, nprobe=nprobe, train_size=train_size, seed=seed, hnsw_m=hnsw_m,
                     ef_construction=ef_construction, ef_search=ef_search)
        x = as_embeddings(embeddings)
        n, d = x.shape
        if n == 0:
            raise RetrievalError("no embeddings to index (empty gallery)")
        params: dict = {}
        if kind == "exact":
            index = faiss.IndexFlatIP(d)
            index.add(x)
        elif kind == "ivf":
            defaulted = nlist is None
            nlist = default_nlist(n) if defaulted else int(nlist)
            if not 1 <= nlist <= n:
                raise RetrievalError(f"nlist must be in [1, {n}] (the gallery size), got {nlist}")
            nprobe = default_nprobe(nlist) if nprobe is None else int(nprobe)
            if not 1 <= nprobe <= nlist:
                raise RetrievalError(f"nprobe must be in [1, nlist = {nlist}], got {nprobe}")
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = int(seed)
            m = min(n, TRAIN_PER_LIST * nlist if train_size is None else int(train_size))
            if m < nlist:
                raise RetrievalError(f"train_size {m} is below nlist {nlist}")
            rows = np.sort(np.random.default_rng(seed).choice(n, m, replace=False)) if m < n else slice(None)
            index.cp.max_points_per_centroid = max(1, -(-m // nlist))   # train on exactly these rows
            if defaulted:                  # a small gallery's single list needs no size warning
                index.cp.min_points_per_centroid = min(39, max(1, m // nlist))
            index.train(np.ascontiguousarray(x[rows]))
            index.add(x)
            params = {"nlist": nlist, "nprobe": nprobe, "train_size": m, "seed": int(seed)}
        else:
            index = faiss.IndexHNSWFlat(d, int(hnsw_m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(ef_construction)
            index.hnsw.efSearch = int(ef_search)
            index.add(x)
            params = {"hnsw_m": int(hnsw_m), "ef_construction": int(ef_construction), "ef_search": int(ef_search)}
        return cls(index, kind, ids=ids, labels=labels, classes=classes, modality=modality,
                   export=_identity_of(export), source=source, params=params)

    # ------------------------------------------------------------------ properties
    @property
    def count(self) -> int:
        return int(self.faiss_index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.faiss_index.d)

    nprobe = _search_param("nprobe")
    ef_search = _search_param("ef_search")

    def nbytes(self) -> int:
        """Bytes held by the faiss index (vectors, lists or graph links; not ids or labels)."""
        faiss = _faiss()
        idx = self.faiss_index
        if self.kind == "exact":
            return int(idx.ntotal) * int(idx.code_size)
        if self.kind == "ivf":
            ivf = faiss.extract_index_ivf(idx)
            lists = ivf.invlists
            entries = sum(lists.list_size(i) for i in range(lists.nlist))
            return int(entries * (ivf.code_size + 8) + ivf.quantizer.ntotal * ivf.d * 4)
        h = idx.hnsw
        return int(faiss.downcast_index(idx.storage).codes.size() + 4 * h.neighbors.size()
                   + 8 * h.offsets.size() + 4 * h.levels.size())

    # ------------------------------------------------------------------ search
    def _search_params(self, nprobe=None, ef_search=None):
        faiss = _faiss()
        if self.kind == "ivf":
            nlist = self.params["nlist"]
            nprobe = self.params.get("nprobe", 1) if nprobe is None else check_bound("nprobe", nprobe)
            if not 1 <= nprobe <= nlist:
                raise RetrievalError(f"nprobe must be in [1, nlist = {nlist}], got {nprobe}")
            return faiss.SearchParametersIVF(nprobe=nprobe)
        if nprobe is not None:
            raise RetrievalError(f"nprobe applies to an ivf index, not to this {self.kind} index")
        if self.kind == "hnsw":
            ef = self.params.get("ef_search", EF_SEARCH) if ef_search is None else check_bound("ef_search", ef_search)
            return faiss.SearchParametersHNSW(efSearch=ef)
        if ef_search is not None:
            raise RetrievalError(f"ef_search applies to an hnsw index, not to this {self.kind} index")
        return None

    def search(self, queries, k: int = 10, *, nprobe: int | None = None, ef_search: int | None = None):
        """``(scores, rows)``, each (Q, k'): the best ``k' = min(k, count)`` items per query, best first.

        ``rows`` index :attr:`ids` / :attr:`labels`; an approximate index can find fewer than
        k' items for a query (``nprobe`` too small), and marks the missing ones with row -1 and
        score -inf. ``nprobe`` (ivf) and ``ef_search`` (hnsw) override the saved defaults.
        """
        q = as_embeddings(queries, self.dim, "queries")
        check_bound("k", k)
        params = self._search_params(nprobe, ef_search)
        kk = min(int(k), self.count)
        if params is None:
            scores, rows = self.faiss_index.search(q, kk)
        else:
            scores, rows = self.faiss_index.search(q, kk, params=params)
        scores = np.where(rows < 0, -np.inf, scores).astype(np.float32)
        return scores, rows.astype(np.int64)

    # ------------------------------------------------------------------ export identity
    def check_export(self, export) -> None:
        """Raise RetrievalError unless this index was built with ``export`` (same export.json, same D)."""
        want = _identity_of(export)
        have = self.export or {}
        where = f"{self.path}: " if self.path else ""
        if not have:
            raise RetrievalError(f"{where}index records no export; rebuild it with python -m cvs_tf.index build")
        if int(have.get("dim", -1)) != int(want["dim"]) or self.dim != int(want["dim"]):
            raise RetrievalError(f"{where}index holds D = {self.dim} embeddings but the export has D = {want['dim']}")
        if have.get("sha256") != want["sha256"]:
            raise RetrievalError(
                f"{where}index was built with another export (export.json sha256 {str(have.get('sha256'))[:12]}, "
                f"run {have.get('run')}, stage {have.get('stage')}), not {want['sha256'][:12]} "
                f"(run {want.get('run')}, stage {want.get('stage')}); rebuild it with python -m cvs_tf.index build")

    # ------------------------------------------------------------------ save / load
    def manifest(self) -> dict:
        return {
            "format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION, "kind": self.kind,
            "metric": "inner_product", "modality": self.modality, "dim": self.dim, "count": self.count,
            "params": self.params, "export": self.export, "source": self.source, "classes": self.classes,
            "label_kind": self.label_kind,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the index directory atomically (an existing index is replaced only with ``overwrite``)."""
        with OutputDir(path, INDEX_KIND, overwrite=overwrite, error=RetrievalError) as dest:
            return self.write_to(dest)

    def write_to(self, dest: OutputDir) -> Path:
        """Write the index into ``dest``, an output directory its caller checked and locked."""
        faiss = _faiss()
        path = dest.target
        with dest.build() as tmp:
            faiss.write_index(self.faiss_index, str(tmp / "faiss.index"))
            np.save(tmp / "ids.npy", self.ids, allow_pickle=False)
            files = ["faiss.index", "ids.npy"]
            if self.labels is not None:
                np.save(tmp / "labels.npy", self.labels, allow_pickle=False)
                files.append("labels.npy")
            manifest = self.manifest()
            manifest["files"] = {f: {"sha256": sha256_file(tmp / f), "bytes": (tmp / f).stat().st_size} for f in files}
            (tmp / INDEX_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, export=None, verify: bool = True) -> Index:
        """Read an index directory; with ``export``, refuse one built for another export or D."""
        faiss = _faiss()
        path = Path(path)
        recover_previous(path, INDEX_KIND)  # an old index a killed --overwrite left aside
        manifest, _ = read_manifest(path, INDEX_MANIFEST, fmt=INDEX_FORMAT, version=INDEX_FORMAT_VERSION,
                                    required=("kind", "dim", "count", "files"), noun="index", error=RetrievalError,
                                    hint="build one with python -m cvs_tf.index build")
        check_index_manifest(path / INDEX_MANIFEST, manifest)
        for fname, rec in manifest["files"].items():
            fpath = path / fname
            if not fpath.is_file():
                raise RetrievalError(f"{fpath}: missing")
            if fpath.stat().st_size != rec.get("bytes") or (verify and sha256_file(fpath) != rec.get("sha256")):
                raise RetrievalError(f"{fpath}: does not match {INDEX_MANIFEST} (file changed or corrupt)")
        try:
            index = faiss.read_index(str(path / "faiss.index"))
        except RuntimeError as exc:
            raise RetrievalError(f"{path / 'faiss.index'}: unreadable ({' '.join(str(exc).split())[:160]})") from None
        if int(index.d) != int(manifest["dim"]) or int(index.ntotal) != int(manifest["count"]):
            raise RetrievalError(f"{path / 'faiss.index'}: holds {index.ntotal} x {index.d}, "
                                 f"{INDEX_MANIFEST} says {manifest['count']} x {manifest['dim']}")
        try:
            ids = np.load(path / "ids.npy", allow_pickle=False)
            labels = np.load(path / "labels.npy", allow_pickle=False) if "labels.npy" in manifest["files"] else None
        except (ValueError, OSError, EOFError) as exc:
            raise RetrievalError(f"{path}: unreadable ids/labels ({' '.join(str(exc).split())})") from None
        if ids.ndim != 1 or ids.dtype.kind not in "USiu":
            raise RetrievalError(f"{path / 'ids.npy'}: must be a 1-D array of ids (strings or integers), "
                                 f"got shape {ids.shape}, dtype {ids.dtype}")
        out = cls(index, manifest["kind"], ids=ids, labels=labels, classes=manifest.get("classes"),
                  label_kind=manifest.get("label_kind"), modality=manifest.get("modality"),
                  export=manifest.get("export"), source=manifest.get("source"),
                  params=manifest.get("params"), path=path)
        if export is not None:
            out.check_export(export)
        return out

    # ------------------------------------------------------------------ labels
    def class_name(self, row: int) -> str | None:
        """Class name(s) of one item ('+'-joined for multi-label), or None when unknown."""
        if self.labels is None or row < 0:
            return None
        y = self.labels[row]
        if self.label_kind == "multi" or np.ndim(y) == 1:
            active = np.flatnonzero(y)
            return "+".join(self.classes[i] if self.classes and i < len(self.classes) else str(i) for i in active)
        y = int(y)
        return self.classes[y] if self.classes and 0 <= y < len(self.classes) else str(y)
