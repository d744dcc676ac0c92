"""CrossModalModel: the shared custom-train_step model behind every space (stages, freezing, losses).

A space is described by a *stage plan*: stage ``k`` adds some modalities (a branch each) and
some attention blocks, and trains a list of modality pairs. Everything trained in an earlier
stage is frozen (``trainable=False``, then the train function is rebuilt by recompiling).
A subclass, one per space in ``cvs_tf/spaces/``, defines its plan (:meth:`plan_of`, and
:meth:`default_stages`) and, where it is not an ``AlignedAttention``, the block linking two
modalities (:meth:`make_block`, with an optional layer shared by all blocks, :meth:`make_shared`).

Loss (docs/losses.md), for a batch of the current stage's modalities ``M`` and trained pairs ``P``:

    L = alpha * mean_{m in M_new} CE(classifier(e_m), y_m)
      + beta  * mean_{(x,y) in P} [g1*intra(x) + g2*intra(y) + g3*inter(x->y)]
      (+ w_rec * mean_m ||dec_m(e_m) - x_m||^2 when reconstruction is on)

where ``e_m = l2(branch_m(x_m))`` (the test-time ``independent`` embedding) and the triplet terms of
a pair use the attended embeddings ``l2(g_x'), l2(g_y')`` of that pair's block when attention is
on (else ``e_x, e_y``). ``M_new`` are the modalities whose branch is trainable in this stage (the
classifier supervises every branch being trained). Averaging over pairs keeps the alpha/beta
balance independent of the number of modalities. ``train_step`` and ``test_step`` both call
:meth:`compute_losses`.
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import tensorflow as tf

from cvs_tf.config import JIT_MODES, ConfigError
from cvs_tf.data.pipeline import row_batches
from cvs_tf.data.store import order_modalities
from cvs_tf.layers import AlignedAttention, LearnedTemperature, ModalityBranch
from cvs_tf.layers.branch import BRANCH_FIELDS
from cvs_tf.layers.config import stored_config
from cvs_tf.models.objective import LossMixin, Objective, pair_key
from cvs_tf.models.xbm import memory_for


def l2n(x):
    return tf.math.l2_normalize(tf.cast(x, tf.float32), axis=-1)


class CrossModalModel(LossMixin, keras.Model):
    """Base of the spaces' models; see the module docstring. Subclasses define :meth:`plan_of`.

    ``reference`` is the distinguished modality of a space that has one (the RVS reference), or None.
    """

    def __init__(
        self,
        modality_dims: dict,
        num_classes: int,
        stages: list | None = None,
        reference: str | None = None,
        attention: bool = True,
        dim: int = 512,
        dropout: float = 0.0,
        use_batchnorm: bool = False,
        hidden_dim: int | None = None,
        depth: int = 1,
        standardize: bool = False,
        use_w_a: bool = True,
        use_w_b: bool = True,
        use_w_ab: bool = True,
        loss_options: dict | None = None,
        multi_label: bool = False,
        current_stage: int = 0,
        partners: dict | None = None,
        branch_policy: str | None = None,
        loss_weights: dict | None = None,
        plan: list | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(modality_dims) < 2:
            raise ValueError(f"a cross-modal space needs >= 2 modalities, got {list(modality_dims)}")
        self.modality_dims = {m: int(d) for m, d in modality_dims.items()}
        self.num_classes = int(num_classes)
        self.reference = reference
        self.attention = bool(attention)
        self.dim = int(dim)
        self.dropout = float(dropout)
        self.use_batchnorm = bool(use_batchnorm)
        self.hidden_dim = None if hidden_dim is None else int(hidden_dim)
        self.depth = int(depth)
        self.standardize = bool(standardize)
        # the branches' dtype policy (mixed_bfloat16 / mixed_float16 under --mixed-precision), stored so
        # a reloaded model computes as it was trained, whatever the global policy at load time
        self.branch_policy = branch_policy or keras.mixed_precision.global_policy().name
        self.switches = dict(use_w_a=use_w_a, use_w_b=use_w_b, use_w_ab=use_w_ab)
        # LossConfig's defaults, then the given values (``loss_weights``: their key in files saved before the rename)
        self.objective = Objective(loss_options if loss_options is not None else loss_weights)
        self.loss_options = self.objective.options
        self.multi_label = bool(multi_label)
        self.stages = [list(s) for s in (stages or self.default_stages())]
        self.partners = {m: list(v) for m, v in (partners or {}).items()}
        # ``plan``: the stages' checked plan (cvs_tf.plan.RunPlan.model_plan), not saved: a loaded model makes it
        self.plan = self.linked_plan(self.make_plan(self.stages) if plan is None else plan)
        self.current_stage = int(current_stage)
        self._make_layers()
        self._build_all()
        self._make_trackers()
        self.set_stage(self.current_stage, recompile=False)

    def _make_layers(self):
        self.branches = {
            m: ModalityBranch(**{k: getattr(self, k) for k in BRANCH_FIELDS}, name=f"branch_{m}",
                              dtype=self.branch_policy)
            for m in self.all_modalities
        }
        # Under a mixed-precision policy only the branches run in low precision; blocks (softmax),
        # classifier and losses stay float32.
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier", dtype="float32")
        # (the attribute is named after the RVS reference, the first such layer: saved weights keep their paths)
        self.shared_reference = self.make_shared() if self.attention else None
        linked = [p for stage in self.plan for p in stage["blocks"]] if self.attention else []
        self.blocks = {pair_key(a, b): self.make_block(a, b) for a, b in linked}
        self.temperature_layer = None
        if self.loss_options["learn_temperature"]:
            self.temperature_layer = LearnedTemperature(self.loss_options["temperature"], name="temperature")
        self.xbm = memory_for(self)  # the cross-batch memory (loss.xbm_size > 0), built; else None
        self.decoders = {}
        if self.objective.reconstruction_on:
            self.decoders = {m: keras.layers.Dense(d, name=f"decoder_{m}", dtype="float32") for m, d in self.modality_dims.items()}

    # ------------------------------------------------------------------ plan and blocks (what a space defines)
    def default_stages(self) -> list[list[str]]:
        """The stage plan when none is given: every modality in one stage."""
        return [list(self.modality_dims)]

    @staticmethod
    def plan_of(stages, **options) -> list[dict]:
        """Per stage ``{"blocks": [(a, b), ...], "pairs": [(a, b), ...]}``; ``ConfigError`` for a bad plan."""
        raise NotImplementedError

    def make_plan(self, stages):
        return self.plan_of(stages)

    def linked_plan(self, plan: list[dict]) -> list[dict]:
        """``plan`` with each modality named in ``partners`` linked only to its partners in the stage adding it.

        ``partners`` (``{modality: [earlier modalities]}``, set by ``cvs_tf.training.extend`` for a
        modality added to a trained run on a dataset that lacks some known modalities) keeps the
        blocks and trained pairs of that stage whose other side is a partner; ``ConfigError`` for a
        modality of stage 1 or not in the plan, a partner not added earlier, or a stage left with no pair.
        """
        added = {m: k for k, s in enumerate(self.stages) for m in s}
        for m, links in self.partners.items():
            earlier = [x for s in self.stages[: added.get(m, 0)] for x in s]
            if not added.get(m) or not links or any(x not in earlier for x in links):
                raise ConfigError(f"partners of {m!r} must be modalities of earlier stages, and {m!r} one added "
                                  f"after stage 1 (stages {self.stages}, partners {links})")

        def keep(pair, k):
            return all(o in self.partners[x] for x, o in (pair, pair[::-1]) if x in self.partners and added[x] == k)

        plan = [{key: [p for p in stage[key] if keep(p, k)] for key in ("blocks", "pairs")} for k, stage in enumerate(plan)]
        empty = [m for m in self.partners if not any(m in p for p in plan[added[m]]["pairs"])]
        if empty:
            raise ConfigError(f"no trained pair is left in the stage of {', '.join(empty)} (partners {self.partners})")
        return plan

    def make_shared(self):
        """A layer shared by every attention block, trained in stage 1 then frozen; None by default."""
        return None

    def make_block(self, a: str, b: str):
        """The attention block linking modalities a and b (it exposes ``project`` and ``pair_score``)."""
        return AlignedAttention(name=f"att_{pair_key(a, b)}", dtype="float32", **self.switches)

    @staticmethod
    def attention_parameters(dim: int, blocks: int) -> int:
        """Attention parameters of ``blocks`` blocks of :meth:`make_block` (an upper bound under the switches)."""
        return 4 * blocks * dim * dim  # w_a, w_b, w_ab, w_e

    @property
    def all_modalities(self) -> list[str]:
        return [m for s in self.stages for m in s]

    @property
    def modalities(self) -> list[str]:
        """Modalities trained so far (up to and including the current stage), in the canonical order
        (image, text, audio, …) whatever the stage plan."""
        return order_modalities(m for s in self.stages[: self.current_stage + 1] for m in s)

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def stage_name(self, k: int) -> str:
        added = "+".join(self.stages[k]) if k else "_".join(self.stages[0])
        return f"{k + 1}-{added}"

    def active_pairs(self, k: int | None = None) -> list[tuple[str, str]]:
        return list(self.plan[self.current_stage if k is None else k]["pairs"])

    def attention_block(self, mod_a: str, mod_b: str):
        """``(layer, swapped)`` for the block linking two modalities, or ``None``."""
        if pair_key(mod_a, mod_b) in self.blocks:
            return self.blocks[pair_key(mod_a, mod_b)], False
        if pair_key(mod_b, mod_a) in self.blocks:
            return self.blocks[pair_key(mod_b, mod_a)], True
        return None

    # ------------------------------------------------------------------ build / freeze
    def _build_all(self):
        for m, layer in self.branches.items():
            layer.build((None, self.modality_dims[m]))
        self.classifier.build((None, self.dim))
        if self.shared_reference is not None:
            self.shared_reference.build((None, self.dim))
        for blk in self.blocks.values():
            blk.build([(None, self.dim), (None, self.dim)])
        for dec in self.decoders.values():
            dec.build((None, self.dim))
        if self.temperature_layer is not None:
            self.temperature_layer.build()
        self.built = True

    def build(self, input_shape=None):  # everything is built in __init__
        self.built = True

    def stage_components(self, k: int) -> list:
        """Layers first trained in stage k."""
        comps = [self.branches[m] for m in self.stages[k]] + [self.blocks[pair_key(a, b)] for a, b in self.plan[k]["blocks"] if pair_key(a, b) in self.blocks]
        comps += [self.decoders[m] for m in self.stages[k] if m in self.decoders]
        if k == 0:
            comps.append(self.classifier)
            if self.temperature_layer is not None:
                comps.append(self.temperature_layer)
            if self.shared_reference is not None:
                comps.append(self.shared_reference)
        return comps

    def set_stage(self, k: int, recompile: bool = True):
        """Make stage k current: its new components trainable, everything else frozen; rebuild train fn."""
        if not 0 <= k < self.num_stages:
            raise ValueError(f"stage {k} out of range (model has {self.num_stages})")
        self.current_stage = int(k)
        for j in range(self.num_stages):
            for layer in self.stage_components(j):
                layer.trainable = j == k
        # a shared layer is tracked inside every block too: freeze it again explicitly
        if self.shared_reference is not None:
            self.shared_reference.trainable = k == 0
        self._make_trackers()
        if recompile and getattr(self, "optimizer", None) is not None and self.compiled:
            self.compile(optimizer=type(self.optimizer).from_config(self.optimizer.get_config()),
                         jit_compile=self._jit_setting)

    def fit_standardization(self, fs, modalities=None, split: str = "train") -> list[str]:
        """Set each branch's standardisation (``standardize=True``) to the ``split`` statistics of ``fs``.

        ``modalities``: the branches to set (default: every modality of the model that ``fs`` has);
        returns them. Frozen branches are left to their caller: pass only the new ones when extending.
        """
        from cvs_tf.data.stats import feature_moments

        if not self.standardize:
            return []
        mods = [m for m in (modalities or self.all_modalities) if m in fs.modalities]
        for m in mods:
            self.branches[m].set_standardization(*feature_moments(fs.x(m, split)))
        return mods

    def trainable_modalities(self) -> list[str]:
        return [m for m in self.modalities if self.branches[m].trainable]

    def parameter_report(self) -> dict:
        """Attention-block count and trainable/frozen parameter counts of the current stage (thesis Fig. 26)."""
        used = set()
        layers = [self.branches[m] for m in self.modalities] + [self.classifier]
        layers += [self.blocks[pair_key(a, b)] for s in self.plan[: self.current_stage + 1] for a, b in s["blocks"] if pair_key(a, b) in self.blocks]
        layers += [self.decoders[m] for m in self.modalities if m in self.decoders]
        if self.shared_reference is not None:
            layers.append(self.shared_reference)
        trainable = frozen = 0
        for layer in layers:
            for v in layer.weights:
                if id(v) in used:
                    continue
                used.add(id(v))
                n = int(np.prod(v.shape))
                if v.trainable:
                    trainable += n
                else:
                    frozen += n
        blocks = sum(len(s["blocks"]) for s in self.plan[: self.current_stage + 1]) if self.attention else 0
        return {
            "stage": self.current_stage + 1,
            "modalities": self.modalities,
            "attention_blocks": blocks,
            "trainable_params": trainable,
            "frozen_params": frozen,
        }

    # ------------------------------------------------------------------ forward
    def branch_output(self, modality: str, features, training=False):
        """Un-normalised branch output g_m (N, D)."""
        return tf.cast(self.branches[modality](tf.cast(features, self.compute_dtype), training=training), tf.float32)

    def embed(self, modality: str, features, batch_size: int = 4096):
        """L2-normalised common embedding (the ``independent`` protocol), as a float32 tensor."""
        if modality not in self.branches:
            raise ValueError(f"model has no modality {modality!r} (has {', '.join(self.branches)})")
        if not isinstance(features, (np.ndarray, tf.Tensor)):
            features = np.asarray(features, dtype=np.float32)
        # converted batch by batch: a memory-mapped (float16) split is never copied whole, and the
        # mapped pages behind each batch leave the resident set once it is embedded
        outs = [l2n(self.branch_output(modality, np.asarray(rows, dtype=np.float32)))
                for rows in row_batches(features, batch_size)]
        return tf.concat(outs, 0) if outs else tf.zeros((0, self.dim))

    def call(self, inputs, training=False):
        return {m: l2n(self.branch_output(m, x, training=training)) for m, x in inputs.items()}

    # ------------------------------------------------------------------ loss inputs (model part)
    def loss_inputs(self, x: dict, y: dict, training: bool = False):
        """The model part of the losses: ``(labels, logits, pair_emb, e)`` for :meth:`loss_terms`.

        ``e`` maps each modality in use to its independent embedding ``l2(g_m)``; ``logits`` covers
        the modalities the classifier supervises (the trainable branches, or all if none is).
        """
        needed = sorted({m for p in self.active_pairs() for m in p}, key=self.all_modalities.index)
        g = {m: self.branch_output(m, x[m], training=training) for m in needed}
        e = {m: l2n(g[m]) for m in needed}
        cls_mods = [m for m in needed if self.branches[m].trainable] or needed
        logits = {m: tf.cast(self.classifier(e[m]), tf.float32) for m in cls_mods}
        pair_emb = {}
        for a, b in self.active_pairs():
            k = pair_key(a, b)
            ea, eb = e[a], e[b]
            if self.attention and k in self.blocks:
                ga, gb = self.blocks[k]((g[a], g[b]), training=training)[:2]
                ea, eb = l2n(ga), l2n(gb)
            pair_emb[k] = (ea, eb)
        return {m: y[m] for m in needed}, logits, pair_emb, e

    def compile(self, optimizer="adam", jit_compile=True, **kwargs):
        """Keras ``compile``; ``jit_compile`` says where XLA is used (measured in docs/performance.md).

        * ``True`` / ``"full"`` (default): the whole train/test step is one XLA cluster (Keras
          ``jit_compile=True``);
        * ``"loss"``: the step runs as a TF graph (oneDNN matmuls), only :meth:`loss_terms` (the
          cross-entropy and the semi-hard mining) is XLA-compiled, forward and backward;
        * ``False`` / ``"off"``: no XLA.
        """
        mode = resolve_jit(jit_compile)
        self._jit_setting = jit_compile
        object.__setattr__(self, "_loss_xla", mode == "loss")
        object.__setattr__(self, "_xla_loss_terms", tf.function(self.loss_terms, jit_compile=True, reduce_retracing=True))
        super().compile(optimizer=optimizer, jit_compile=mode == "full", **kwargs)

    @property
    def jit_mode(self) -> str:
        """Where XLA runs in the compiled step: ``"full"``, ``"loss"`` or ``"off"``."""
        if getattr(self, "_loss_xla", False):
            return "loss"
        return "full" if getattr(self, "jit_compile", False) else "off"

    # ------------------------------------------------------------------ config
    def get_config(self):
        names = ("modality_dims", "num_classes", "stages", "reference", "attention", *BRANCH_FIELDS, "multi_label",
                 "current_stage", "partners", "branch_policy")
        options = {k: list(v) if isinstance(v, tuple) else v for k, v in self.loss_options.items()}
        return stored_config(super().get_config(), self, names, loss_options=options, **self.switches)


def resolve_jit(jit_compile) -> str:
    """``True``/``False``/``"auto"``/``"full"``/``"loss"``/``"off"`` -> ``"full"``, ``"loss"`` or ``"off"``.

    ``True`` and ``"auto"`` mean ``"full"``, the fastest mode measured (bench/train_step.py).
    """
    if jit_compile is True or jit_compile == "auto":
        return "full"
    if jit_compile is False or jit_compile is None:
        return "off"
    if jit_compile in JIT_MODES:  # (config.JIT_MODES; "auto" is handled above)
        return jit_compile
    raise ValueError(f"jit_compile must be True, False, 'auto', 'full', 'loss' or 'off'; got {jit_compile!r}")


def aligned_plan(stages):
    """M-CVS/CVS plan: stage k adds its modalities, a block to every earlier and same-stage modality."""
    plan, seen = [], []
    for s in stages:
        new_pairs = [p for p in itertools.combinations(s, 2)]
        new_pairs += [(o, m) for m in s for o in seen]
        plan.append({"blocks": new_pairs, "pairs": new_pairs})
        seen += list(s)
    return plan


__all__ = ["CrossModalModel", "aligned_plan", "l2n", "order_modalities", "pair_key", "resolve_jit"]
