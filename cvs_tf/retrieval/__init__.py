"""Retrieval over exported embeddings: faiss gallery indexes (exact, IVF, HNSW) and a cross-modal Searcher."""

from cvs_tf.retrieval.index import KINDS, Index, RetrievalError, default_nlist, default_nprobe
from cvs_tf.retrieval.search import Hit, Searcher, SearchResult

__all__ = ["KINDS", "Hit", "Index", "RetrievalError", "SearchResult", "Searcher", "default_nlist", "default_nprobe"]
