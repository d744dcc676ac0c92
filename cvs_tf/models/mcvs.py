"""MCVSModel: modalities added stage by stage, earlier weights (and the classifier) frozen (thesis §3.2)."""

from __future__ import annotations

import keras

from cvs_tf.models.base import CrossModalModel, aligned_plan, order_modalities


@keras.saving.register_keras_serializable(package="cvs_tf")
class MCVSModel(CrossModalModel):
    """Multi-stage CVS: stage 1 trains two modalities; each later stage adds one modality, its branch and
    one AlignedAttention to every existing modality, with everything trained earlier frozen."""

    def default_stages(self):
        mods = list(self.modality_dims)
        return [mods[:2]] + [[m] for m in mods[2:]]

    @property
    def modalities(self) -> list[str]:
        """Modalities trained so far, in the canonical order (image, text, audio, …) whatever the stage plan."""
        return order_modalities(super().modalities)

    def make_plan(self, stages):
        if len(stages[0]) < 2:
            raise ValueError(f"M-CVS stage 1 needs two modalities, got {stages[0]}")
        return aligned_plan(stages)
