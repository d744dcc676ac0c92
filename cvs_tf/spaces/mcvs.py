"""The M-CVS space: modalities added stage by stage, everything trained earlier frozen (thesis §3.2)."""

from __future__ import annotations

import keras

from cvs_tf.config import ConfigError
from cvs_tf.models.base import CrossModalModel, aligned_plan
from cvs_tf.spaces import Space, one_per_stage, register_space

NAME = "mcvs"

#: Default M-CVS stage plans per dataset family (design.md §1, issue #4); others: two, then one per stage.
DEFAULT_STAGES = {
    "xmedia": [["image", "text"], ["video"], ["audio"], ["3d"]],
    "xmedianet": [["image", "text"], ["video"]],
}


def default_stages(modalities: list[str]) -> list[list[str]]:
    return one_per_stage(modalities[:2], modalities[2:])


@keras.saving.register_keras_serializable(package="cvs_tf")
class MCVSModel(CrossModalModel):
    """Multi-stage CVS: stage 1 trains two modalities; each later stage adds one modality, its branch and
    one AlignedAttention to every existing modality, with everything trained earlier frozen."""

    def default_stages(self):
        return default_stages(list(self.modality_dims))

    @staticmethod
    def plan_of(stages):
        if len(stages[0]) < 2:
            raise ConfigError(f"M-CVS stage 1 needs two modalities, got {stages[0]}")
        return aligned_plan(stages)


class MCVS(Space):
    name = NAME
    model_class = MCVSModel
    multi_stage = True

    def default_stages(self, modalities, config, fs):
        """The dataset family's plan when every modality is used and present, else two then one per stage."""
        family = DEFAULT_STAGES.get(fs.name.split("-")[0].lower())
        if not config.model.modalities and family and all(x in fs.modalities for s in family for x in s):
            return [list(s) for s in family]
        return default_stages(modalities)


register_space(MCVS())
