"""Semi-hard triplet losses (within one set, and from one set to another) as pure TF functions.

Each loss has one body, ``batched_semi_hard_triplet_loss`` / ``batched_cross_triplet_loss``, over
any number of stacked sets (leading dimensions, or none); ``semi_hard_triplet_loss`` and
``cross_triplet_loss`` are that body on one shape-checked set. The eq. 3.1.6 combination of a
modality pair is the ``semihard_triplet`` pair-loss kind (``cvs_tf.losses.kinds.semihard_triplet``).

This module imports only ``tensorflow`` (no ``keras``, no other ``cvs_tf`` module) so that it runs
unchanged on TF 2.15 and TF 2.21: the TF-Addons oracle lane (``make test-oracle``) loads this
file by path inside a TF 2.15 virtualenv and compares :func:`semi_hard_triplet_loss` with
``tfa.losses.TripletSemiHardLoss(margin=1.0, distance_metric="squared-L2")``.

Labels
    Every function accepts labels either as integer class ids of shape ``(N,)`` (a ``(N, 1)``
    column is squeezed to ``(N,)``) or as multi-hot rows of shape ``(N, C)`` with ``C >= 2``.
    Two items are "the same class" when their ids are equal, or, for multi-hot, when they share
    at least one label. An all-zero multi-hot row shares a class with nothing, not even itself.

Mining rule (thesis §3.1.A, design §3), for one (anchor ``i``, positive ``k``) pair
    * ``d_ap = d(i, k)``, squared Euclidean;
    * semi-hard negative: the closest negative ``j`` with ``d(i, j) > d_ap`` (strictly);
    * fallback when no negative is farther than the positive: the farthest negative of ``i``;
    * when the anchor has no negative at all: ``d_an = 0`` (TF-Addons' convention: its masked
      maximum over an empty set returns the row minimum, the zero self-distance), so that pair
      contributes ``d_ap + margin``;
    * the pair's loss is ``max(d_ap - d_an + margin, 0)``; the result is the mean over all
      (anchor, positive) pairs (the anchor itself excluded); with no such pair it is ``0``
      (TF-Addons returns NaN there: this is the one documented difference).

Cost: each anchor's M negatives are sorted once and every candidate's semi-hard negative is a
binary search on that row: O(N · M log² M) work with the bitonic sort used for static shapes
(O(N · M log M) with ``tf.argsort``) and O(N · M) memory, where TF-Addons' tiled mask compares
through an (anchors × positives × negatives) tensor, O(N² · M). The negative is selected
without gradient, so the backward pass is O(N · M) too (docs/performance.md).
"""

import tensorflow as tf

__all__ = [
    "pairwise_squared_distances",
    "same_class_matrix",
    "semi_hard_triplet_loss",
    "cross_triplet_loss",
    "batched_semi_hard_triplet_loss",
    "batched_cross_triplet_loss",
    "batched_masked_triplet_loss",
]


def _as_float(x):
    """Converts to a float tensor, promoting half precision to float32 (as TF-Addons does)."""
    x = tf.convert_to_tensor(x)
    if x.dtype in (tf.float16, tf.bfloat16) or not x.dtype.is_floating:
        x = tf.cast(x, tf.float32)
    return x


def _check_embeddings(emb, name):
    emb = _as_float(emb)
    if emb.shape.rank is not None and emb.shape.rank != 2:
        raise ValueError(f"{name} must have shape (N, D); got shape {emb.shape}")
    return emb


def _normalise_labels(labels, name):
    """Returns labels as (N,) ids or (N, C) multi-hot float rows; a (N, 1) column is squeezed."""
    labels = tf.convert_to_tensor(labels)
    rank = labels.shape.rank
    if rank is None:
        raise ValueError(f"{name} must have a known rank, (N,) or (N, C)")
    if rank == 2 and labels.shape[-1] == 1:
        labels = tf.squeeze(labels, axis=-1)
        rank = 1
    if rank == 1:
        return labels
    if rank == 2:
        return tf.cast(labels, tf.float32)
    raise ValueError(f"{name} must have shape (N,) or (N, C); got shape {labels.shape}")


def _labels_pair(labels_a, labels_b):
    """Both label sets normalised and checked to be of one form (ids, or multi-hot with one class count)."""
    la = _normalise_labels(labels_a, "labels_a")
    lb = _normalise_labels(labels_b, "labels_b")
    if la.shape.rank != lb.shape.rank:
        raise ValueError(
            "labels_a and labels_b must both be class ids (N,) or both multi-hot (N, C); "
            f"got shapes {la.shape} and {lb.shape}"
        )
    if la.shape.rank == 2 and la.shape[-1] is not None and lb.shape[-1] is not None and la.shape[-1] != lb.shape[-1]:
        raise ValueError(
            f"multi-hot labels must have the same number of classes; got {la.shape[-1]} and {lb.shape[-1]}"
        )
    return la, lb


def _same_class(la, lb, ids):
    """(..., Na, Nb) same-class mask from (..., N) class ids (``ids``) or (..., N, C) multi-hot rows."""
    if ids:
        return tf.equal(la[..., :, None], tf.cast(lb, la.dtype)[..., None, :])
    return tf.matmul(tf.cast(la, tf.float32), tf.cast(lb, tf.float32), transpose_b=True) > 0.0


def _distances(a, b):
    """(..., Na, Nb) squared Euclidean distances ``|a|² + |b|² - 2 a·bᵀ`` (the TF-Addons formula), clamped at 0."""
    sq_a = tf.reduce_sum(tf.square(a), axis=-1)[..., :, None]
    sq_b = tf.reduce_sum(tf.square(b), axis=-1)[..., None, :]
    return tf.maximum(sq_a + sq_b - 2.0 * tf.matmul(a, b, transpose_b=True), 0.0)


def same_class_matrix(labels_a, labels_b):
    """Boolean (Na, Nb) matrix: True where item i of a and item j of b share a class.

    Integer ids: equal ids. Multi-hot (N, C) rows: at least one common label. Both arguments
    must use the same form.
    """
    la, lb = _labels_pair(labels_a, labels_b)
    return _same_class(la, lb, ids=la.shape.rank == 1)


def pairwise_squared_distances(a, b):
    """Squared Euclidean distances between the rows of ``a`` (Na, D) and ``b`` (Nb, D).

    Computed as ``|a|² + |b|² - 2 a·bᵀ`` (the TF-Addons formula) and clamped at 0 against
    rounding. Returns a float (Na, Nb) tensor.
    """
    a = _check_embeddings(a, "a")
    b = _check_embeddings(b, "b")
    return _distances(a, tf.cast(b, a.dtype))


def _semi_hard_from_masks(dist, positives, negatives, margin):
    """Mean semi-hard hinge over the (anchor, positive) pairs given by the boolean masks.

    ``dist`` (..., Na, Nb) holds anchor-to-candidate distances; ``positives``/``negatives``
    (..., Na, Nb) say which candidates are positives/negatives of each anchor. Leading dimensions
    are independent problems (one loss value each); ``margin`` is a scalar or one per problem.

    Each anchor's negatives are sorted once by distance (a stable sort: equal distances keep their
    column order); the semi-hard negative of candidate ``k`` is then the negative of rank
    ``#{negatives j : d(i, j) <= d(i, k)}``, found by a binary search on that row. O(Na·Nb·log² Nb)
    work (:func:`_sort_rows`) and O(Na·Nb) memory. The negative is *selected* without gradient, then its distance is
    gathered: with exactly equal distances the gradient goes to the first such negative.
    """
    margin = tf.cast(margin, dist.dtype)
    if margin.shape.rank:
        margin = margin[..., None, None]
    batch_dims = dist.shape.rank - 1
    d = tf.stop_gradient(dist)
    # Negatives first in ascending distance, every other candidate after them as +inf.
    neg_d = tf.where(negatives, d, tf.fill(tf.shape(d), tf.constant(float("inf"), d.dtype)))
    ranked, order = _sort_rows(neg_d)
    # Rank of the closest negative strictly farther than candidate k: the negatives at distance <= d(i, k).
    rank = _count_at_most(ranked, d)
    has_outside = rank < tf.reduce_sum(tf.cast(negatives, rank.dtype), axis=-1, keepdims=True)
    last = tf.maximum(tf.shape(d)[-1] - 1, 0)
    first = tf.gather(order, tf.minimum(rank, tf.cast(last, rank.dtype)), batch_dims=batch_dims)
    outside = tf.gather(dist, first, batch_dims=batch_dims)
    return _hinge_mean(dist, positives, negatives, margin, has_outside, outside)


def _sort_rows(values):
    """``(sorted values, their column indices)`` along the last axis, ascending; equal values keep column order.

    With a static row length, a bitonic network of elementwise compare-exchange steps on (value,
    column) pairs: log²(n)/2 fused passes, where XLA's CPU sort calls a comparator per comparison
    (several times slower). Without one, ``tf.argsort(stable=True)``.
    """
    n = values.shape[-1]
    if n is None or n < 2:
        order = tf.argsort(values, axis=-1, stable=True)
        return tf.gather(values, order, batch_dims=values.shape.rank - 1), order
    size = 1 << (n - 1).bit_length()
    lead = tf.shape(values)[:-1]
    v = tf.reshape(values, [-1, n])
    i = tf.broadcast_to(tf.range(size), [tf.shape(v)[0], size])
    # padding sorts last: +inf, after every real column
    v = tf.pad(v, [[0, 0], [0, size - n]], constant_values=float("inf"))
    k = 2
    while k <= size:
        j = k // 2
        while j:
            shape = [-1, size // (2 * j), 2, j]
            vs, js = tf.unstack(tf.reshape(v, shape), axis=2), tf.unstack(tf.reshape(i, shape), axis=2)
            # block t holds columns t·2j + (0 | j) + r; it sorts ascending where that column's bit k is clear
            ascending = tf.constant([[(t * 2 * j) & k == 0] for t in range(size // (2 * j))])
            greater = tf.logical_or(vs[0] > vs[1], tf.logical_and(tf.equal(vs[0], vs[1]), js[0] > js[1]))
            swap = tf.equal(greater, ascending)
            v = tf.reshape(tf.stack([tf.where(swap, vs[1], vs[0]), tf.where(swap, vs[0], vs[1])], axis=2), [-1, size])
            i = tf.reshape(tf.stack([tf.where(swap, js[1], js[0]), tf.where(swap, js[0], js[1])], axis=2), [-1, size])
            j //= 2
        k *= 2
    out_shape = tf.concat([lead, [n]], 0)
    return tf.reshape(v[:, :n], out_shape), tf.reshape(i[:, :n], out_shape)


def _count_at_most(ranked, values):
    """``tf.searchsorted(ranked, values, side="right")``: per value, how many entries of its ascending row are <= it.

    A branch-free binary search of ``bit_length(M)`` gather steps: O(log M) per value under XLA too,
    where XLA lowers ``searchsorted`` to an all-pairs comparison (O(M) per value).
    """
    m = tf.shape(ranked)[-1]
    batch_dims = ranked.shape.rank - 1

    def step(count, width):
        probe = count + width
        value = tf.gather(ranked, tf.clip_by_value(probe - 1, 0, tf.maximum(m - 1, 0)), batch_dims=batch_dims)
        return tf.where(tf.logical_and(probe <= m, value <= values), probe, count)

    count = tf.zeros(tf.shape(values), tf.int32)
    if ranked.shape[-1] is not None:   # static row length: unrolled
        width = 1 << max(ranked.shape[-1].bit_length() - 1, 0) if ranked.shape[-1] else 0
        while width:
            count, width = step(count, width), width // 2
        return count
    top = tf.while_loop(lambda w: w * 2 <= m, lambda w: [w * 2], [tf.constant(1)])[0]
    return tf.while_loop(lambda c, w: w * tf.minimum(m, 1) > 0, lambda c, w: [step(c, w), w // 2],
                         [count, top])[0]


def _hinge_mean(dist, positives, negatives, margin, has_outside, outside):
    """The pairs' mean hinge, given per (anchor, candidate) whether a semi-hard negative exists and its distance."""
    # Farthest negative of each anchor; 0 when the anchor has no negative (TF-Addons convention).
    has_negative = tf.reduce_any(negatives, axis=-1, keepdims=True)
    inside = tf.reduce_max(tf.where(negatives, dist, tf.zeros_like(dist)), axis=-1, keepdims=True)
    inside = tf.where(has_negative, inside, tf.zeros_like(inside))
    d_an = tf.where(has_outside, outside, tf.broadcast_to(inside, tf.shape(dist)))
    hinge = tf.maximum(dist - d_an + margin, 0.0)
    hinge = tf.where(positives, hinge, tf.zeros_like(hinge))
    num_pairs = tf.reduce_sum(tf.cast(positives, dist.dtype), axis=[-2, -1])
    return tf.math.divide_no_nan(tf.reduce_sum(hinge, axis=[-2, -1]), num_pairs)


def _closest_candidate(cond, d):
    """For each (…, i, k): whether any j has ``cond[…, i, k, j]``, and the first j of smallest ``d[…, i, j]``.

    float32 distances take **one** reduction over the (…, Na, Nb, Nb) cube: the key
    ``(bits(d_j) << 32) | j`` orders like (d_j, j) because the IEEE bits of a non-negative float
    order like its value (``cond`` only holds where d_j > d_k >= 0), so its minimum carries both the
    distance and the first index of a tie. Other dtypes take two reductions (value, then index).
    The returned index is clipped into range (it is unused where nothing qualifies).
    """
    n = tf.shape(d)[-1]
    last = tf.maximum(n - 1, 0)
    if d.dtype == tf.float32:
        bits = tf.cast(tf.bitcast(d, tf.int32), tf.int64)
        key = tf.bitwise.left_shift(bits, 32) + tf.cast(tf.range(n), tf.int64)
        none = tf.constant(2**63 - 1, tf.int64)
        best = tf.reduce_min(tf.where(cond, key[..., None, :], none), axis=-1)
        first = tf.cast(tf.bitwise.bitwise_and(best, 0xFFFFFFFF), tf.int32)
        return best < none, tf.clip_by_value(first, 0, last)
    inf = tf.constant(float("inf"), d.dtype)
    d_min = tf.reduce_min(tf.where(cond, d[..., None, :], inf), axis=-1)
    hit = tf.logical_and(cond, tf.equal(d[..., None, :], d_min[..., None]))
    first = tf.reduce_min(tf.where(hit, tf.range(n), n), axis=-1)
    return d_min < inf, tf.minimum(first, last)


def _semi_hard_from_masks_cube(dist, positives, negatives, margin):
    """The same loss as :func:`_semi_hard_from_masks` mined through an (anchors × candidates × negatives) cube.

    O(Na·Nb²) work: the reference the sort-based mining is tested and benchmarked against
    (``tests/losses``, ``bench/mining.py``); training never calls it.
    """
    margin = tf.cast(margin, dist.dtype)
    if margin.shape.rank:
        margin = margin[..., None, None]
    d = tf.stop_gradient(dist)
    # cond[..., i, k, j]: candidate j is a negative of anchor i and farther than candidate k.
    cond = tf.logical_and(negatives[..., :, None, :], d[..., None, :] > d[..., :, None])
    has_outside, first = _closest_candidate(cond, d)
    outside = tf.gather(dist, first, batch_dims=dist.shape.rank - 1)
    return _hinge_mean(dist, positives, negatives, margin, has_outside, outside)


def _intra_masks(labels, emb):
    """``(dist, positives, negatives)`` of the within-set loss: (..., N, N) distances and masks, self excluded."""
    same = _same_class(labels, labels, ids=labels.shape.rank < emb.shape.rank)
    dist = _distances(emb, emb)
    n = tf.shape(dist)[-1]
    off_diag = tf.logical_not(tf.cast(tf.eye(n), tf.bool))
    # Explicit zero self-distance (as TF-Addons), whatever the rounding of |a|² + |a|² - 2a·a.
    dist = tf.where(off_diag, dist, tf.zeros_like(dist))
    return dist, tf.logical_and(same, off_diag), tf.logical_and(tf.logical_not(same), off_diag)


def batched_semi_hard_triplet_loss(labels, embeddings, margins=1.0):
    """Semi-hard triplet loss within each of a stack of sets: the one body of the intra-modal term.

    ``embeddings`` (..., N, D) with labels (..., N) class ids or (..., N, C) multi-hot rows; the
    leading dimensions (none, or P stacked sets) are independent problems, each with its own loss;
    ``margins`` is a scalar or one per problem. Returns the (...)-shaped losses: a model that trains
    many modality pairs stacks their sets here, so the traced graph stays small (compile time).
    :func:`semi_hard_triplet_loss` is this function on one checked (N, D) set.
    """
    emb = _as_float(embeddings)
    return _semi_hard_from_masks(*_intra_masks(tf.convert_to_tensor(labels), emb), margins)


def batched_cross_triplet_loss(anchor_labels, anchor_emb, other_labels, other_emb, margins=1.0):
    """Semi-hard triplet loss from anchor sets to other sets: the one body of the inter-modal term.

    Shapes as in :func:`batched_semi_hard_triplet_loss`, the anchor and other sets of one problem
    may differ in size; :func:`cross_triplet_loss` is this function on one checked pair of sets.
    """
    ax = _as_float(anchor_emb)
    oy = tf.cast(_as_float(other_emb), ax.dtype)
    la = tf.convert_to_tensor(anchor_labels)
    same = _same_class(la, tf.convert_to_tensor(other_labels), ids=la.shape.rank < ax.shape.rank)
    return _semi_hard_from_masks(_distances(ax, oy), same, tf.logical_not(same), margins)


def batched_masked_triplet_loss(anchor_labels, anchor_emb, cand_labels, cand_emb, keep, margins=1.0):
    """Semi-hard triplet loss from anchor sets to candidate sets where ``keep`` (..., Na, Nc) bool says which
    candidates take part for each anchor (positives and negatives alike): the cross-batch memory's body.

    With ``keep`` everything but the diagonal and the candidates the anchors themselves, this is
    :func:`batched_semi_hard_triplet_loss`; with ``keep`` all true, :func:`batched_cross_triplet_loss`.
    """
    ax = _as_float(anchor_emb)
    cy = tf.cast(_as_float(cand_emb), ax.dtype)
    la = tf.convert_to_tensor(anchor_labels)
    same = _same_class(la, tf.convert_to_tensor(cand_labels), ids=la.shape.rank < ax.shape.rank)
    return _semi_hard_from_masks(_distances(ax, cy), tf.logical_and(same, keep),
                                 tf.logical_and(tf.logical_not(same), keep), margins)


def semi_hard_triplet_loss(labels, embeddings, margin=1.0):
    """Semi-hard triplet loss within one set of embeddings (the intra-modal term of eq. 3.1.6).

    Args:
      labels: (N,) class ids, a (N, 1) column, or (N, C) multi-hot rows.
      embeddings: (N, D) float embeddings; they need not be normalised.
      margin: the hinge margin (1.0, TF-Addons' default; training takes ``LossConfig.margins``).

    Returns:
      A float32 scalar: the mean over (anchor, positive) pairs, anchor != positive, of
      ``max(d_ap - d_an + margin, 0)`` with ``d_an`` the semi-hard negative (module docstring).
      Equals ``tfa.losses.TripletSemiHardLoss(margin, distance_metric="squared-L2")``.

    Edge cases (each returns a finite value):
      * anchors without a positive contribute nothing (they are not pairs);
      * no (anchor, positive) pair at all — batch of size 0 or 1, or every label distinct — → 0
        (TF-Addons: NaN);
      * an anchor without a negative (e.g. a single-class batch) uses ``d_an = 0``, i.e.
        ``d_ap + margin`` per pair, as TF-Addons does;
      * anchors with positives but no negative farther than the positive fall back to their
        farthest negative.
    """
    emb = _check_embeddings(embeddings, "embeddings")
    return batched_semi_hard_triplet_loss(_normalise_labels(labels, "labels"), emb, margin)


def cross_triplet_loss(anchor_labels, anchor_emb, other_labels, other_emb, margin=1.0):
    """Semi-hard triplet loss with anchors from one set and positives and negatives from another.

    This is the inter-modal term ``inter(x -> y)`` of eq. 3.1.6: anchors are the rows of
    ``anchor_emb`` (modality x); positives and negatives are rows of ``other_emb`` (modality y),
    mined with the same rule as :func:`semi_hard_triplet_loss`. Every (anchor, same-class item
    of y) pair counts, including an item paired with the anchor by instance.

    Returns a float32 scalar; with no (anchor, positive) pair (no class in common, an empty set)
    it is 0; an anchor without a negative in y uses ``d_an = 0`` (``d_ap + margin`` per pair).
    """
    return batched_cross_triplet_loss(*check_sets(anchor_labels, anchor_emb, other_labels, other_emb), margin)


def check_sets(labels_a, emb_a, labels_b, emb_b):
    """Two (labels, (N, D) embeddings) sets checked and normalised for a cross-set loss: ``(la, ea, lb, eb)``."""
    ea = _check_embeddings(emb_a, "anchor_emb")
    eb = _check_embeddings(emb_b, "other_emb")
    if ea.shape[-1] is not None and eb.shape[-1] is not None and ea.shape[-1] != eb.shape[-1]:
        raise ValueError(
            f"anchor_emb and other_emb must have the same dimension; got {ea.shape[-1]} and {eb.shape[-1]}"
        )
    la, lb = _labels_pair(labels_a, labels_b)
    return la, ea, lb, eb
