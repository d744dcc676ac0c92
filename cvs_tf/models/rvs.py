"""RVSModel: every modality aligned to one reference modality through RVSAttention (thesis §3.3)."""

from __future__ import annotations

import keras

from cvs_tf.models.base import CrossModalModel, order_modalities


@keras.saving.register_keras_serializable(package="cvs_tf")
class RVSModel(CrossModalModel):
    """Reference Vector Space: stage 1 = reference + one modality; each later stage adds one modality
    aligned only to the reference. The reference branch, shared w_r/w_ie and classifier freeze after stage 1."""

    block_type = "rvs"

    def __init__(self, modality_dims, num_classes, reference="image", **kwargs):
        if reference not in modality_dims:
            raise ValueError(f"reference modality {reference!r} not among {list(modality_dims)}")
        self._ref = reference
        super().__init__(modality_dims, num_classes, reference=reference, **kwargs)

    def default_stages(self):
        others = [m for m in self.modality_dims if m != self._ref]
        return [[self._ref, others[0]]] + [[m] for m in others[1:]]

    @property
    def modalities(self) -> list[str]:
        """Modalities trained so far, in the canonical order (image, text, audio, …) whatever the stage plan."""
        return order_modalities(super().modalities)

    def make_plan(self, stages):
        ref = self._ref
        if ref not in stages[0] or len(stages[0]) != 2:
            raise ValueError(f"RVS stage 1 must be [reference, one modality], got {stages[0]} (reference {ref!r})")
        plan = []
        for s in stages:
            pairs = [(ref, m) for m in s if m != ref]
            plan.append({"blocks": pairs, "pairs": pairs})
        return plan
