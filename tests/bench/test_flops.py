"""Analytic step FLOPs (bench/flops.py) against hand-derived counts, and the interleaved-timing helpers."""

from bench.common import MatMul, dense_products, paired_ratio, stats, total_flops
from bench.flops import forward_products, step_products
from cvs_tf.models import CVSModel, MCVSModel

B, D, C = 4, 8, 4


def test_dense_products_forward_and_backward_shapes():
    p = dense_products(4, 16, 8, "x", weight_grad=True, input_grad=True)
    assert [(q.m, q.k, q.n) for q in p] == [(4, 16, 8), (16, 4, 8), (4, 8, 16)]
    assert total_flops(p) == 3 * 2 * 4 * 16 * 8
    assert total_flops(dense_products(4, 16, 8, "x", weight_grad=False, input_grad=False)) == 2 * 4 * 16 * 8


def test_cvs_two_modalities_by_hand():
    model = CVSModel({"image": 16, "text": 12}, C, dim=D)
    # branch: hidden fwd + dW (no gradient into the features), proj fwd + dW + dX
    image = 2 * (2 * B * 16 * D) + 3 * (2 * B * D * D)
    text = 2 * (2 * B * 12 * D) + 3 * (2 * B * D * D)
    classifier = 2 * 3 * (2 * B * D * C)                      # both modalities, fwd + dW + dX
    block = 4 * 3 * (2 * B * D * D)                           # W_a, W_b, W_ab, W_e: fwd + dW + dX
    triplet = 3 * 3 * (2 * B * D * B)                         # intra, intra, inter: fwd + two input grads
    assert total_flops(step_products(model, B)) == image + text + classifier + block + triplet == 16640


def test_mcvs_frozen_parts_cost_forward_only():
    model = MCVSModel({"image": 16, "text": 12, "audio": 6}, C, dim=D, stages=[["image", "text"], ["audio"]])
    model.set_stage(1, recompile=False)
    frozen = (2 * B * 16 * D + 2 * B * D * D) + (2 * B * 12 * D + 2 * B * D * D)
    audio = 2 * (2 * B * 6 * D) + 3 * (2 * B * D * D)
    classifier = 2 * (2 * B * D * C)                          # frozen: fwd + dX into the new branch, no dW
    # per block: W_a on the frozen g_a (fwd + dW), W_b, W_ab and W_e (fwd + dW + dX)
    blocks = 2 * (2 * (2 * B * D * D) + 3 * 3 * (2 * B * D * D))
    triplet = 2 * 3 * 3 * (2 * B * D * B)
    assert total_flops(step_products(model, B)) == frozen + audio + classifier + blocks + triplet == 21504
    assert total_flops(forward_products(model, B)) == frozen
    # the same stage with nothing frozen costs more: the frozen parts' backward
    for layer in model.stage_components(0):
        layer.trainable = True
    assert total_flops(step_products(model, B)) > 21504


def test_paired_ratio_uses_each_rounds_own_load():
    # round 1 ran twice as slow for both cases: the per-round ratio is 2 in both rounds
    assert paired_ratio([2.0, 2.0, 8.0, 8.0], [1.0, 1.0, 4.0, 4.0], calls=2) == stats([2.0, 2.0])
    assert MatMul(2, 3, 4).flops == 48
