"""The CVS space: every modality trained jointly in one stage, one AlignedAttention per modality pair (thesis §3.1)."""

from __future__ import annotations

import keras

from cvs_tf.config import ConfigError
from cvs_tf.models.base import CrossModalModel, aligned_plan
from cvs_tf.spaces import Space, register_space

NAME = "cvs"


@keras.saving.register_keras_serializable(package="cvs_tf")
class CVSModel(CrossModalModel):
    """Common Vector Space: one stage over every modality; C(n,2) AlignedAttention blocks when attention is on."""

    @staticmethod
    def plan_of(stages):
        if len(stages) != 1:
            raise ConfigError(f"space {NAME} trains all modalities in one stage, got stages {stages}")
        return aligned_plan(stages)


class CVS(Space):
    name = NAME
    model_class = CVSModel


register_space(CVS())
