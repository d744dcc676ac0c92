"""CVSModel: all modalities trained jointly, one AlignedAttention per modality pair (thesis §3.1)."""

from __future__ import annotations

import itertools

import keras

from cvs_tf.models.base import CrossModalModel, order_modalities


@keras.saving.register_keras_serializable(package="cvs_tf")
class CVSModel(CrossModalModel):
    """Common Vector Space: one stage over every modality; C(n,2) AlignedAttention blocks when attention is on."""

    @property
    def modalities(self) -> list[str]:
        """Modalities trained so far, in the canonical order (image, text, audio, …) whatever the stage plan."""
        return order_modalities(super().modalities)

    def make_plan(self, stages):
        if len(stages) != 1:
            raise ValueError(f"CVS trains all modalities in one stage, got stages {stages}")
        pairs = list(itertools.combinations(stages[0], 2))
        return [{"blocks": pairs, "pairs": pairs}]
