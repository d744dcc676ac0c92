"""The ``posterior`` baseline: per-modality class posteriors, compared by their dot product (the "posterior product").

Per modality, a pipeline of standardisation (train statistics) and logistic regression (lbfgs;
one-vs-rest for multi-hot labels) whose ``C`` is chosen from :data:`POSTERIOR_CS` by stratified
k-fold cross-validation **on train only** (mean validation-fold log-loss; ties: the smaller
``C``; fewer items per class than folds: fewer folds). The model refitted on all of train gives
every split's class-posterior vectors; items are retrieved by the dot product of the query's
and the candidate's posteriors (:func:`posterior_scores`, :func:`posterior_recall`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from cvs_tf.data.store import SPLITS, FeatureSet
from cvs_tf.evaluation.metrics import recall_at_k_from_scores

__all__ = ["POSTERIOR_CS", "POSTERIOR_FOLDS", "posterior_models", "posterior_embeddings", "posterior_scores",
           "posterior_recall", "single_threaded"]

POSTERIOR_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
POSTERIOR_FOLDS = 5
LR_MAX_ITER = 1000


def single_threaded(fn):
    """Run ``fn`` with one BLAS/OpenMP thread: these fits are small, and several BLAS thread pools
    (numpy's, scikit-learn's, TensorFlow's) contending for a few cores made them ~50x slower."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return fn(*args, **kwargs)
    return wrapper


def _full_proba(clf, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class probabilities over every class (a class absent from train gets probability 0)."""
    p = np.zeros((len(x), len(classes)))
    p[:, clf.classes_] = clf.predict_proba(x)
    return p


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
                     log: Callable[[str], None] = lambda _m: None) -> tuple[dict, dict]:
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
                         log: Callable[[str], None] = lambda _m: None, splits: Sequence[str] = SPLITS) -> dict[str, dict[str, np.ndarray]]:
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


def posterior_recall(post: dict, modalities: list[str], split: str = "test") -> dict:
    """Instance-level posterior product: ``{query: {retrieval: recall record}}`` from
    ``{modality: {split: posteriors}}`` of an instance-paired set."""
    return {q: {r: recall_at_k_from_scores(posterior_scores(post[q][split], post[r][split]))
                for r in modalities if r != q} for q in modalities}
