"""A trained model as bytes and back: the task's name, the configuration, what the task needs to rebuild the
model, and the weights; or, for a study's served model, its members (trials' models and the fitted n-gram models)
and how they are combined. Loaded with ``weights_only=True``: a checkpoint holds no code."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import torch
from torch import nn

from hpsearch.errors import HpsearchError
from hpsearch.models.ensemble import Ensemble
from hpsearch.models.ngram import NgramLinear
from hpsearch.studies import Hyperparams
from hpsearch.training.registry import TASKS
from hpsearch.training.task import Task

if TYPE_CHECKING:  # training/ is plain torch: a trial and a study are only types here
    from optuna import Study
    from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class Trained:
    """A model ready to use, with the task that knows how to feed it."""

    task: Task
    model: nn.Module
    hyperparams: Hyperparams | None  # None for an ensemble, whose members each have their own
    meta: dict[str, Any]

    def predict(self, arguments: Sequence[str], lines: Sequence[str], top_k: int) -> list[dict[str, Any]]:
        queries = self.task.queries(arguments, lines)
        if not queries:
            raise HpsearchError("nothing to predict: give the input as arguments, or one per line on stdin")
        return self.task.predict(self.model, self.meta, queries, top_k)


class ModelSource(Protocol):
    """Where a trial's trained model, and a study's served one, are found (the study's artifact store:
    search/artifacts.Checkpoints)."""

    def load(self, trial: FrozenTrial) -> Trained: ...

    def served(self, study: Study) -> Trained | None: ...


def to_bytes(task: Task, hp: Hyperparams, meta: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({"task": task.name, "hyperparams": dataclasses.asdict(hp), "meta": dict(meta),
                "state_dict": {k: v.detach().cpu() for k, v in state.items()}}, buffer)
    return buffer.getvalue()


def ensemble_to_bytes(task: Task, meta: Mapping[str, Any], model: Ensemble,
                      hyperparams: Sequence[Hyperparams | None]) -> bytes:
    """A served ensemble: each member rebuilt from its trial's ``hyperparams``, or None for a fitted n-gram model."""
    saved = [{"ngram": m.options} if hp is None else {"hyperparams": dataclasses.asdict(hp)}
             for m, hp in zip(model.members, hyperparams, strict=True)]
    buffer = io.BytesIO()
    torch.save({"task": task.name, "meta": dict(meta), "members": saved,
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, buffer)
    return buffer.getvalue()


def load(source: str | Path | BinaryIO | bytes) -> Trained:
    """The model a trial saved, or a study's served ensemble (a file, a stream or its bytes), in eval mode, on
    the CPU."""
    checkpoint = torch.load(io.BytesIO(source) if isinstance(source, bytes) else source, map_location="cpu",
                            weights_only=True)
    if checkpoint["task"] not in TASKS:
        raise HpsearchError(f"the checkpoint is of task {checkpoint['task']!r}, which this installation does not "
                            f"have (tasks: {', '.join(TASKS)})")
    task = TASKS[checkpoint["task"]]
    # Checkpoints from before the task plug-ins kept the surname classifier's classes and vocabulary at the top.
    meta = checkpoint.get("meta") or {k: checkpoint[k] for k in ("classes", "vocab_size") if k in checkpoint}
    if "members" in checkpoint:
        members = [NgramLinear(**m["ngram"]) if "ngram" in m
                   else task.restore(task.hyperparams_of(m["hyperparams"]), meta) for m in checkpoint["members"]]
        hp, model = None, Ensemble(members, [0.0] * len(members), torch.ones(len(meta["classes"])))
        model.classes = tuple(meta["classes"])
    else:
        hp = task.hyperparams_of(checkpoint["hyperparams"])
        model = task.restore(hp, meta)
    model.load_state_dict(checkpoint["state_dict"])
    return Trained(task, model.eval(), hp, meta)
