"""Each pair-loss kind's declared cost against what XLA allocates for its loss + gradient (bench/kind_memory.py)."""

import pytest

from cvs_tf.losses import get_pair_loss, pair_loss_names
from cvs_tf.models.objective import loss_options


@pytest.mark.slow
@pytest.mark.parametrize("kind", pair_loss_names())
def test_the_declared_cost_covers_xlas_buffers_and_grows_as_b_squared(kind):
    """XLA's buffer assignment (every buffer of the compiled call, reuse included) at B = 256 and 512: it grows
    about 4x for 2x the batch (the semi-hard mining's cube would grow 8x), and the declared bytes cover it
    without overstating it by more than 1.7x (the declared figure also covers graph mode, a little higher)."""
    from bench.kind_memory import DIM, xla_bytes

    cost = get_pair_loss(kind).cost_for(loss_options({"kind": kind}))
    small, large = xla_bytes(kind, 256), xla_bytes(kind, 512)
    assert 3.0 < large / small < 5.0, (small, large)
    for b, got in ((256, small), (512, large)):
        declared = cost.bytes(b, 1, DIM)
        assert got <= declared <= 1.7 * got, (b, got, declared)
