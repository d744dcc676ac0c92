"""The search space of ``python -m cvs_tf.tune`` as data: one :class:`Param` per tuned RunConfig field, sampled define-by-run.

The default space (:func:`default_space`, also in docs/tuning.md):

| parameter | RunConfig field | values |
|---|---|---|
| ``loss_kind`` | ``loss.kind`` | the registered kinds among semihard_triplet, supcon, infonce, dscmr, max_violation |
| ``dim`` | ``model.dim`` | 64 - 512, log scale |
| ``hidden_dim`` | ``model.hidden_dim`` | None (= dim) or 128 - 1024, log scale |
| ``depth`` | ``model.depth`` | 1 - 2 |
| ``dropout`` | ``model.dropout`` | 0 - 0.5 |
| ``standardize`` | ``model.standardize`` | False, True |
| ``weight_decay`` | ``train.weight_decay`` | 0 or 1e-5 - 1e-2, log scale |
| ``lr`` | ``train.lr`` | 1e-4 - 3e-3, log scale |
| ``label_smoothing`` | ``loss.label_smoothing`` | 0 - 0.2 |
| ``temperature`` | ``loss.temperature`` | 0.03 - 0.3, log scale; only for supcon and infonce |

A parameter with an ``alt`` value (hidden_dim's None, weight_decay's 0) first draws the switch
``<name>_tuned`` (False: the alt value; True: a value from the range). Every other field keeps the
base config's value. Tests and ``--search-space FILE`` shrink or extend the space with
:func:`override_space` (e.g. ``{"dim": {"low": 8, "high": 8}, "temperature": null}``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cvs_tf.config import ConfigError, RunConfig
from cvs_tf.utils.fields import is_number, json_kind, short

__all__ = ["DEFAULT_LOSS_KINDS", "Param", "SearchSpace", "default_space", "override_space", "resolve_loss_kinds"]

DEFAULT_LOSS_KINDS = ("semihard_triplet", "supcon", "infonce", "dscmr", "max_violation")
KINDS = ("int", "float", "choice")
LOSS_KIND_FIELD = "loss.kind"
LIST_FIELDS = ("choices", "alt", "when")  # the Param attributes a JSON space gives as lists


@dataclass(frozen=True)
class Param:
    """One tuned field: ``int``/``float`` in [low, high] (``log`` scale), or ``choice`` among ``choices``.

    ``alt``: empty, or one value tried besides the range (a ``<name>_tuned`` switch picks it);
    ``when``: loss kinds this parameter applies to (empty: all).
    """

    name: str
    field: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    alt: tuple = ()
    when: tuple[str, ...] = ()

    def check(self) -> None:
        """``ConfigError`` naming the parameter when it is malformed or its field is not a RunConfig field."""
        where = f"search space parameter {self.name!r}"
        section, _, name = self.field.partition(".")
        sub = getattr(RunConfig(), section, None)
        if not dataclasses.is_dataclass(sub) or name not in {f.name for f in dataclasses.fields(sub)}:
            raise ConfigError(f"{where}: {self.field!r} is not a RunConfig field (model.*, loss.* or train.*)")
        if self.kind not in KINDS:
            raise ConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        self._check_types(where)
        if self.kind == "choice":
            if not self.choices:
                raise ConfigError(f"{where}: a choice needs at least one value in 'choices'")
            if self.low is not None or self.high is not None or self.log or self.alt:
                raise ConfigError(f"{where}: a choice takes 'choices' only, not low/high/log/alt")
            self._check_values(where, self.choices)
            return
        if self.choices:
            raise ConfigError(f"{where}: 'choices' needs kind 'choice' (this parameter is an {self.kind} range "
                              "low..high); give low/high, or kind 'choice' with the choices")
        if self.low is None or self.high is None or not self.low <= self.high:
            raise ConfigError(f"{where}: needs low <= high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: a log scale needs low > 0, got {self.low}")
        if self.kind == "int" and (int(self.low) != self.low or int(self.high) != self.high):
            raise ConfigError(f"{where}: an int range needs integer bounds, got {self.low}, {self.high}")
        if len(self.alt) > 1:
            raise ConfigError(f"{where}: alt holds at most one value, got {list(self.alt)}")
        self._check_values(where, (self.low, self.high, *self.alt))

    def _check_types(self, where: str) -> None:
        """Each attribute has the JSON type a search-space file must give it."""
        for key in ("low", "high"):
            v = getattr(self, key)
            if v is not None and not is_number(v):
                raise ConfigError(f"{where}: {key} must be a finite number, got {json_kind(v)} {short(v)}")
        if not isinstance(self.log, bool):
            raise ConfigError(f"{where}: log must be true or false, got {json_kind(self.log)} {short(self.log)}")
        for key in ("choices", "alt"):
            for v in getattr(self, key):
                if v is not None and not isinstance(v, str | bool) and not is_number(v):
                    raise ConfigError(f"{where}: {key} must hold numbers, strings, true/false or null, "
                                      f"got {json_kind(v)} {short(v)}")
        if not all(isinstance(k, str) for k in self.when):
            raise ConfigError(f"{where}: when must be a list of loss kinds (strings), got {list(self.when)}")

    def _check_values(self, where: str, values) -> None:
        """Every value the parameter can take is legal for its field (as RunConfig.validate judges it alone;
        loss kinds are checked against the registry by :meth:`SearchSpace.check`)."""
        if self.field == LOSS_KIND_FIELD:
            return
        for v in values:
            try:
                apply_values(RunConfig(), {self.field: v})
            except ConfigError as exc:
                raise ConfigError(f"{where}: value {short(v)} is not allowed ({exc})") from None

    def sample(self, trial):
        """This parameter's value for an Optuna trial."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.alt and not trial.suggest_categorical(f"{self.name}_tuned", [False, True]):
            return self.alt[0]
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)


@dataclass(frozen=True)
class SearchSpace:
    """An ordered tuple of :class:`Param` (the loss kind first, so ``when`` can see it)."""

    params: tuple[Param, ...] = field(default_factory=tuple)

    def check(self) -> SearchSpace:
        names = [p.name for p in self.params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"search space: repeated parameter(s) {', '.join(dup)}")
        for p in self.params:
            if not isinstance(p.field, str):
                raise ConfigError(f"search space parameter {p.name!r}: field must be a string, got {short(p.field)}")
            twins = [q.name for q in self.params if q.field == p.field]
            if len(twins) > 1:
                raise ConfigError(f"search space: parameters {' and '.join(map(repr, twins))} both tune {p.field} "
                                  "(one parameter per field)")
        for p in self.params:
            p.check()
        kinds = self.loss_kinds
        if kinds is not None:
            from cvs_tf.losses import pair_loss_names

            unknown = [k for k in kinds if k not in pair_loss_names()]
            if unknown:
                raise ConfigError(f"unknown loss kind(s) {', '.join(unknown)} (registered: {', '.join(pair_loss_names())})")
        return self

    @property
    def loss_kinds(self) -> list[str] | None:
        """The loss kinds the space chooses among (None: the base config's kind only)."""
        p = next((p for p in self.params if p.field == LOSS_KIND_FIELD), None)
        return None if p is None else list(p.choices)

    def sample(self, trial, base: RunConfig) -> dict:
        """``{field: value}`` drawn for an Optuna trial (fields of parameters that do not apply are left out)."""
        values = {}
        for p in self.params:
            kind = values.get(LOSS_KIND_FIELD, base.loss.kind)
            if p.when and kind not in p.when:
                continue
            values[p.field] = p.sample(trial)
        return values

    def to_dict(self) -> dict:
        return {"params": [dataclasses.asdict(p) for p in self.params]}

    @classmethod
    def from_dict(cls, data: dict) -> SearchSpace:
        try:
            params = tuple(Param(**{k: tuple(v) if k in LIST_FIELDS and isinstance(v, list) else v for k, v in p.items()})
                           for p in data["params"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"search space: malformed ({exc})") from None
        return cls(params)


def resolve_loss_kinds(kinds=None) -> list[str]:
    """``kinds`` checked against the registry, or the registered ones of :data:`DEFAULT_LOSS_KINDS`."""
    from cvs_tf.losses import pair_loss_names

    known = pair_loss_names()
    if kinds is None:
        return [k for k in DEFAULT_LOSS_KINDS if k in known]
    kinds = list(dict.fromkeys(kinds))
    unknown = [k for k in kinds if k not in known]
    if unknown or not kinds:
        raise ConfigError(f"unknown loss kind(s) {', '.join(unknown) or '(none given)'} (registered: {', '.join(known)})")
    return kinds


def default_space(kinds=None) -> SearchSpace:
    """The default space (module docstring) over ``kinds`` (see :func:`resolve_loss_kinds`)."""
    return SearchSpace((
        Param("loss_kind", LOSS_KIND_FIELD, "choice", choices=tuple(resolve_loss_kinds(kinds))),
        Param("dim", "model.dim", "int", 64, 512, log=True),
        Param("hidden_dim", "model.hidden_dim", "int", 128, 1024, log=True, alt=(None,)),
        Param("depth", "model.depth", "int", 1, 2),
        Param("dropout", "model.dropout", "float", 0.0, 0.5),
        Param("standardize", "model.standardize", "choice", choices=(False, True)),
        Param("weight_decay", "train.weight_decay", "float", 1e-5, 1e-2, log=True, alt=(0.0,)),
        Param("lr", "train.lr", "float", 1e-4, 3e-3, log=True),
        Param("label_smoothing", "loss.label_smoothing", "float", 0.0, 0.2),
        Param("temperature", "loss.temperature", "float", 0.03, 0.3, log=True, when=("supcon", "infonce")),
    ))


def override_space(space: SearchSpace, overrides: dict) -> SearchSpace:
    """``space`` with ``{name: {field: value} | null}`` applied: null drops a parameter, an unknown name adds one
    (it then needs ``field`` and ``kind``); ``choices`` alone turns a range into a choice among them.
    The result is checked (:meth:`SearchSpace.check`)."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"search space overrides: expected an object of parameters, got {type(overrides).__name__}")
    params = {p.name: p for p in space.params}
    known = {f.name for f in dataclasses.fields(Param)} - {"name"}
    for name, change in overrides.items():
        if change is None:
            params.pop(name, None)
            continue
        if not isinstance(change, dict) or set(change) - known:
            raise ConfigError(f"search space parameter {name!r}: expected an object of {', '.join(sorted(known))}, "
                              f"got {change!r}")
        for key in LIST_FIELDS:
            if key in change and not isinstance(change[key], list):
                raise ConfigError(f"search space parameter {name!r}: {key} must be a list, got "
                                  f"{json_kind(change[key])} {short(change[key])}")
        for key in ("field", "kind"):
            if key in change and not isinstance(change[key], str):
                raise ConfigError(f"search space parameter {name!r}: {key} must be a string, got "
                                  f"{json_kind(change[key])} {short(change[key])}")
        change = {k: tuple(v) if k in LIST_FIELDS else v for k, v in change.items()}
        if name in params and "choices" in change and "kind" not in change and params[name].kind != "choice":
            change = {"kind": "choice", "low": None, "high": None, "log": False, "alt": (), **change}
        try:
            params[name] = dataclasses.replace(params[name], **change) if name in params else Param(name, **change)
        except TypeError as exc:
            raise ConfigError(f"search space parameter {name!r}: {exc}") from None
    return SearchSpace(tuple(params.values())).check()


def apply_values(base: RunConfig, values: dict) -> RunConfig:
    """A copy of ``base`` with ``{field: value}`` set, validated (``ConfigError`` names a bad value)."""
    cfg = RunConfig.from_dict(base.to_dict())
    for path, value in values.items():
        section, _, name = path.partition(".")
        setattr(getattr(cfg, section), name, value)
    return cfg.validate()


def describe(values: dict) -> str:
    """A short one-line form of sampled values (the loss kind first, floats to 3 significant digits)."""
    parts = [str(values[LOSS_KIND_FIELD])] if LOSS_KIND_FIELD in values else []
    for path, v in values.items():
        if path == LOSS_KIND_FIELD:
            continue
        text = f"{v:.3g}" if isinstance(v, float) else str(v)
        parts.append(f"{path.partition('.')[2]}={text}")
    return " ".join(parts)
