"""The RVS space: every modality aligned to one reference modality through RVSAttention (thesis §3.3)."""

from __future__ import annotations

import keras

from cvs_tf.config import DEFAULT_REFERENCE, ConfigError
from cvs_tf.layers import RVSAttention, RVSReference
from cvs_tf.models.base import CrossModalModel, pair_key
from cvs_tf.spaces import Space, one_per_stage, register_space

NAME = "rvs"


def check_reference(reference, modalities, fs=None) -> None:
    """The one check of the RVS reference: a modality of the dataset ``fs`` (when given) and of ``modalities``."""
    if not isinstance(reference, str) or not reference:
        raise ConfigError(f"the RVS reference must name a modality, got {reference!r}")
    if fs is not None and reference not in fs.modalities:
        raise ConfigError(f"reference modality {reference!r} is not in dataset {fs.name} "
                          f"(has {', '.join(fs.modalities)})")
    if reference not in modalities:
        raise ConfigError(f"the modalities {' '.join(modalities)} must include the RVS reference {reference!r}")


def default_stages(modalities: list[str], reference: str) -> list[list[str]]:
    """Stage 1 = the reference and the first other modality, then one modality per stage."""
    check_reference(reference, modalities)
    others = [m for m in modalities if m != reference]
    return one_per_stage([reference, others[0]], others[1:])


@keras.saving.register_keras_serializable(package="cvs_tf")
class RVSModel(CrossModalModel):
    """Reference Vector Space: stage 1 = reference + one modality; each later stage adds one modality
    aligned only to the reference. The reference branch, shared w_r/w_ie and classifier freeze after stage 1."""

    def __init__(self, modality_dims, num_classes, reference=DEFAULT_REFERENCE, **kwargs):
        super().__init__(modality_dims, num_classes, reference=reference, **kwargs)

    def default_stages(self):
        return default_stages(list(self.modality_dims), self.reference)

    @staticmethod
    def plan_of(stages, reference):
        check_reference(reference, [m for s in stages for m in s])
        if reference not in stages[0] or len(stages[0]) != 2:
            raise ConfigError(f"RVS stage 1 must be [reference, one modality], got {stages[0]} "
                              f"(reference {reference!r})")
        plan = []
        for s in stages:
            pairs = [(reference, m) for m in s if m != reference]
            plan.append({"blocks": pairs, "pairs": pairs})
        return plan

    def make_plan(self, stages):
        return self.plan_of(stages, self.reference)

    @staticmethod
    def attention_parameters(dim, blocks):
        return (3 * blocks + 2) * dim * dim  # w_s, w_rs, w_se per block; the shared w_r, w_ie

    def make_shared(self):
        return RVSReference(name="rvs_reference", dtype="float32")

    def make_block(self, a, b):
        return RVSAttention(reference=self.shared_reference, name=f"rvs_{pair_key(a, b)}", dtype="float32",
                            use_w_r=self.switches["use_w_a"], use_w_s=self.switches["use_w_b"],
                            use_w_rs=self.switches["use_w_ab"])


class RVS(Space):
    name = NAME
    model_class = RVSModel
    multi_stage = True
    options = ("reference",)

    def check_options(self, model_config, fs=None):
        check_reference(model_config.reference, fs.modalities if fs is not None else [model_config.reference], fs)

    def default_stages(self, modalities, config, fs):
        return default_stages(modalities, config.model.reference)

    def run_tag(self, config):
        return f"{self.name}-{config.model.reference}"


register_space(RVS())
