"""An ablation's design: a base configuration, the factors that vary one at a time around it and their
levels, and the seeds every level trains with.

Like a spec, a design is data: it is stored on the ablation's study and read back by the report. Each trial
of an ablation is one (factor, level, repeat); the base configuration's trials (no factor) are shared by every
factor, and repeat ``r`` of every level trains with the same seed, so the differences between levels are paired.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hpsearch.errors import HpsearchError
from hpsearch.studies.spec import Hyperparams, Param, StudySpec, describe_type

# Around a base value b, a numeric factor with no levels given takes: b times these, for a log-scaled range
# of floats (learning rates) or whole numbers (widths); every value of a short range of whole numbers
# (layers 1-4); and SPREAD evenly spaced values of any other range, with b.
FLOAT_FACTORS = (0.1, 0.3, 1, 3, 10)
INT_FACTORS = (0.25, 0.5, 1, 2, 4)
ALL_OF_RANGE = 6
SPREAD = 5

ABLATION_ATTR = "ablation"  # the design, as a user attr of the ablation's study


@dataclass(frozen=True)
class Run:
    """One planned trial: ``factor`` None is the base configuration."""

    factor: str | None
    level: Any
    repeat: int

    @property
    def params(self) -> dict[str, Any]:
        """The trial's Optuna params: what tells it apart, so that queueing it twice is noticed."""
        return {"repeat": self.repeat, **({self.factor: self.level} if self.factor else {})}


@dataclass(frozen=True)
class Design:
    parent: str  # the study whose trial is the base
    base_trial: int
    base: dict[str, Any]  # the base trial's full configuration
    seed: int  # the seed of repeat 0: the base trial's own, so that its first repeat reproduces it
    max_epochs: int
    factors: dict[str, tuple]  # name -> levels, the base value among them
    repeats: int
    rank_by: str  # the recorded number the report ranks levels by
    maximize: bool

    def runs(self) -> list[Run]:
        """Every trial the design asks for; the base's trials once, however many factors there are."""
        runs = []
        for repeat in range(self.repeats):
            runs.append(Run(None, None, repeat))
            runs += [Run(name, level, repeat) for name, levels in self.factors.items()
                     for level in levels if level != self.base[name]]
        return runs

    def seed_of(self, repeat: int) -> int:
        return (self.seed + repeat) % 2**32

    def hyperparams(self, run: Run, kind: type[Hyperparams]) -> Hyperparams:
        return kind(**{**self.base, **({run.factor: run.level} if run.factor else {})})

    def differs(self, stored: Design) -> str | None:
        """Why trials of ``stored`` cannot be compared with this design's, or None when they can."""
        if (self.parent, self.base_trial) != (stored.parent, stored.base_trial):
            return f"it varies trial {stored.base_trial} of '{stored.parent}', not trial {self.base_trial}"
        if self.base != stored.base:
            return f"trial {self.base_trial} of '{self.parent}' is not the configuration its trials varied"
        if self.max_epochs != stored.max_epochs:
            return f"its trials trained {stored.max_epochs} epochs, not {self.max_epochs}"
        return None

    def joined(self, stored: Design) -> Design:
        """This design with the factors, levels and repeats ``stored`` already has, so none is forgotten."""
        factors = {name: _ordered([*stored.factors.get(name, ()), *self.factors.get(name, ())])
                   for name in {**stored.factors, **self.factors}}
        return dataclasses.replace(self, factors=factors, repeats=max(self.repeats, stored.repeats))

    def to_attr(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "factors": {k: list(v) for k, v in self.factors.items()}}

    @classmethod
    def from_attr(cls, attr: dict[str, Any]) -> Design:
        return cls(**{**attr, "factors": {k: tuple(v) for k, v in attr["factors"].items()}})


def parse_factor(text: str) -> tuple[str, tuple[str, ...] | None]:
    """``cell`` or ``lr=1e-4,1e-3``: a factor's name and, when given, its levels as written."""
    name, _, levels = text.partition("=")
    return name.strip(), tuple(v.strip() for v in levels.split(",") if v.strip()) if "=" in text else None


def levels(name: str, given: Sequence[str] | None, spec: StudySpec, base: dict[str, Any]) -> tuple:
    """The levels of one factor, the base value among them; one-line HpsearchError for a factor that cannot vary."""
    hints = typing.get_type_hints(spec.hyperparams)
    fields = [f.name for f in dataclasses.fields(spec.hyperparams)]
    if name not in fields:
        raise HpsearchError(f"--factor {name}: not a parameter of task {spec.task} (known: {', '.join(fields)})")
    defined = [p for p in spec.space if p.name == name]
    param = next((p for p in defined if p.active(base)), defined[0] if defined else None)  # the base's definition
    if param is not None and not param.active(base):
        raise HpsearchError(f"--factor {name}: the spec uses it only when {_conditions(param)}, and the base trial "
                            "does not; pick a base trial that uses it with --base N")
    kind, value = hints[name], base[name]
    if given == ():
        raise HpsearchError(f"--factor {name}=: no level after '='; give them as --factor {name}=V1,V2 or drop '='")
    if given is not None:
        chosen = [_parse(name, text, kind) for text in given]
    elif param is not None and param.kind == "categorical":
        chosen = list(param.choices)
    elif typing.get_origin(kind) is Literal:
        chosen = list(typing.get_args(kind))
    elif kind is bool:
        chosen = [True, False]
    elif param is not None and param.kind in ("int", "float"):
        chosen = _spread(param, value, kind is int)
    else:
        raise HpsearchError(f"--factor {name}: the spec fixes it at {value!r}, so there is no range to vary around; "
                            f"give the levels, e.g. --factor {name}={value},{_example(value)}")
    limit = spec.hyperparams.limits.get(name)
    if bad := [v for v in chosen if limit and not limit.admits(v)]:
        raise HpsearchError(f"--factor {name}: {', '.join(map(repr, bad))} is not a possible {name} (must be {limit})")
    return _ordered([*chosen, value])


def _ordered(values: list) -> tuple:
    """Distinct levels; numbers in increasing order, choices in the order given."""
    distinct = list(dict.fromkeys(values))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
    return tuple(sorted(distinct) if numeric else distinct)


def _conditions(param: Param) -> str:
    return " and ".join(f"{k} is {' or '.join(map(str, v))}" for k, v in param.when.items())


def _parse(name: str, text: str, kind: Any) -> Any:
    try:
        if typing.get_origin(kind) is Literal:
            if text not in typing.get_args(kind):
                raise ValueError
            return text
        if kind is bool:
            return {"true": True, "false": False}[text.lower()]
        value = kind(text)
        if kind is float and not math.isfinite(value):
            raise ValueError
        return value
    except (ValueError, KeyError):
        raise HpsearchError(f"--factor {name}: {text!r} is not a valid {name} ({describe_type(kind)})") from None


def _spread(param: Param, base: float, whole: bool) -> list:
    if whole and param.high - param.low + 1 <= ALL_OF_RANGE:
        return list(range(int(param.low), int(param.high) + 1))
    if param.log and base > 0:
        if whole:
            return [max(1, round(base * f)) for f in INT_FACTORS]
        return [base if f == 1 else float(f"{base * f:.4g}") for f in FLOAT_FACTORS]
    step = (param.high - param.low) / (SPREAD - 1)
    values = [param.low + i * step for i in range(SPREAD)]
    return [round(v) for v in values] if whole else [float(f"{v:.4g}") for v in values]


def _example(value: Any) -> Any:
    if isinstance(value, bool):
        return str(not value).lower()
    if isinstance(value, (int, float)) and value:
        return value * 2
    return 1
