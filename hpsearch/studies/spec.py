"""Study specs: a TOML file says what to search; this module turns it into a typed, validated object.

A spec is data, not code. Every problem found in one is reported as ``<file>: <key>: <problem>``, all of
them at once, so a user fixes a spec in one pass.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import re
import tomllib
import typing
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import optuna

from hpsearch.datasets.options import DataOptions, number
from hpsearch.errors import SpecError

Cell = Literal["rnn", "gru", "lstm"]
Implementation = Literal["builtin", "handwritten"]  # torch.nn's fused layers or hpsearch.models.cells
Nonlinearity = Literal["tanh", "relu"]
Optimizer = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax"]
Schedule = Literal["constant", "cosine"]


@dataclass(frozen=True)
class Limit:
    """The values a numeric hyperparameter can take at all; a spec's ranges must lie inside."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def admits(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        low = f"{'>' if self.low_open else '>='} {self.low:g}"
        if math.isinf(self.high):
            return low
        return f"{low} and {'<' if self.high_open else '<='} {self.high:g}"


@dataclass(frozen=True)
class Hyperparams:
    """Everything one trial trains with. A spec's space may set any of these; the rest keep these defaults."""

    cell: Cell = "lstm"
    implementation: Implementation = "builtin"
    nonlinearity: Nonlinearity = "tanh"
    bidirectional: bool = False
    num_layers: int = 1
    hidden_size: int = 128
    embedding_dim: int = 32
    dropout: float = 0.0
    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 64
    grad_clip: float = 0.0  # max gradient norm; 0 turns clipping off
    lr_schedule: Schedule = "constant"  # cosine decays the rate to 0 over the trial's max epochs
    # Loss weight of a class is proportional to (its training count) ** -class_balance: 0 is plain cross
    # entropy, 1 weighs every class equally (balanced accuracy up, plain accuracy down).
    class_balance: float = 0.0

    # What the model, the optimizers and the loss accept, checked when a spec loads rather than when a trial
    # that drew an impossible value fails. A task's subclass adds the limits of its own fields.
    limits: ClassVar[dict[str, Limit]] = {
        "num_layers": Limit(1), "hidden_size": Limit(1), "embedding_dim": Limit(1), "batch_size": Limit(1),
        "dropout": Limit(0, 1, high_open=True), "lr": Limit(0, low_open=True),
        "momentum": Limit(0, 1, high_open=True), "weight_decay": Limit(0), "grad_clip": Limit(0),
        "class_balance": Limit(0, 1),
    }

    def seed(self) -> int:
        """A seed derived from the values alone, so the same configuration trains the same way again."""
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).digest()
        return int.from_bytes(digest[:4], "little")



# A study name becomes a folder name (checkpoints, reports), an MLflow experiment and part of URLs.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")

# Costs a multi-objective spec may name as its second objective: mean seconds per epoch, or parameter count.
COSTS = {"epoch_seconds": "minimize", "n_params": "minimize"}

SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler, "gp": optuna.samplers.GPSampler}
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}


@dataclass(frozen=True)
class Component:
    """A sampler or pruner: its registry name and the keyword arguments for its constructor."""

    type: str
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, registry: dict[str, type], **overrides: Any) -> Any:
        with warnings.catch_warnings():
            # The spec chose the option (e.g. TPE's `group`); warning on every start helps nobody.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return registry[self.type](**{**self.options, **overrides})


class TaskDeclaration(Protocol):
    """What a spec is checked against: a task's metrics, data settings and parameters (see training/task.py)."""

    objective: str
    data_options: type[DataOptions]
    hyperparams: type[Hyperparams]
    unused: Mapping[str, str]  # fields of hyperparams the task ignores, each with why

    def selectable(self) -> dict[str, str]: ...

    def check_space(self, space: Sequence[Param]) -> list[str]: ...


@dataclass(frozen=True)
class Param:
    """One dimension of the search space, sampled only when every ``when`` condition holds."""

    name: str
    kind: Literal["categorical", "int", "float", "fixed"]
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    value: Any = None
    when: dict[str, tuple] = field(default_factory=dict)

    def admits(self, value: Any) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        if self.kind in ("int", "float"):
            return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high
        return False  # a fixed value is not a search dimension

    def active(self, chosen: dict[str, Any]) -> bool:
        return all(name in chosen and chosen[name] in allowed for name, allowed in self.when.items())

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        return self.value


@dataclass(frozen=True)
class StopRule:
    """Stop the whole study once its best value has improved by no more than ``min_delta`` over the last
    ``trials`` finished trials (the spec's ``[stop]`` table)."""

    trials: int
    min_delta: float = 0.0


@dataclass(frozen=True)
class StudySpec:
    name: str
    path: Path
    task: str
    metrics: tuple[str, ...]  # one validation metric, then optionally one of COSTS: a multi-objective study
    directions: tuple[str, ...]
    n_trials: int
    max_epochs: int
    prune_on: str  # the validation metric reported to the pruner, best so far, after every epoch
    description: str = ""
    data: DataOptions = field(default_factory=DataOptions)  # the task's own subclass
    hyperparams: type[Hyperparams] = Hyperparams
    sampler: Component = Component("tpe")
    pruner: Component = Component("median")
    space: tuple[Param, ...] = ()
    enqueue: tuple[dict[str, Any], ...] = ()  # configurations a new study tries first
    stop: StopRule | None = None
    timeout: float | None = None  # seconds after which a run starts no new trial; --timeout overrides
    # What a classification study's served model answers for (search/served.py): validation metrics and their
    # weights, summing to 1.
    serve_metric: dict[str, float] = field(default_factory=dict)
    unused: frozenset[str] = frozenset()  # fields of hyperparams the task ignores

    @property
    def metric(self) -> str:
        return self.metrics[0]

    @property
    def direction(self) -> str:
        return self.directions[0]

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def sample(self, trial: optuna.Trial) -> Hyperparams:
        """Draw one configuration; a conditional param is asked for only when its conditions hold."""
        chosen: dict[str, Any] = {}
        for param in self.space:
            if param.active(chosen):
                chosen[param.name] = param.suggest(trial)
        return self.hyperparams(**chosen)

    def applicable(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` (a trial's full configuration) without what the trial never used: the conditional
        parameters whose conditions did not hold for it (an LSTM's nonlinearity, Adam's momentum) and the fields
        its task ignores. Their defaults, shown, would read as choices."""
        held: dict[str, Any] = {}
        for param in self.space:  # in sample()'s order, so a condition sees what sample() saw
            if param.name in config and param.active(held):
                held[param.name] = config[param.name]
        unused = self.unused | ({param.name for param in self.space} - held.keys())
        return {name: value for name, value in config.items() if name not in unused}


_TOP_KEYS = {"name", "description", "task", "metric", "direction", "prune_on", "serve_metric", "n_trials",
             "max_epochs", "timeout", "data", "sampler", "pruner", "space", "enqueue", "stop"}
_PARAM_KEYS = {"type", "choices", "low", "high", "step", "log", "value", "when"}


def builtin_names() -> list[str]:
    return sorted(p.name.removesuffix(".toml") for p in resources.files(__package__).iterdir()
                  if p.name.endswith(".toml"))


def resolve(ref: str) -> Path:
    """A built-in name, or a path to a ``.toml`` file."""
    path = Path(ref).expanduser()
    if ref.endswith(".toml") or path.parent != Path("."):
        if not path.is_file():
            raise SpecError(f"study spec file not found: {path}")
        return path.resolve()
    if ref in builtin_names():
        return Path(str(resources.files(__package__) / f"{ref}.toml"))
    raise SpecError(f"unknown study '{ref}'; built-in studies: {', '.join(builtin_names())} "
                    "(or pass the path of a .toml spec)")


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None


def name_of(ref: str) -> str:
    """The study name a spec gives, without validating the rest (which would import its task)."""
    path = resolve(ref)
    problems: list[str] = []
    name = _name(_read(path), path, problems)
    if problems:
        raise SpecError(f"{path}: {problems[0]}")
    return name


def outline(ref: str) -> dict[str, Any]:
    """Name, task, objective, budget and description of a spec as written, for listing specs: validating them
    would import every task, and with it torch."""
    path = resolve(ref)
    raw = _read(path)
    metric = raw.get("metric", "")
    return {"name": raw.get("name", path.stem), "task": raw.get("task"),
            "metric": ",".join(metric) if isinstance(metric, list) else metric,
            "n_trials": raw.get("n_trials", 40), "description": raw.get("description", "")}


def load_spec(ref: str, tasks: Mapping[str, TaskDeclaration]) -> StudySpec:
    """Read and validate a spec; ``tasks`` are the tasks this installation can train, by name."""
    path = resolve(ref)
    raw = _read(path)
    problems: list[str] = []
    spec = _build(raw, path, tasks, problems)
    if problems:
        raise SpecError("\n".join(f"{path}: {p}" for p in problems))
    return spec


def _build(raw: dict, path: Path, tasks: Mapping[str, TaskDeclaration], problems: list[str]) -> StudySpec | None:
    problems += [f"{k}: unknown key (known: {', '.join(sorted(_TOP_KEYS))})" for k in raw if k not in _TOP_KEYS]
    name = _name(raw, path, problems)
    if not isinstance(raw.get("description", ""), str):
        problems.append(f"description: must be a string, got {raw['description']!r}")
    task_name = raw.get("task")
    if not isinstance(task_name, str) or task_name not in tasks:
        problems.append(f"task: unknown task {task_name!r} (known: {', '.join(sorted(tasks))})")
        task = None
    else:
        task = tasks[task_name]
    metrics, directions = _objectives(raw, task, problems)
    prune_on = _prune_on(raw, task, metrics, directions, problems)
    serve_metric = _serve_metric(raw, task, metrics[0], problems)
    for key, default in (("n_trials", 40), ("max_epochs", 20)):
        value = raw.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{key}: must be a whole number >= 1, got {value!r}")
    timeout = raw.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0):
        problems.append(f"timeout: must be a number of seconds > 0, got {timeout!r}")
    data = _data_options(raw.get("data", {}), task.data_options if task else DataOptions, problems)
    hyperparams = task.hyperparams if task else Hyperparams
    sampler = _component("sampler", raw.get("sampler", {}), SAMPLERS, "tpe", problems)
    pruner = _component("pruner", raw.get("pruner", {}), PRUNERS, "none" if len(metrics) > 1 else "median", problems)
    if len(metrics) > 1 and pruner.type != "none":
        problems.append('pruner: Optuna cannot prune a multi-objective study; set type = "none" or drop [pruner]')
    if "space" not in raw:
        problems.append("space: missing; add a [space] table of the parameters to search (or fix)")
    space = _space(raw.get("space", {}), hyperparams, problems)
    if task and not problems:
        problems += task.check_space(space)
    enqueue = _enqueue(raw.get("enqueue", []), space, problems)
    stop = _stop(raw.get("stop"), len(metrics) > 1, problems)
    if problems:
        return None
    return StudySpec(name=name, path=path, task=task_name, metrics=metrics, directions=directions,
                     n_trials=raw.get("n_trials", 40), max_epochs=raw.get("max_epochs", 20), prune_on=prune_on,
                     description=raw.get("description", ""), data=data, hyperparams=hyperparams, sampler=sampler,
                     pruner=pruner, space=space, enqueue=enqueue, stop=stop, timeout=timeout,
                     serve_metric=serve_metric, unused=frozenset(task.unused))


def _name(raw: dict, path: Path, problems: list[str]) -> str:
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        source = "name" if "name" in raw else f"name: {name!r}, from the file name,"
        problems.append(f"{source} must be letters, digits and -_.: starting with a letter or digit, with no "
                        f"path parts (got {name!r}); set `name = \"my-study\"`")
    return name


def _objectives(raw: dict, task: TaskDeclaration | None,
                problems: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``metric`` is one validation metric of the task, or a list of it and one cost; ``direction`` follows each."""
    selectable = task.selectable() if task else {}
    given = raw.get("metric", task.objective if task else "val_loss")
    metrics = tuple(given) if isinstance(given, list) else (given,)
    if not 1 <= len(metrics) <= 2:
        problems.append(f"metric: name one metric, or a metric and a cost; got {given!r}")
        return ("val_loss",), ("minimize",)
    if task and metrics[0] not in selectable:
        problems.append(f"metric: unknown metric {metrics[0]!r} (known: {', '.join(selectable)})")
    if len(metrics) == 2 and metrics[1] not in COSTS:
        problems.append(f"metric: the second objective must be a cost ({', '.join(COSTS)}), got {metrics[1]!r}")
    natural = {**selectable, **COSTS}
    given_directions = raw.get("direction", [natural.get(m, "maximize") for m in metrics])
    directions = tuple(given_directions) if isinstance(given_directions, list) else (given_directions,)
    if len(directions) != len(metrics):
        problems.append(f"direction: give one per metric ({len(metrics)}), got {given_directions!r}")
    for metric, direction in zip(metrics, directions, strict=False):
        if metric in natural and direction != natural[metric]:
            problems.append(f"direction: {metric} must be {natural[metric]}d, not {direction!r}")
    return metrics, directions


def _prune_on(raw: dict, task: TaskDeclaration | None, metrics: tuple[str, ...], directions: tuple[str, ...],
              problems: list[str]) -> str:
    """The pruner compares values in the study's direction, so the metric it is given must share it."""
    prune_on = raw.get("prune_on", metrics[0])
    if task is None or "prune_on" not in raw:
        return prune_on
    selectable = task.selectable()
    if prune_on not in selectable:
        problems.append(f"prune_on: unknown metric {prune_on!r} (known: {', '.join(selectable)})")
    elif selectable[prune_on] != directions[0]:
        problems.append(f"prune_on: {prune_on} is {selectable[prune_on]}d, but the study is {directions[0]}d; "
                        f"prune on a metric that is {directions[0]}d too")
    return prune_on


def _serve_metric(raw: dict, task: TaskDeclaration | None, metric: str, problems: list[str]) -> dict[str, float]:
    """What a classification study's served model answers for: a validation metric to maximize, or a table of
    them with weights (made to sum to 1)."""
    if "serve_metric" not in raw:
        return {metric: 1.0}
    if not task:  # its own problem is already named
        return {}
    chosen = raw["serve_metric"]
    maximized = [m for m, direction in task.selectable().items() if direction == "maximize"]
    known = f"(known: {', '.join(maximized)})"
    if isinstance(chosen, str):
        if chosen not in maximized:
            problems.append(f"serve_metric: {chosen!r} is not a validation metric to maximize {known}")
        return {chosen: 1.0}
    if not isinstance(chosen, dict) or not chosen:
        problems.append(f"serve_metric: must be a validation metric's name or a table of them with weights, e.g. "
                        f"{{ val_accuracy = 0.6, val_balanced_accuracy = 0.4 }}; got {chosen!r}")
        return {}
    wrong = [f"serve_metric.{name}: not a validation metric to maximize {known}" if name not in maximized
             else f"serve_metric.{name}: a weight must be a number > 0, got {weight!r}"
             for name, weight in chosen.items() if name not in maximized or not (number(weight) and weight > 0)]
    if wrong:
        problems += wrong
        return {}
    total = sum(chosen.values())
    return {name: weight / total for name, weight in chosen.items()}


def _stop(raw: Any, multi: bool, problems: list[str]) -> StopRule | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append("stop: must be a table, e.g. [stop] trials = 15, min_delta = 0.002")
        return None
    if multi:
        problems.append("stop: a multi-objective study has no single best value to watch; remove [stop]")
    problems += [f"stop.{k}: unknown key (known: min_delta, trials)" for k in raw if k not in ("trials", "min_delta")]
    trials, min_delta = raw.get("trials"), raw.get("min_delta", 0.0)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        problems.append(f"stop.trials: must be a whole number >= 1 of finished trials, got {trials!r}")
    if not number(min_delta) or min_delta < 0:
        problems.append(f"stop.min_delta: must be a number >= 0, got {min_delta!r}")
    return StopRule(trials, min_delta) if not multi else None


def _data_options(raw: Any, kind: type[DataOptions], problems: list[str]) -> DataOptions:
    known = {f.name: f for f in dataclasses.fields(kind)}
    if not isinstance(raw, dict):
        problems.append("data: must be a table")
        return kind()
    problems += [f"data.{k}: unknown key (known: {', '.join(sorted(known))})" for k in raw if k not in known]
    options = kind(**{k: v for k, v in raw.items() if k in known})
    problems += options.problems()
    return options


def _component(section: str, raw: Any, registry: dict, default: str, problems: list[str]) -> Component:
    if not isinstance(raw, dict):
        problems.append(f"{section}: must be a table")
        return Component(default)
    before = len(problems)
    options = dict(raw)
    kind = options.pop("type", default)
    if kind not in registry:
        problems.append(f"{section}.type: unknown {section} {kind!r} (known: {', '.join(registry)})")
        return Component(default)
    accepted = inspect.signature(registry[kind]).parameters
    unknown = [k for k in options if k not in accepted]
    problems += [f"{section}.{k}: not an option of {registry[kind].__name__}" for k in unknown]
    # Constructors check few types themselves; a wrong one would fail the first trial, not the load.
    problems += [f"{section}.{k}: must be {describe_type(type(accepted[k].default))} like its default "
                 f"({accepted[k].default!r}), got {v!r}"
                 for k, v in options.items() if k not in unknown and not _like(v, accepted[k].default)]
    if "seed" in options and (not isinstance(options["seed"], int) or isinstance(options["seed"], bool)):
        problems.append(f"{section}.seed: must be a whole number, got {options['seed']!r}")
    component = Component(kind, options)
    if len(problems) == before:
        try:
            component.build(registry)
        except (TypeError, ValueError) as exc:
            problems.append(f"{section}: {exc}")
    return component


def _space(raw: Any, hyperparams: type[Hyperparams], problems: list[str]) -> tuple[Param, ...]:
    if not isinstance(raw, dict):
        problems.append("space: must be a table of parameters")
        return ()
    hints = typing.get_type_hints(hyperparams)
    types = {f.name: hints[f.name] for f in dataclasses.fields(hyperparams)}
    params: list[Param] = []
    for name, given in raw.items():
        if name not in types:
            problems.append(f"space.{name}: unknown parameter (known: {', '.join(types)})")
            continue
        # A list is several definitions of one parameter, each under conditions that exclude the others
        # (a learning-rate range per optimizer); `lr = 0.01` is shorthand for a fixed value.
        several = isinstance(given, list) and all(isinstance(body, dict) for body in given) and given
        bodies = given if several else [given if isinstance(given, dict) else {"value": given}]
        for i, body in enumerate(bodies):
            key = f"space.{name}[{i}]" if several else f"space.{name}"
            param = _param(name, body, key, types[name], hyperparams.limits.get(name), problems)
            if param is None:
                continue
            for cond, allowed in param.when.items():
                values = {v for p in params if p.name == cond for v in _values(p)}
                if not any(p.name == cond for p in params):
                    where = "is declared after it" if cond in raw else "is not in the space"
                    problems.append(f"{key}.when: condition on {cond!r}, which {where}")
                elif values and (bad := [v for v in allowed if v not in values]):
                    problems.append(f"{key}.when: {cond} can never be {', '.join(map(repr, bad))}")
            problems += [f"{key}: its `when` can hold together with that of {name}[{j}]; give each definition "
                         "conditions that exclude the others" for j, other in enumerate(p for p in params if p.name == name)
                         if not _exclusive(param, other)]
            params.append(param)
    return tuple(params)


def _exclusive(a: Param, b: Param) -> bool:
    """No configuration meets the conditions of both: some parameter is required to take disjoint values."""
    return any(set(a.when[name]).isdisjoint(b.when[name]) for name in a.when.keys() & b.when.keys())


def _enqueue(raw: Any, space: tuple[Param, ...], problems: list[str]) -> tuple[dict[str, Any], ...]:
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        problems.append("enqueue: must be a list of tables, e.g. [[enqueue]]")
        return ()
    for i, entry in enumerate(raw):
        for name, value in entry.items():
            # The definitions whose conditions the entry's own values do not rule out.
            defined = [p for p in space if p.name == name
                       and all(cond not in entry or entry[cond] in allowed for cond, allowed in p.when.items())]
            if not any(p.name == name for p in space):
                problems.append(f"enqueue[{i}].{name}: not a searched parameter of the space")
            elif not any(p.admits(value) for p in defined):
                problems.append(f"enqueue[{i}].{name}: {value!r} is outside the space")
    return tuple(raw)


def _param(name: str, body: dict, key: str, hp_type: Any, limit: Limit | None, problems: list[str]) -> Param | None:
    before = len(problems)
    problems += [f"{key}.{k}: unknown key (known: {', '.join(sorted(_PARAM_KEYS))})"
                 for k in body if k not in _PARAM_KEYS]
    kind = body.get("type") or _infer_kind(body)
    if kind not in ("categorical", "int", "float", "fixed"):
        problems.append(f"{key}.type: must be categorical, int, float or fixed, got {kind!r}")
        return None
    when = body.get("when", {})
    if not isinstance(when, dict):
        problems.append(f"{key}.when: must be a table like {{ optimizer = \"sgd\" }}")
        when = {}
    when = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in when.items()}
    if kind == "fixed":
        if "value" not in body:
            problems.append(f"{key}: a fixed parameter needs `value`")
        elif not _fits(body["value"], hp_type):
            problems.append(f"{key}.value: {body['value']!r} is not a valid {name} ({describe_type(hp_type)})")
        else:
            problems += _outside_limit(name, limit, key + ".value", [body["value"]])
        param = Param(name, kind, value=body.get("value"), when=when)
    elif kind == "categorical":
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices:
            problems.append(f"{key}.choices: must be a non-empty list")
            return None
        problems += [f"{key}.choices: {c!r} is not a valid {name} ({describe_type(hp_type)})"
                     for c in choices if not _fits(c, hp_type)]
        if len(problems) == before:
            problems += _outside_limit(name, limit, key + ".choices", choices)
        param = Param(name, kind, choices=tuple(choices), when=when)
    else:
        param = _range_param(name, kind, body, key, hp_type, limit, when, problems)
    return param if len(problems) == before else None


def _range_param(name: str, kind: str, body: dict, key: str, hp_type: Any, limit: Limit | None, when: dict,
                 problems: list[str]) -> Param:
    number = int if kind == "int" else (int, float)
    if hp_type not in (int, float) or (kind == "float" and hp_type is int):
        problems.append(f"{key}: {name} takes {describe_type(hp_type)}, not a {kind} range")
    low, high, step, log = body.get("low"), body.get("high"), body.get("step"), body.get("log", False)
    before = len(problems)
    for bound, value in (("low", low), ("high", high)):
        if not isinstance(value, number) or isinstance(value, bool) or not math.isfinite(value):
            problems.append(f"{key}.{bound}: must be {'a whole number' if kind == 'int' else 'a finite number'}, "
                            f"got {value!r}")
    if not isinstance(log, bool):
        problems.append(f"{key}.log: must be true or false")
    if step is not None and (not isinstance(step, number) or isinstance(step, bool) or not step > 0
                             or not math.isfinite(step)):
        problems.append(f"{key}.step: must be a positive {'whole ' if kind == 'int' else ''}number")
    if len(problems) == before:
        if low > high:
            problems.append(f"{key}: low ({low}) is greater than high ({high})")
        if log is True and low <= 0:
            problems.append(f"{key}: log scale needs low > 0, got {low}")
        # Optuna refuses both together for floats, and for ints unless the step is 1.
        if log is True and step is not None and (kind == "float" or step != 1):
            problems.append(f"{key}: step and log cannot be used together")
    if len(problems) == before and hp_type in (int, float):
        problems += _outside_limit(name, limit, key, [low, high])
    return Param(name, kind, low=low, high=high, step=step, log=log, when=when)


def _outside_limit(name: str, limit: Limit | None, key: str, values: list) -> list[str]:
    return [f"{key}: {value!r} is not a possible {name} (must be {limit})"
            for value in values if limit and not limit.admits(value)]


def _like(value: Any, default: Any) -> bool:
    """Whether ``value`` has the type of a constructor's default (any value where the default says nothing)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return number(value)
    return True


def _infer_kind(body: dict) -> str:
    if "choices" in body:
        return "categorical"
    if "value" in body:
        return "fixed"
    bounds = (body.get("low"), body.get("high"))
    return "int" if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds) else "float"


def _fits(value: Any, hp_type: Any) -> bool:
    if typing.get_origin(hp_type) is Literal:
        return value in typing.get_args(hp_type)
    if hp_type is float:
        return number(value)
    return type(value) is hp_type


def describe_type(hp_type: Any) -> str:
    if typing.get_origin(hp_type) is Literal:
        return "one of " + ", ".join(typing.get_args(hp_type))
    return {bool: "true or false", int: "a whole number", float: "a number"}[hp_type]


def _values(param: Param) -> tuple:
    """The values a condition on ``param`` can meet; empty for a range, which is not checked."""
    if param.kind == "categorical":
        return param.choices
    if param.kind == "fixed":
        return (param.value,)
    return ()
