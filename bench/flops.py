"""Analytic matrix-multiply FLOPs of one training step of a CVS / M-CVS / RVS model at its current stage.

Counted: every matrix product of the forward pass, plus the backward products that the
gradient of the trainable variables needs: ``dW = Xᵀ·dY`` for a trainable kernel, ``dX = dY·Wᵀ``
when something upstream of ``X`` is trainable. A frozen part costs its forward products only
(no weight gradient, and no input gradient unless a trainable part lies upstream of it, as for
the frozen classifier on a new branch's embedding). Not counted: elementwise work (ReLU, tanh,
softmax, L2 normalisation, the O(B³) semi-hard mining), the optimizer update, biases.
"""

from __future__ import annotations

from bench.common import MatMul, dense_products
from cvs_tf.models.base import pair_key


def _kernel_trainable(layer, attr: str) -> bool:
    v = getattr(layer, attr, None)
    return v is not None and bool(getattr(layer, "trainable", True)) and bool(getattr(v, "trainable", True))


def step_products(model, batch: int) -> list[MatMul]:
    """The matrix products of one ``train_step`` of ``model`` at its current stage, batch ``batch``."""
    B, D = batch, model.dim
    prods: list[MatMul] = []
    needed = sorted({m for p in model.active_pairs() for m in p}, key=model.all_modalities.index)
    grad_g = {}                       # does g_m (branch output) carry a gradient?
    for m in needed:
        br = model.branches[m]
        tr = bool(br.trainable)
        d, h = model.modality_dims[m], br.hidden.units
        prods += dense_products(B, d, h, f"{m}.hidden", weight_grad=tr, input_grad=False)
        prods += dense_products(B, h, D, f"{m}.proj", weight_grad=tr, input_grad=tr)
        grad_g[m] = tr
    cls_mods = [m for m in needed if model.branches[m].trainable] or needed
    cls_tr = bool(model.classifier.trainable)
    for m in cls_mods:
        prods += dense_products(B, D, model.num_classes, f"classifier({m})", weight_grad=cls_tr, input_grad=grad_g[m])
    sym = bool(model.loss_options.get("symmetric_inter"))
    for a, b in model.active_pairs():
        k = pair_key(a, b)
        ga, gb = grad_g[a], grad_g[b]
        out_a = out_b = ga or gb
        if model.attention and k in model.blocks:
            blk = model.blocks[k]
            rvs = hasattr(blk, "w_se")
            first, second, prod_w = ("w_r", "w_s", "w_rs") if rvs else ("w_a", "w_b", "w_ab")
            t_terms = []
            for attr, g_in in ((first, ga), (second, gb), (prod_w, ga or gb)):
                if getattr(blk, attr, None) is None:
                    continue
                wt = _kernel_trainable(blk.reference if attr == "w_r" else blk, attr) if rvs else _kernel_trainable(blk, attr)
                prods += dense_products(B, D, D, f"{k}.{attr}", weight_grad=wt, input_grad=g_in)
                t_terms.append(wt or g_in)
            grad_t = any(t_terms)
            outs = [("w_ie", blk.reference), ("w_se", blk)] if rvs else [("w_e", blk)]
            for attr, owner in outs:
                wt = _kernel_trainable(owner, attr)
                prods += dense_products(B, D, D, f"{k}.{attr}", weight_grad=wt, input_grad=grad_t)
            if rvs:
                out_a = ga or grad_t or _kernel_trainable(blk.reference, "w_ie")
                out_b = gb or grad_t or _kernel_trainable(blk, "w_se")
            else:
                out_a = out_b = ga or gb or grad_t or _kernel_trainable(blk, "w_e")
        # triplet distances: intra(a), intra(b), inter(a->b) [and inter(b->a)]: S = X·Yᵀ (B×D·D×B)
        terms = [(out_a, out_a, "intra_a"), (out_b, out_b, "intra_b"), (out_a, out_b, "inter")]
        if sym:
            terms.append((out_b, out_a, "inter_ba"))
        for gx, gy, name in terms:
            prods.append(MatMul(B, D, B, f"{k}.{name} fwd"))
            if gx:
                prods.append(MatMul(B, B, D, f"{k}.{name} dX"))
            if gy:
                prods.append(MatMul(B, B, D, f"{k}.{name} dY"))
    return prods


def forward_products(model, batch: int, modalities=None) -> list[MatMul]:
    """Forward products of the branches of ``modalities`` (default: the frozen ones in use)."""
    B, D = batch, model.dim
    needed = sorted({m for p in model.active_pairs() for m in p}, key=model.all_modalities.index)
    mods = modalities if modalities is not None else [m for m in needed if not model.branches[m].trainable]
    prods = []
    for m in mods:
        h = model.branches[m].hidden.units
        prods += [MatMul(B, model.modality_dims[m], h, f"{m}.hidden fwd"), MatMul(B, h, D, f"{m}.proj fwd")]
    return prods
