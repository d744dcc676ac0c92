"""Naive numpy references (plain loops over one pair of sets) for the supcon, infonce, dscmr and max_violation kinds."""

import numpy as np

OPTIONS = {"gammas": (0.25, 0.25, 0.5), "temperature": 0.5, "invariance": 0.7, "vse_margin": 0.2}


def unit(a):
    """Rows of ``a`` scaled to unit length (float32)."""
    a = np.asarray(a, np.float64)
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)


def same(li, lj):
    """Two labels share a class: equal ids, or multi-hot rows with a common 1."""
    li, lj = np.asarray(li), np.asarray(lj)
    return bool(np.dot(li, lj) > 0) if li.ndim else bool(li == lj)


def random_batch(seed, p=2, b=5, d=3, classes=3, multi_hot=False):
    """(yx, ex, yy, ey) of P stacked pairs of random labels (anchors may lack a positive or a negative)."""
    rng = np.random.default_rng(seed)
    if multi_hot:
        yx, yy = ((rng.random((2, p, b, classes)) < 0.35).astype(np.float32))
    else:
        yx, yy = rng.integers(0, classes, (p, b)), rng.integers(0, classes, (p, b))
    return yx, unit(rng.normal(size=(p, b, d))), yy, unit(rng.normal(size=(p, b, d)))


def _supcon_term(logits, positive, candidate):
    """Mean over anchors with a positive of -mean_p log(exp(l_ip) / sum_{a in A(i)} exp(l_ia))."""
    per_anchor = []
    for i in range(logits.shape[0]):
        pos = [j for j in range(logits.shape[1]) if positive(i, j)]
        if pos:
            lse = np.log(sum(np.exp(logits[i, a]) for a in range(logits.shape[1]) if candidate(i, a)))
            per_anchor.append(-np.mean([logits[i, j] - lse for j in pos]))
    return float(np.mean(per_anchor)) if per_anchor else 0.0


def supcon(yx, ex, yy, ey, o=OPTIONS):
    def intra(lab, e):
        return _supcon_term(e @ e.T / o["temperature"], lambda i, j: i != j and same(lab[i], lab[j]),
                            lambda i, j: i != j)

    def inter(la, ea, lb, eb):
        return _supcon_term(ea @ eb.T / o["temperature"], lambda i, j: same(la[i], lb[j]), lambda i, j: True)

    terms = {"intra_{a}": intra(yx, ex), "intra_{b}": intra(yy, ey),
             "inter": 0.5 * (inter(yx, ex, yy, ey) + inter(yy, ey, yx, ex))}
    g = o["gammas"]
    terms["total"] = g[0] * terms["intra_{a}"] + g[1] * terms["intra_{b}"] + g[2] * terms["inter"]
    return terms


def infonce(yx, ex, yy, ey, o=OPTIONS):
    def one_way(la, ea, lb, eb):
        out = []
        for i in range(len(ea)):
            keep = [j for j in range(len(eb)) if j == i or not same(la[i], lb[j])]
            logits = [float(ea[i] @ eb[j]) / o["temperature"] for j in range(len(eb))]
            out.append(-(logits[i] - np.log(sum(np.exp(logits[j]) for j in keep))))
        return float(np.mean(out))

    a, b = one_way(yx, ex, yy, ey), one_way(yy, ey, yx, ex)
    return {"{a}_to_{b}": a, "{b}_to_{a}": b, "total": 0.5 * (a + b)}


def dscmr(yx, ex, yy, ey, o=OPTIONS):
    def j(lu, u, lv, v):
        vals = [np.log1p(np.exp(0.5 * float(u[i] @ v[k]))) - same(lu[i], lv[k]) * 0.5 * float(u[i] @ v[k])
                for i in range(len(u)) for k in range(len(v))]
        return float(np.mean(vals))

    similarity = j(yx, ex, yy, ey) + j(yx, ex, yx, ex) + j(yy, ey, yy, ey)
    invariance = float(np.mean([np.sum((ex[i] - ey[i]) ** 2) for i in range(len(ex))]))
    return {"similarity": similarity, "invariance": invariance, "total": similarity + o["invariance"] * invariance}


def max_violation(yx, ex, yy, ey, o=OPTIONS):
    def one_way(la, ea, lb, eb):
        out = []
        for i in range(len(ea)):
            negs = [float(ea[i] @ eb[j]) for j in range(len(eb)) if j != i and not same(la[i], lb[j])]
            if negs:
                out.append(max(0.0, o["vse_margin"] - float(ea[i] @ eb[i]) + max(negs)))
        return float(np.mean(out)) if out else 0.0

    a, b = one_way(yx, ex, yy, ey), one_way(yy, ey, yx, ex)
    return {"{a}_to_{b}": a, "{b}_to_{a}": b, "total": 0.5 * (a + b)}


REFERENCES = {"supcon": supcon, "infonce": infonce, "dscmr": dscmr, "max_violation": max_violation}
