"""Classical cross-modal baselines (regularised CCA, label-space logistic regression, chance) as mAP@K tables.

Hyper-parameters are chosen on the ``val`` split (carved from train) with the same K; the test
split is touched only for the final numbers.

* ``cca`` -- closed-form regularised CCA for each modality pair, fit on train. With centred
  features, ``C_aa + lambda * (tr(C_aa)/d_a) * I`` (the ridge is relative to the mean variance,
  so it is scale-free), whitening ``W_a = C_aa^{-1/2}``, SVD of ``W_a C_ab W_b = U S V^T``;
  the projections are ``W_a U_k`` and ``W_b V_k``, and each projected item is weighted by the
  canonical correlations ``S_k`` before cosine retrieval. ``lambda`` and ``k`` are chosen per
  pair on the val split (mean of both directions). Instance-paired sets use the true pairs.
  Class-paired sets (Digits-10) have none: there each class's items of the two modalities are
  paired by class-aligned sampling (every item of the larger side once, the smaller side
  cycled in a seeded random order), the same thing the models' class-aligned batches do.
  Both directions of a pair (a->b and b->a) use the same CCA. Instance-paired sets also get the
  instance level (:func:`cca_recall`): R@1/5/10 and median rank on test, with ``lambda`` and
  ``k`` chosen per pair on val by the rsum (R@1 + R@5 + R@10 of both directions).
* ``label`` -- label-space baseline: per modality, standardise, multinomial logistic
  regression (lbfgs, at most 1000 iterations, one warm-started path over ``C``) with ``C``
  chosen on val accuracy (ties: val log-loss), fit on train; items are retrieved by the cosine
  of their predicted class distributions.
* ``posterior`` -- the posterior product: per modality, a pipeline of standardisation (train
  statistics) and logistic regression (lbfgs; one-vs-rest for multi-hot labels) whose ``C`` is
  chosen from :data:`POSTERIOR_CS` by stratified k-fold cross-validation **on train only**
  (mean validation-fold log-loss; ties: the smaller ``C``); the model refitted on all of train
  gives every split's class-posterior vectors, and items are retrieved by the dot product of
  the query's and the candidate's posteriors (instance level: :func:`posterior_recall`).

For instance-paired sets the ``posterior`` and ``cca`` tables carry their test recall record
``{query: {retrieval: {"1", "5", "10", "median_rank"}}}`` in ``df.attrs["recall"]``.
:func:`baseline_validation_scores` gives each baseline's overall val mAP@K without reading test.
* ``chance`` -- the exact expected mAP@K of a uniformly random ranking
  (:func:`cvs_tf.evaluation.metrics.chance_map_at_k`).

:func:`run` loads a dataset and computes the requested tables; ``python -m experiments.baselines``
is the command line that prints, writes and publishes them.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np

from cvs_tf.data.registry import load_dataset
from cvs_tf.data.store import SPLITS, FeatureSet, order_modalities
from cvs_tf.evaluation.metrics import (
    RECALL_KS,
    chance_map_at_k,
    map_at_k,
    map_at_k_from_scores,
    normalize_k,
    recall_at_k,
    recall_at_k_from_scores,
)
from cvs_tf.evaluation.table import cross_modal_table, table_from_matrix

K = 50  # the default cut-off (mAP@50)
CCA_LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
CCA_DIMS = (4, 8, 16, 32, 64, 128)
LR_CS = (0.001, 0.01, 0.1, 1.0, 10.0)
LR_MAX_ITER = 1000
POSTERIOR_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
POSTERIOR_FOLDS = 5

Log = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


def single_threaded(fn):
    """Run ``fn`` with one BLAS/OpenMP thread: these fits are small, and several BLAS thread pools
    (numpy's, scikit-learn's, TensorFlow's) contending for a few cores made them ~50x slower."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return fn(*args, **kwargs)
    return wrapper


# --------------------------------------------------------------------------- CCA


class View:
    """One modality's training statistics: mean and the non-null eigenpairs of its covariance.

    Only the subspace the training items span matters: paired rows lie in it, so the
    cross-covariance vanishes outside it and CCA there is exact and costs O(rank^3), not O(d^3).
    """

    def __init__(self, x: np.ndarray):
        x = np.asarray(x, np.float64)
        self.mu = x.mean(0)
        c = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
        w, v = np.linalg.eigh(c)
        keep = w > max(float(w.max(initial=0.0)), 1e-300) * 1e-10
        self.w, self.v = w[keep], v[:, keep]
        self.scale = float(np.trace(c)) / len(c) + 1e-12

    def whiten(self, lam: float) -> np.ndarray:
        """(d, r): ``V_r (W_r + lam * mean_variance)^{-1/2}``, the ridge-whitening on the data subspace."""
        return self.v / np.sqrt(self.w + lam * self.scale)


class PairCCA:
    """Regularised CCA between two views for one ridge ``lam``; ``project`` keeps the top ``k``.

    With whitenings ``W_a``, ``W_b`` (:meth:`View.whiten`) the canonical pairs are the singular
    vectors of ``W_a^T C_ab W_b = U S V^T``; the projections are ``W_a U`` and ``W_b V``.
    """

    def __init__(self, va: View, vb: View, pa: np.ndarray, pb: np.ndarray, lam: float):
        """``va``/``vb``: each view's own training statistics; ``pa``/``pb``: the paired rows."""
        self.mu_a, self.mu_b = va.mu, vb.mu
        wa, wb = va.whiten(lam), vb.whiten(lam)
        ga = (np.asarray(pa, np.float64) - va.mu) @ wa
        gb = (np.asarray(pb, np.float64) - vb.mu) @ wb
        u, s, vt = np.linalg.svd(ga.T @ gb / max(1, len(ga) - 1), full_matrices=False)
        self.proj_a, self.proj_b, self.corr = wa @ u, wb @ vt.T, s

    def project(self, x: np.ndarray, side: str, k: int) -> np.ndarray:
        k = min(k, len(self.corr))
        mu, p = (self.mu_a, self.proj_a) if side == "a" else (self.mu_b, self.proj_b)
        return ((np.asarray(x, np.float64) - mu) @ p[:, :k]) * self.corr[:k]


def class_aligned_pairs(ya: np.ndarray, yb: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (ia, ib) pairing items of the same class: each item of the larger side once,
    the smaller side cycled in a seeded random order. Classes missing on either side are skipped."""
    rng = np.random.default_rng(seed)
    ia, ib = [], []
    for c in np.intersect1d(ya, yb):
        a, b = np.flatnonzero(ya == c), np.flatnonzero(yb == c)
        n = max(len(a), len(b))
        a = np.resize(rng.permutation(a), n) if len(a) < n else a
        b = np.resize(rng.permutation(b), n) if len(b) < n else b
        ia.append(a)
        ib.append(b)
    return np.concatenate(ia), np.concatenate(ib)


def _pairs(fs: FeatureSet, a: str, b: str, seed: int):
    """Paired training rows of modalities a and b: the true pairs, or class-aligned pseudo-pairs."""
    xa, xb = np.asarray(fs.x(a, "train"), np.float64), np.asarray(fs.x(b, "train"), np.float64)
    if fs.paired:
        return xa, xb
    ia, ib = class_aligned_pairs(np.asarray(fs.y(a, "train")), np.asarray(fs.y(b, "train")), seed)
    return xa[ia], xb[ib]


def _both_directions(cca: PairCCA, fs: FeatureSet, a: str, b: str, split: str, dims: int,
                     k=K) -> tuple[float, float]:
    za, zb = cca.project(fs.x(a, split), "a", dims), cca.project(fs.x(b, split), "b", dims)
    ya, yb = fs.y(a, split), fs.y(b, split)
    return map_at_k(za, zb, ya, yb, k), map_at_k(zb, za, yb, ya, k)


def _metric(k) -> str:
    return f"mAP@{'all' if k is None else k}"


def _best_cca(fs: FeatureSet, views: dict, a: str, b: str, seed: int, k, criterion=None):
    """(val score, lambda, dims, fitted CCA) of the best grid point for the pair a-b on val; the
    score is ``criterion(cca, dims)``, by default the val mAP@k averaged over both directions."""
    if criterion is None:
        criterion = lambda cca, dims: float(np.mean(_both_directions(cca, fs, a, b, "val", dims, k)))  # noqa: E731
    pa, pb = _pairs(fs, a, b, seed)
    best = None
    for lam in CCA_LAMBDAS:
        cca = PairCCA(views[a], views[b], pa, pb, lam)
        for dims in CCA_DIMS:
            if dims > len(cca.corr) and dims != CCA_DIMS[0]:
                continue
            val = criterion(cca, dims)
            if best is None or val > best[0] + 1e-12:
                best = (val, lam, dims, cca)
    return best


def _pair_recall(cca: PairCCA, fs: FeatureSet, a: str, b: str, split: str, dims: int) -> tuple[dict, dict]:
    za, zb = cca.project(fs.x(a, split), "a", dims), cca.project(fs.x(b, split), "b", dims)
    return recall_at_k(za, zb), recall_at_k(zb, za)


def rsum(*records: dict) -> float:
    """Sum of R@1, R@5 and R@10 over recall records (both directions: the usual "rsum" criterion)."""
    return float(sum(rec[str(k)] for rec in records for k in RECALL_KS))


def _require_paired(fs: FeatureSet) -> None:
    if not fs.paired:
        raise ValueError(f"{fs.name} is class-paired: instance-level recall needs instance-paired items")


def cca_recall(fs: FeatureSet, modalities: list[str], seed: int = 0, log: Log = _quiet) -> tuple[dict, dict]:
    """Instance-level CCA on test, ``({query: {retrieval: recall record}}, chosen per pair)``.

    Per pair, ``lambda`` and the number of components are chosen on val by the rsum (R@1 + R@5 +
    R@10 of both directions), the usual selection criterion for instance retrieval."""
    _require_paired(fs)
    views = {m: View(fs.x(m, "train")) for m in modalities}
    record, chosen = {m: {} for m in modalities}, {}
    for a, b in combinations(modalities, 2):
        score = lambda cca, dims, a=a, b=b: rsum(*_pair_recall(cca, fs, a, b, "val", dims))  # noqa: E731
        val, lam, dims, cca = _best_cca(fs, views, a, b, seed, None, criterion=score)
        record[a][b], record[b][a] = _pair_recall(cca, fs, a, b, "test", dims)
        chosen[f"{a}-{b} (R@K)"] = {"lambda": lam, "k": min(dims, len(cca.corr)), "val_rsum": round(val, 4)}
        log(f"  cca {a}-{b} (instance level): lambda={lam:g} k={min(dims, len(cca.corr))} (val rsum {val:.3f})")
    return {q: {r: record[q][r] for r in modalities if r != q} for q in modalities}, chosen


def cca_table(fs: FeatureSet, modalities: list[str], seed: int = 0, log: Log = _quiet, k=K):
    """CCA mAP@K on test for every ordered pair; (table, chosen hyper-parameters per pair).

    ``lambda`` and the number of components are chosen on val with the same K."""
    k = normalize_k(k)
    idx = {m: i for i, m in enumerate(modalities)}
    values = np.full((len(modalities), len(modalities)), np.nan)
    chosen = {}
    views = {m: View(fs.x(m, "train")) for m in modalities}
    for a, b in combinations(modalities, 2):
        val, lam, dims, cca = _best_cca(fs, views, a, b, seed, k)
        ab, ba = _both_directions(cca, fs, a, b, "test", dims, k)
        values[idx[a], idx[b]], values[idx[b], idx[a]] = ab, ba
        chosen[f"{a}-{b}"] = {"lambda": lam, "k": min(dims, len(cca.corr)), "val_map": round(val, 4)}
        log(f"  cca {a}-{b}: lambda={lam:g} k={min(dims, len(cca.corr))} (val {_metric(k)} {val:.3f})")
    df = _table(values, modalities, fs, "CCA (ridge and dimension chosen on val)", k)
    if fs.paired:
        df.attrs["recall"], picks = cca_recall(fs, modalities, seed, log)
        chosen.update(picks)
    return df, chosen


# --------------------------------------------------------------------------- label space


def _fit_label_model(xtr, ytr, xva, yva, classes):
    """The logistic regression of the best C on val: ((val accuracy, -val log-loss), C, model)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    best = None
    # one regularisation path, weakest C last, each fit warm-started from the previous one
    clf = LogisticRegression(max_iter=LR_MAX_ITER, warm_start=True)
    for c in LR_CS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.set_params(C=c).fit(xtr, ytr)
        if len(yva):
            p = _full_proba(clf, xva, classes)
            key = (float(np.mean(p.argmax(1) == yva)), -log_loss(yva, p, labels=classes))
        else:
            key = (0.0, 0.0)
        if best is None or key > best[0]:
            best = (key, c, copy.deepcopy(clf))
    return best


def label_embeddings(fs: FeatureSet, modalities: list[str], log: Log = _quiet, split: str = "test"):
    """Per modality: predicted class distributions on ``split`` (with its labels), and the chosen C."""
    from sklearn.preprocessing import StandardScaler

    out, chosen = {}, {}
    classes = np.arange(fs.num_classes)
    for m in modalities:
        xtr, ytr = np.asarray(fs.x(m, "train"), np.float64), np.asarray(fs.y(m, "train"))
        scaler = StandardScaler().fit(xtr)
        xva, yva = scaler.transform(np.asarray(fs.x(m, "val"), np.float64)), np.asarray(fs.y(m, "val"))
        (acc, nll), c, clf = _fit_label_model(scaler.transform(xtr), ytr, xva, yva, classes)
        xs = scaler.transform(np.asarray(fs.x(m, split), np.float64))
        out[m] = (_full_proba(clf, xs, classes), np.asarray(fs.y(m, split)))
        chosen[m] = {"C": c, "val_accuracy": round(acc, 4), "val_log_loss": round(-nll, 4)}
        log(f"  label {m}: C={c:g} (val accuracy {acc:.3f})")
    return out, chosen


def _full_proba(clf, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class probabilities over every class (a class absent from train gets probability 0)."""
    p = np.zeros((len(x), len(classes)))
    p[:, clf.classes_] = clf.predict_proba(x)
    return p


def label_table(fs: FeatureSet, modalities: list[str], log: Log = _quiet, k=K):
    emb, chosen = label_embeddings(fs, modalities, log)
    df = cross_modal_table(emb, "test", k, modalities=modalities, data_label=fs.data_label)
    df.attrs["title"] = f"Label-space baseline (logistic regression) — {df.attrs['title']}"
    return df, chosen


# --------------------------------------------------------------------------- posterior product


def _mean_binary_log_loss(estimator, x, y) -> float:
    """Scorer for multi-hot labels: minus the mean per-class binary log-loss."""
    p = np.clip(estimator.predict_proba(x), 1e-15, 1 - 1e-15)
    return float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _posterior_search(y: np.ndarray, folds: int, seed: int):
    """The (unfitted) cross-validated search over ``C`` for labels ``y`` (train only)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    lr = LogisticRegression(max_iter=LR_MAX_ITER)
    if y.ndim == 2:
        model, grid, scoring = OneVsRestClassifier(lr), "clf__estimator__C", _mean_binary_log_loss
        n = min(folds, len(y))
        cv = KFold(n, shuffle=True, random_state=seed) if n >= 2 else None
    else:
        model, grid, scoring = lr, "clf__C", "neg_log_loss"
        counts = np.bincount(y)
        n = min(folds, int(counts[counts > 0].min()))
        cv = StratifiedKFold(n, shuffle=True, random_state=seed) if n >= 2 else None
    pipe = Pipeline([("scale", StandardScaler()), ("clf", model)])
    if cv is None:  # too few items per class to cross-validate: the default C
        return pipe, grid, None
    return GridSearchCV(pipe, {grid: list(POSTERIOR_CS)}, scoring=scoring, cv=cv, refit=True), grid, n


@single_threaded
def posterior_models(fs: FeatureSet, modalities: Sequence[str], *, folds: int = POSTERIOR_FOLDS, seed: int = 0,
                     log: Log = _quiet) -> tuple[dict, dict]:
    """Per modality, the fitted standardise + logistic-regression pipeline of the ``posterior``
    baseline and what was chosen: ``{m: {"C", "folds", "cv_log_loss"}}``. Reads train only."""
    from sklearn.exceptions import ConvergenceWarning

    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    models, chosen = {}, {}
    for m in modalities:
        x, y = np.asarray(fs.x(m, "train"), np.float64), np.asarray(fs.y(m, "train"))
        search, grid, n = _posterior_search(y, int(folds), seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(x, y)
        if n is None:
            models[m], c, loss = search, 1.0, float("nan")
        else:
            models[m], c, loss = search.best_estimator_, float(search.best_params_[grid]), -float(search.best_score_)
        chosen[m] = {"C": c, "folds": n, "cv_log_loss": round(loss, 4)}
        log(f"  posterior {m}: C={c:g} ({n}-fold CV on train, log-loss {loss:.3f})")
    return models, chosen


def _posteriors(model, x: np.ndarray, fs: FeatureSet) -> np.ndarray:
    """Class posteriors over every class of ``fs`` (a class absent from train gets 0)."""
    x = np.asarray(x, np.float64)
    if fs.label_kind != "single":
        return model.predict_proba(x)
    return _full_proba(model, x, np.arange(fs.num_classes))


def posterior_embeddings(fs: FeatureSet, modalities: Sequence[str], *, folds: int = POSTERIOR_FOLDS, seed: int = 0,
                         log: Log = _quiet, splits: Sequence[str] = SPLITS) -> dict[str, dict[str, np.ndarray]]:
    """``{modality: {split: (N, C) class posteriors}}`` of the ``posterior`` baseline.

    ``C`` is chosen by stratified ``folds``-fold cross-validation on train only
    (:func:`posterior_models`); only the listed ``splits`` are read. Retrieval ranks candidates
    by the dot product of posteriors (:func:`posterior_scores`)."""
    models, _ = posterior_models(fs, modalities, folds=folds, seed=seed, log=log)
    return {m: {s: _posteriors(models[m], fs.x(m, s), fs) for s in splits if fs.count(m, s) > 0}
            for m in modalities}


def posterior_scores(pq: np.ndarray, pr: np.ndarray) -> np.ndarray:
    """The posterior product: (N_q, N_r) dot products of class-posterior vectors."""
    return np.asarray(pq, np.float64) @ np.asarray(pr, np.float64).T


def _posterior_matrix(post: dict, fs: FeatureSet, modalities: list[str], split: str, k) -> np.ndarray:
    values = np.full((len(modalities), len(modalities)), np.nan)
    for i, q in enumerate(modalities):
        for j, r in enumerate(modalities):
            if i != j:
                values[i, j] = map_at_k_from_scores(posterior_scores(post[q][split], post[r][split]),
                                                    fs.y(q, split), fs.y(r, split), k)
    return values


def posterior_table(fs: FeatureSet, modalities: list[str], seed: int = 0, log: Log = _quiet, k=K):
    """Posterior-product mAP@K on test for every ordered pair; (table, chosen C per modality)."""
    k = normalize_k(k)
    models, chosen = posterior_models(fs, modalities, seed=seed, log=log)
    post = {m: {"test": _posteriors(models[m], fs.x(m, "test"), fs)} for m in modalities}
    values = _posterior_matrix(post, fs, modalities, "test", k)
    df = _table(values, modalities, fs, "Posterior product (logistic regression, C by CV on train)", k)
    if fs.paired:
        df.attrs["recall"] = posterior_recall(post, modalities, "test")
    return df, chosen


def posterior_recall(post: dict, modalities: list[str], split: str = "test") -> dict:
    """Instance-level posterior product: ``{query: {retrieval: recall record}}`` from
    ``{modality: {split: posteriors}}`` of an instance-paired set."""
    return {q: {r: recall_at_k_from_scores(posterior_scores(post[q][split], post[r][split]))
                for r in modalities if r != q} for q in modalities}


# --------------------------------------------------------------------------- chance


def chance_table(fs: FeatureSet, modalities: list[str], k=K):
    k = normalize_k(k)
    values = np.full((len(modalities), len(modalities)), np.nan)
    for i, q in enumerate(modalities):
        for j, r in enumerate(modalities):
            if i != j:
                values[i, j] = chance_map_at_k(fs.y(q, "test"), fs.y(r, "test"), k)
    return _table(values, modalities, fs, "Chance (expected under random ranking)", k)


def _table(values: np.ndarray, modalities: list[str], fs: FeatureSet, name: str, k=K):
    df = table_from_matrix(values, list(modalities), proto="independent", split="test", k=k,
                           data_label=fs.data_label, fallback=[])
    df.attrs["title"] = f"{name} — {df.attrs['title']}"
    return df


# --------------------------------------------------------------------------- all of them


def _cca(fs, mods, seed, log, k):
    return cca_table(fs, mods, seed, log, k)


def _label(fs, mods, seed, log, k):
    return label_table(fs, mods, log, k)


def _posterior(fs, mods, seed, log, k):
    return posterior_table(fs, mods, seed, log, k)


def _chance(fs, mods, seed, log, k):
    return chance_table(fs, mods, k), {}


COMPUTE = {"posterior": _posterior, "cca": _cca, "label": _label, "chance": _chance}  # name -> (fs, mods, seed, log, k) -> (table, chosen)
BASELINES = tuple(COMPUTE)


@single_threaded
def baseline_validation_scores(fs: FeatureSet, modalities: Sequence[str] | None = None, *, k=K,
                               seed: int = 0) -> dict[str, float]:
    """Each baseline's overall validation mAP@K (mean over the ordered modality pairs), computed
    from train and val only: what a recipe search can show beside its choice. Keys: ``posterior``,
    ``cca``, ``label``, ``chance``. (``cca`` and ``label`` choose their settings on val, so their
    val scores are optimistic; ``posterior`` chooses on train folds.)"""
    k = normalize_k(k)
    mods = check_modalities(fs, modalities)
    models, _ = posterior_models(fs, mods, seed=seed)
    post = {m: {"val": _posteriors(models[m], fs.x(m, "val"), fs)} for m in mods}
    off = ~np.eye(len(mods), dtype=bool)
    views = {m: View(fs.x(m, "train")) for m in mods}
    label = cross_modal_table(label_embeddings(fs, mods, split="val")[0], "val", k, modalities=mods)
    chance = [chance_map_at_k(fs.y(q, "val"), fs.y(r, "val"), k) for q in mods for r in mods if q != r]
    return {
        "posterior": float(_posterior_matrix(post, fs, mods, "val", k)[off].mean()),
        "cca": float(np.mean([_best_cca(fs, views, a, b, seed, k)[0] for a, b in combinations(mods, 2)])),
        "label": float(label.attrs["overall_mean"]),
        "chance": float(np.mean(chance)),
    }


def strongest_baseline(scores: dict[str, float]) -> tuple[str, float]:
    """(name, score) of the best learned baseline in ``{name: score}`` (chance excluded)."""
    learned = {b: v for b, v in scores.items() if b != "chance"}
    name = max(learned, key=lambda b: learned[b])
    return name, learned[name]


#: What tables and the demo call each baseline.
BASELINE_LABELS = {"posterior": "posterior product", "cca": "CCA (tuned)", "label": "label-space", "chance": "chance"}


def recall_means(record: dict) -> dict[str, float]:
    """Means over the ordered pairs of a recall record: ``{"1", "5", "10", "median_rank"}``."""
    recs = [rec for per in record.values() for rec in per.values()]
    return {key: float(np.mean([rec[key] for rec in recs])) for key in recs[0]}


def strongest_summary(tables: dict, ours: dict[str, float] | None = None,
                      ours_recall: dict[str, dict] | None = None) -> list[str]:
    """Lines naming the strongest baseline in ``tables`` (test overall mAP; for instance-paired
    sets also the best mean rsum over pairs) and, given ``ours`` ``{method: overall mAP}`` /
    ``ours_recall`` ``{method: recall record}``, each method's margin over it."""
    overall = {b: float(df.attrs["overall_mean"]) for b, df in tables.items()}
    name, value = strongest_baseline(overall)
    metric = next(iter(tables.values())).attrs["metric"]
    lines = [f"strongest baseline, class level (overall {metric}): {BASELINE_LABELS.get(name, name)} {value:.3f}"]
    lines += [f"  {m}: {v:.3f} ({v - value:+.3f} over {BASELINE_LABELS.get(name, name)})" for m, v in (ours or {}).items()]
    recalls = {b: recall_means(df.attrs["recall"]) for b, df in tables.items() if "recall" in df.attrs}
    if recalls:
        best = max(recalls, key=lambda b: rsum(recalls[b]))
        r = recalls[best]
        lines.append(f"strongest baseline, instance level (mean over pairs, by R@1+R@5+R@10): "
                     f"{BASELINE_LABELS.get(best, best)} R@1 {r['1']:.3f}, R@5 {r['5']:.3f}, R@10 {r['10']:.3f}")
        for m, rec in (ours_recall or {}).items():
            o = recall_means(rec)
            lines.append(f"  {m}: R@1 {o['1']:.3f} ({o['1'] - r['1']:+.3f}), R@5 {o['5']:.3f} ({o['5'] - r['5']:+.3f}), "
                         f"R@10 {o['10']:.3f} ({o['10'] - r['10']:+.3f})")
    return lines


def check_modalities(fs: FeatureSet, modalities: Sequence[str] | None = None) -> list[str]:
    """The modalities to compare (default all), in canonical order; ValueError when the set cannot
    give baselines (fewer than two modalities, multi-hot labels, a modality without val items)."""
    mods = list(modalities) if modalities else fs.modalities
    if len(set(mods)) != len(mods):
        raise ValueError(f"modalities: listed twice: {','.join(mods)}")
    mods = order_modalities(mods)  # the tables' canonical row/column order
    for m in mods:
        if m not in fs.modalities:
            raise ValueError(f"{fs.name}: no modality {m!r} (has {', '.join(fs.modalities)})")
    if len(mods) < 2:
        raise ValueError("baselines need at least two modalities")
    if fs.label_kind != "single":
        raise ValueError(f"{fs.name}: the baselines support single-label data only")
    for m in mods:
        if fs.count(m, "val") == 0:
            raise ValueError(f"{fs.name}: modality {m!r} has no val items to choose hyper-parameters on")
    return mods


@single_threaded
def baseline_tables(fs: FeatureSet, baselines: Sequence[str] | None = None, *, modalities=None, seed: int = 0,
                    k=K, log: Log = _quiet) -> tuple[dict, dict]:
    """The requested baseline tables of ``fs`` (default all of :data:`BASELINES`) at cut-off ``k``:
    (tables, chosen hyper-parameters)."""
    k = normalize_k(k)
    baselines = BASELINES if baselines is None else tuple(baselines)
    unknown = [b for b in baselines if b not in COMPUTE]
    if unknown:
        raise ValueError(f"unknown baselines {unknown} (choose from {', '.join(BASELINES)})")
    mods = check_modalities(fs, modalities)
    tables, chosen = {}, {}
    for b in baselines:
        log(f"{fs.name}: {b}")
        tables[b], chosen[b] = COMPUTE[b](fs, mods, seed, log, k)
    return tables, chosen


def run(dataset: str, baselines: Sequence[str] | None = None, *, modalities=None, seed: int = 0,
        k=K, log: Log = _quiet) -> tuple[FeatureSet, dict, dict]:
    """Load ``dataset`` (a name or directory) and compute the requested baseline tables at cut-off
    ``k`` (int, or None / "all" for mAP@all); returns (feature set, tables, chosen hyper-parameters)."""
    k = normalize_k(k)
    fs = load_dataset(dataset)
    tables, chosen = baseline_tables(fs, baselines, modalities=modalities, seed=seed, k=k, log=log)
    return fs, tables, chosen
