"""Retrieval evaluation: exact mAP@K, leak-free test-time attention protocols, and the cross-modal mAP table."""

from cvs_tf.evaluation.metrics import (
    chance_map_at_k,
    map_at_k,
    map_at_k_from_scores,
    normalize_k,
    partner_ranks,
    recall_at_k,
    recall_at_k_from_scores,
    relevance_counts,
    top_k_indices,
)
from cvs_tf.evaluation.protocols import (
    LEAK_TITLE,
    ModelScorer,
    Protocol,
    parse_protocol,
    resolve_protocol,
    score_matrix,
)
from cvs_tf.evaluation.table import (
    MEAN,
    cross_modal_table,
    format_table,
    read_table,
    table_from_matrix,
    table_record,
    to_markdown,
    write_table,
)

__all__ = [
    "map_at_k",
    "map_at_k_from_scores",
    "chance_map_at_k",
    "recall_at_k",
    "recall_at_k_from_scores",
    "partner_ranks",
    "relevance_counts",
    "top_k_indices",
    "normalize_k",
    "Protocol",
    "parse_protocol",
    "resolve_protocol",
    "score_matrix",
    "ModelScorer",
    "LEAK_TITLE",
    "cross_modal_table",
    "format_table",
    "to_markdown",
    "write_table",
    "read_table",
    "table_from_matrix",
    "table_record",
    "MEAN",
]
