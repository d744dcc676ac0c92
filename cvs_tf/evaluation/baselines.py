"""Classical cross-modal baselines (posterior product, regularised CCA, label space, chance) as mAP@K and R@K tables.

Every setting is chosen without reading test: on the ``val`` split (carved from train) with the
same K, or by cross-validation on train; the test split is touched only for the final numbers.

* ``posterior`` -- the posterior product (:mod:`cvs_tf.evaluation.posterior`): per-modality
  logistic regression on standardised features, ``C`` by stratified 5-fold CV on train only;
  items are retrieved by the dot product of their class posteriors.
* ``cca`` -- regularised CCA for each modality pair (:mod:`cvs_tf.evaluation.cca`), fit on
  train, ridge and dimension chosen per pair on val (mean of both directions); both directions
  of a pair use the same CCA. Class-paired sets (Digits-10) have no true pairs: each class's
  items of the two modalities are paired by class-aligned sampling, as the models' batches are.
* ``label`` -- label-space baseline: per modality, standardise, multinomial logistic
  regression (lbfgs, at most 1000 iterations, one warm-started path over ``C``) with ``C``
  chosen on val accuracy (ties: val log-loss), fit on train; items are retrieved by the cosine
  of their predicted class distributions.
* ``chance`` -- the exact expected mAP@K of a uniformly random ranking
  (:func:`cvs_tf.evaluation.metrics.chance_map_at_k`).

For instance-paired sets the ``posterior`` and ``cca`` tables carry their test recall record
``{query: {retrieval: {"1", "5", "10", "median_rank"}}}`` in ``df.attrs["recall"]`` (CCA's ridge
and dimension then chosen again on val by the rsum, R@1 + R@5 + R@10 of both directions).
:func:`baseline_validation_scores` gives each baseline's overall val mAP@K without reading test;
:func:`strongest_summary` names the strongest baseline and a method's margin over it.

:func:`run` loads a dataset and computes the requested tables; ``python -m experiments.baselines``
is the command line that prints, writes and publishes them.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np

from cvs_tf.data.registry import load_dataset
from cvs_tf.data.store import FeatureSet, order_modalities
from cvs_tf.evaluation.cca import (  # noqa: F401 (re-exported: the CCA baseline's parts)
    CCA_DIMS,
    CCA_LAMBDAS,
    PairCCA,
    View,
    best_cca,
    both_directions,
    cca_recall,
    class_aligned_pairs,
    rsum,
)
from cvs_tf.evaluation.metrics import chance_map_at_k, map_at_k_from_scores, normalize_k
from cvs_tf.evaluation.posterior import (  # noqa: F401 (re-exported: the posterior baseline's parts)
    LR_MAX_ITER,
    POSTERIOR_CS,
    POSTERIOR_FOLDS,
    _full_proba,
    _posteriors,
    posterior_embeddings,
    posterior_models,
    posterior_recall,
    posterior_scores,
    single_threaded,
)
from cvs_tf.evaluation.table import cross_modal_table, table_from_matrix

K = 50  # the default cut-off (mAP@50)
LR_CS = (0.001, 0.01, 0.1, 1.0, 10.0)

Log = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


# --------------------------------------------------------------------------- CCA


def _metric(k) -> str:
    return f"mAP@{'all' if k is None else k}"


def cca_table(fs: FeatureSet, modalities: list[str], seed: int = 0, log: Log = _quiet, k=K):
    """CCA mAP@K on test for every ordered pair; (table, chosen hyper-parameters per pair).

    ``lambda`` and the number of components are chosen on val with the same K."""
    k = normalize_k(k)
    idx = {m: i for i, m in enumerate(modalities)}
    values = np.full((len(modalities), len(modalities)), np.nan)
    chosen = {}
    views = {m: View(fs.x(m, "train")) for m in modalities}
    for a, b in combinations(modalities, 2):
        val, lam, dims, cca = best_cca(fs, views, a, b, seed, k)
        ab, ba = both_directions(cca, fs, a, b, "test", dims, k)
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


def label_table(fs: FeatureSet, modalities: list[str], log: Log = _quiet, k=K):
    emb, chosen = label_embeddings(fs, modalities, log)
    df = cross_modal_table(emb, "test", k, modalities=modalities, data_label=fs.data_label)
    df.attrs["title"] = f"Label-space baseline (logistic regression) — {df.attrs['title']}"
    return df, chosen


# --------------------------------------------------------------------------- posterior product


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
        "cca": float(np.mean([best_cca(fs, views, a, b, seed, k)[0] for a, b in combinations(mods, 2)])),
        "label": float(label.attrs["overall_mean"]),
        "chance": float(np.mean(chance)),
    }


def strongest_baseline(scores: dict[str, float]) -> tuple[str, float]:
    """(name, score) of the best learned baseline in ``{name: score}`` (chance excluded)."""
    learned = {b: v for b, v in scores.items() if b != "chance"}
    if not learned:
        raise ValueError("no learned baseline to compare with (only chance)")
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
    if not any(b != "chance" for b in overall):
        return []
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
