"""New texts from the best model of a study whose task writes them (makenames), and two checks a reader of the
samples asks for: are they new, and does a classifier of the same work folder read them as what was asked?"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass

import optuna
import torch

from hpsearch.studies.record import best_trial
from hpsearch.training.checkpoint import ModelSource


@dataclass(frozen=True)
class Samples:
    texts: list[str]
    trial: int  # of the writing study
    seed: int  # that writes the same texts again
    novel: int  # how many are not training texts
    judge: str | None = None  # "study 'surnames', trial 0": the classifier that read them
    agreed: int | None = None  # how many it read as the condition asked for


def write(study: optuna.Study, models: ModelSource, condition: str, n: int, *, temperature: float, start: str,
          seed: int | None, judge: optuna.Study | None) -> Samples:
    trial = best_trial(study)
    writer = models.load(trial)
    seed = secrets.randbits(31) if seed is None else seed
    texts = writer.task.generate(writer.model, writer.meta, condition, n, temperature=temperature, start=start,
                                 generator=torch.Generator().manual_seed(seed))
    seen = writer.task.seen(writer.meta)
    samples = Samples(texts, trial.number, seed, sum(text not in seen for text in texts))
    if judge is None:
        return samples
    judged = best_trial(judge)
    reader = models.load(judged)
    answers = [reader.task.answer(row) for row in reader.predict(texts, (), top_k=1)]
    return dataclasses.replace(samples, judge=f"study '{judge.study_name}', trial {judged.number}",
                               agreed=sum(answer == condition for answer in answers))
