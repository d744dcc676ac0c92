"""Build a CVS / M-CVS / RVS model from a RunConfig and a feature set, resolving modalities and stage plans."""

from __future__ import annotations

from cvs_tf.config import DEFAULT_MCVS_STAGES, ConfigError, RunConfig
from cvs_tf.data.store import FeatureSet, order_modalities


def resolve_stages(config: RunConfig, fs: FeatureSet) -> list[list[str]]:
    """The stage plan for the configured space on this dataset (raises ConfigError on a mismatch)."""
    m = config.model
    available = fs.modalities
    if m.stages:
        stages = [list(s) for s in m.stages]
        mods = [x for s in stages for x in s]
    else:
        mods = list(m.modalities) if m.modalities else order_modalities(available)
        stages = None
    unknown = [x for x in mods if x not in available]
    if unknown:
        raise ConfigError(f"unknown modality {', '.join(unknown)} for dataset {fs.name} (has {', '.join(available)})")
    if len(set(mods)) != len(mods):
        raise ConfigError(f"modalities listed twice: {mods}")
    if len(mods) < 2:
        raise ConfigError(f"space {m.space} needs at least 2 modalities, got {mods}")
    if m.space == "cvs":
        if stages and len(stages) != 1:
            raise ConfigError("space cvs trains every modality in one stage; use --space mcvs for stages")
        return [mods]
    if m.space == "rvs":
        ref = m.reference
        if ref not in available:
            raise ConfigError(f"reference modality {ref!r} is not in dataset {fs.name} (has {', '.join(available)})")
        if ref not in mods:
            raise ConfigError(f"--modalities {' '.join(mods)} must include the RVS reference {ref!r}")
        if stages:
            return stages
        others = [x for x in mods if x != ref]
        return [[ref, others[0]]] + [[x] for x in others[1:]]
    # mcvs
    if stages:
        return stages
    default = DEFAULT_MCVS_STAGES.get(fs.name.split("-")[0].lower())
    if not m.modalities and default and all(x in available for s in default for x in s):
        return [list(s) for s in default]
    return [mods[:2]] + [[x] for x in mods[2:]]


def build_model(config: RunConfig, fs: FeatureSet):
    """Instantiate the configured space for ``fs`` (not compiled)."""
    from cvs_tf.models.cvs import CVSModel
    from cvs_tf.models.mcvs import MCVSModel
    from cvs_tf.models.rvs import RVSModel

    config.validate()
    stages = resolve_stages(config, fs)
    mods = [x for s in stages for x in s]
    m = config.model
    kwargs = dict(
        modality_dims={x: fs.dim(x) for x in mods},
        num_classes=fs.num_classes,
        stages=stages,
        attention=m.attention,
        dim=m.dim,
        dropout=m.dropout,
        use_batchnorm=m.use_batchnorm,
        use_w_a=m.use_w_a,
        use_w_b=m.use_w_b,
        use_w_ab=m.use_w_ab,
        loss_weights={k: v for k, v in vars(config.loss).items()},
        multi_label=fs.label_kind == "multi",
    )
    cls = {"cvs": CVSModel, "mcvs": MCVSModel, "rvs": RVSModel}[m.space]
    if m.space == "rvs":
        kwargs["reference"] = m.reference
    return cls(**kwargs)
