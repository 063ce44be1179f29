"""New texts from the best model of a study whose task writes them (makenames), and two checks a reader of the
samples asks for: are they new, and does a classifier of the same work folder read them as what was asked?"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass

import optuna
import torch

from hpsearch.studies.record import best_trial
from hpsearch.training.checkpoint import ModelSource, Trained


@dataclass(frozen=True)
class BestModel:
    """A study's best trial, loaded: what writes the texts, or what reads them."""

    name: str  # "study 'surnames', trial 0"
    trial: int
    trained: Trained

    @classmethod
    def of(cls, study: optuna.Study, models: ModelSource) -> BestModel:
        trial = best_trial(study)
        return cls(f"study '{study.study_name}', trial {trial.number}", trial.number, models.load(trial))


@dataclass(frozen=True)
class Samples:
    texts: list[str]
    seed: int  # that writes the same texts again
    novel: int  # how many are not training texts
    agreed: int | None = None  # how many the reader read as the condition asked for


def write(writer: BestModel, condition: str, n: int, *, temperature: float, start: str, seed: int | None,
          reader: BestModel | None = None) -> Samples:
    trained = writer.trained
    seed = secrets.randbits(31) if seed is None else seed
    texts = trained.task.generate(trained.model, trained.meta, condition, n, temperature=temperature, start=start,
                                  generator=torch.Generator().manual_seed(seed))
    seen = trained.task.seen(trained.meta)
    samples = Samples(texts, seed, sum(text not in seen for text in texts))
    if reader is None:
        return samples
    answers = [reader.trained.task.answer(row) for row in reader.trained.predict(texts, (), top_k=1)]
    return dataclasses.replace(samples, agreed=sum(answer == condition for answer in answers))
