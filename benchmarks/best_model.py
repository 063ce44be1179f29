"""Which model should a classification study serve? Its best trial, the average of its top-k trials'
probabilities, the best configuration retrained on train + validation, each under selection by plain or by
balanced validation accuracy, or what `hpsearch run` assembles (training/assembly.py: the best trials mixed
with the baseline and naive Bayes, weights fitted on validation), scored on the test split.

Reads a stored study of a padded-split task (surnames) and its checkpoints. Only two models train: the
retrained one (the best trial's configuration and seed, its max_epochs schedule, stopped after its best epoch,
with the validation names added to training) and the n-gram models, fitted again to give their probabilities.

    HPSEARCH_DATA=../shared/data python benchmarks/best_model.py --study surnames --workdir hpsearch-runs
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from hpsearch.datasets.batching import Split
from hpsearch.search.artifacts import Checkpoints, location
from hpsearch.search.lookup import load
from hpsearch.search.served import answers_for
from hpsearch.studies import record
from hpsearch.training.assembly import CANDIDATES, assemble
from hpsearch.training.classification import probabilities
from hpsearch.training.classification import scores as measured
from hpsearch.training.loop import Fit
from hpsearch.training.registry import TASKS


def scores(probs: torch.Tensor, split, classes: int) -> dict[str, float]:
    found = measured(probs.argmax(1), split.labels, classes)
    return {"accuracy": found["accuracy"], "balanced": found["balanced_accuracy"]}


def merged(a: Split, b: Split) -> Split:
    width = max(a.tokens.shape[1], b.tokens.shape[1])
    pad = [torch.nn.functional.pad(s.tokens, (0, width - s.tokens.shape[1])) for s in (a, b)]
    return Split(torch.cat(pad), torch.cat([a.lengths, b.lengths]), torch.cat([a.labels, b.labels]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="surnames")
    parser.add_argument("--workdir", default="hpsearch-runs")
    parser.add_argument("--data-dir")
    parser.add_argument("--top", default="1,3,5")
    args = parser.parse_args()
    torch.set_num_threads(2)
    workdir = Path(args.workdir)
    spec, task = load(args.study), TASKS[load(args.study).task]
    study = optuna.load_study(study_name=spec.name, storage=f"sqlite:///{workdir / 'optuna.db'}")
    checkpoints = Checkpoints(location(None, workdir), workdir, create=False)
    data = task.load(args.data_dir, spec.data)
    n_classes = len(data.classes)
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    results = {t.number: record.read(t).results for t in done}
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    rows = []
    for select in ("val_accuracy", "val_balanced_accuracy"):
        ranked = sorted(done, key=lambda t: results[t.number][select], reverse=True)
        for k in (int(k) for k in args.top.split(",")):
            for trial in ranked[:k]:
                if trial.number not in cache:
                    model = checkpoints.load(trial).model
                    cache[trial.number] = (probabilities(model, data.split("val")), probabilities(model, data.split("test")))
            val = torch.stack([cache[t.number][0] for t in ranked[:k]]).mean(0)
            test = torch.stack([cache[t.number][1] for t in ranked[:k]]).mean(0)
            rows.append({"selected on": select, "model": "best trial" if k == 1 else f"top-{k} average",
                         "trials": " ".join(str(t.number) for t in ranked[:k]),
                         **{f"val {m}": v for m, v in scores(val, data.split("val"), n_classes).items()},
                         **{f"test {m}": v for m, v in scores(test, data.split("test"), n_classes).items()}})
        best = ranked[0]
        stored = record.read(best)
        hp = task.hyperparams_of(stored.hyperparams)
        both = dataclasses.replace(data, train=merged(data.train, data.val))
        fit = Fit(task, hp, both, max_epochs=stored.max_epochs, seed=stored.seed, device=torch.device("cpu"),
                  select="val_accuracy")
        for epoch, _ in enumerate(fit, start=1):
            if epoch == stored.best_epoch:
                break
        fit.model.classes = data.classes
        test = probabilities(fit.model, data.split("test"))
        rows.append({"selected on": select, "model": f"trial {best.number} retrained on train + val",
                     "trials": str(best.number),
                     **{f"test {m}": v for m, v in scores(test, data.split("test"), n_classes).items()}})
    # What `hpsearch run` serves: the study's best trials (by its own value) mixed with the n-gram models.
    by_value = sorted(done, key=lambda t: t.value, reverse=spec.direction == "maximize")
    metric = answers_for(spec)
    served = assemble(data, [(t.number, checkpoints.load(t).model) for t in by_value[:CANDIDATES]],
                      task.fitted_members(data), metric)
    rows.append({"selected on": spec.metric,
                 "model": f"served: {served.describe(metric)}",
                 "trials": " ".join(str(n) for n in served.members if isinstance(n, int)),
                 **{name.replace("_", " ", 1).replace("balanced_accuracy", "balanced"): v
                    for name, v in served.results.items() if "blended" not in name}})
    baseline = record.read_baseline(study)
    if not baseline.missing:
        rows.append({"model": "baseline", **{name.replace("_", " ", 1).replace("balanced_accuracy", "balanced"): v
                                             for name, v in baseline.results.items() if "blended" not in name}})
    pd.set_option("display.width", 200)
    print(f"study '{spec.name}': {len(done)} completed trials; test split of {len(data.split('test'))} names")
    print(pd.DataFrame(rows).round(4).to_string(index=False, na_rep=""))


if __name__ == "__main__":
    main()
