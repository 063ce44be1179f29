"""Pruning that pays: epochs trained, training seconds and best validation value of one search under each
pruner, on the same configurations.

The configurations are drawn from a built-in study's space by a seeded random sampler, and each trains once,
all its epochs, with its own seed (what the search would give it). Every arm then replays those learning
curves through its pruner, in the same order, as a one-worker search would have met them: a trial's training
does not depend on whether it is stopped later (its seed fixes it, and its cosine schedule is set by
max_epochs), so a pruned trial is exactly a prefix of its full curve, and the arms differ only in where they
stop. The arms: no pruning; patience early stopping (the students' method: stop after 3 epochs without a new
best, and keep the trial); the spec's own pruner; the median pruner (from the 5th trial, after 3 epochs);
Hyperband; successive halving from the first and from the second epoch (the surnames spec's); a
25th-percentile pruner like the median one. (Optuna's Wilcoxon pruner compares per-instance losses within one
evaluation, not epochs, so it is not one of them.)
The curves are replayed in the order drawn and in shuffled orders (--orders), so that the best configuration
comes early in some searches and late in others.

The curves are kept in a JSON file (hpsearch-runs/pruner-curves/), so the replay can be rerun at no cost, and
an interrupted training resumes at the configuration it stopped in.

    HPSEARCH_DATA=../shared/data python benchmarks/pruners.py --study surnames          # 12 x 6 epochs
    HPSEARCH_DATA=../shared/data python benchmarks/pruners.py --study surnames --full   # 40 x the spec's epochs
    HPSEARCH_DATA=../shared/data python benchmarks/pruners.py --study surnames --trials 24 --epochs 12 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import optuna
import pandas as pd
import torch

from hpsearch.search.lookup import load
from hpsearch.studies.spec import PRUNERS
from hpsearch.training.loop import Fit, TrainingDiverged
from hpsearch.training.registry import TASKS

PATIENCE = 3
# The median pruner of the surnames spec before this benchmark chose its pruner, and a percentile pruner like it.
WARMUP = {"n_startup_trials": 4, "n_warmup_steps": 3}


def curves(spec, trials: int, epochs: int, data_dir: str | None, seed: int, path: Path) -> list[dict]:
    """Each configuration's best-so-far validation values (spec.prune_on), its metric per epoch and seconds.

    ``path`` keeps them after every configuration: a run stopped part way resumes at the next configuration
    (the seeded sampler draws the trained ones again, so it goes on drawing the same sequence)."""
    found = json.loads(path.read_text()) if path.is_file() else []
    if len(found) == trials:
        return found
    print(f"training {trials - len(found)} of {trials} configurations of '{spec.name}' x {epochs} epochs, "
          "no pruning ...", flush=True)
    start = time.perf_counter()
    task = TASKS[spec.task]
    data = task.load(data_dir, spec.data)
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    for number in range(trials):
        trial = draw.ask()
        hp = spec.sample(trial)
        draw.tell(trial, 0.0)
        if number < len(found):
            continue
        fit = Fit(task, hp, data, max_epochs=epochs, seed=hp.seed(), device=torch.device("cpu"), select=spec.metric)
        row = {"params": trial.params, "reports": [], "values": [], "seconds": [], "failed": False}
        try:
            for metrics in fit:
                row["reports"].append(fit.best(spec.prune_on))
                row["values"].append(metrics[spec.metric])
                row["seconds"].append(metrics["epoch_seconds"])
        except TrainingDiverged:
            row["failed"] = True
        found.append(row)
        path.write_text(json.dumps(found))
        print(f"  configuration {number}: {len(row['values'])} epochs, {sum(row['seconds']):.0f} s", flush=True)
    print(f"trained in {time.perf_counter() - start:.0f} s; curves kept in {path}")
    return found


def replay(rows: list[dict], pruner: optuna.pruners.BasePruner | None, direction: str) -> dict:
    """A search over ``rows`` with ``pruner`` (None: patience early stopping): what it trained and found."""
    # A fixed name: Hyperband assigns trials to brackets by hashing the study name with the trial number.
    study = optuna.create_study(study_name="replay", direction=direction, pruner=pruner or optuna.pruners.NopPruner())
    pick = max if direction == "maximize" else min
    epochs, seconds = 0, 0.0
    for row in rows:
        trial = study.ask()
        stop = len(row["values"])
        for epoch, report in enumerate(row["reports"], start=1):
            trial.report(report, epoch)
            if pruner is None:
                best_at = row["values"].index(pick(row["values"][:epoch])) + 1
                if epoch - best_at >= PATIENCE:
                    stop = epoch
                    break
            elif trial.should_prune():
                stop = epoch
                break
        epochs += stop
        seconds += sum(row["seconds"][:stop])
        if row["failed"] and stop == len(row["values"]):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif pruner is not None and stop < len(row["values"]):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, pick(row["values"][:stop]))
    completed = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    best = pick(completed, key=lambda t: t.value) if completed else None
    return {"epochs": epochs, "seconds": seconds, "best": best.value if best else float("nan"),
            "completed": len(completed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="surnames")
    parser.add_argument("--data-dir")
    parser.add_argument("--trials", type=int, help="configurations [default: 12, --full 40]")
    parser.add_argument("--epochs", type=int, help="epochs each [default: 6, --full the spec's]")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--orders", type=int, default=20, help="orders the curves are replayed in [default: 20]")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the training [default: 2]")
    parser.add_argument("--curves", default="hpsearch-runs/pruner-curves", help="folder for the trained curves")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load(args.study)
    trials = args.trials or (40 if args.full else 12)
    epochs = args.epochs or (spec.max_epochs if args.full else 6)
    path = Path(args.curves) / f"{spec.name}-{trials}x{epochs}-seed{args.seed}.json"
    rows = curves(spec, trials, epochs, args.data_dir, args.seed, path)
    options = spec.pruner.options if spec.pruner.type != "none" else {}
    arms = {  # built afresh for each replay: Hyperband keeps its brackets in the pruner
        "none": optuna.pruners.NopPruner,
        f"patience {PATIENCE}": lambda: None,
        f"spec: {spec.pruner.type} {json.dumps(options)}": lambda: spec.pruner.build(PRUNERS),
        "median (start-up 4, warm-up 3)": lambda: optuna.pruners.MedianPruner(**WARMUP),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3),
        "successive halving (min 1)": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1,
                                                                                       reduction_factor=3),
        "successive halving (min 2)": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=2,
                                                                                       reduction_factor=3),
        "percentile 25 (start-up 4, warm-up 3)": lambda: optuna.pruners.PercentilePruner(25.0, **WARMUP),
    }
    # Order 0 is the order drawn; the others shuffle it, so the best configuration is met early in some
    # searches and late in others, after the start-up trials.
    orders = [rows] + [random.Random(k).sample(rows, len(rows)) for k in range(1, args.orders)]
    found = pd.DataFrame([{"arm": name, "order": k, **replay(order, make(), spec.direction)}
                          for name, make in arms.items() for k, order in enumerate(orders)])
    none = found[found["arm"] == "none"].set_index("order")
    found["epochs / none"] = found["epochs"] / found["order"].map(none["epochs"])
    found["seconds / none"] = found["seconds"] / found["order"].map(none["seconds"])
    # Below 0 is worse whichever way the metric points.
    unpruned = found["order"].map(none["best"])
    gained = found["best"] - unpruned if spec.direction == "maximize" else unpruned - found["best"]
    found["best - none"] = gained * 100
    table = found.groupby("arm", sort=False).agg(**{
        "epochs / none": ("epochs / none", "mean"), "seconds / none": ("seconds / none", "mean"),
        "completed": ("completed", "mean"), "best - none (points)": ("best - none", "mean"),
        "worst": ("best - none", "min"), "orders > 0.5 worse": ("best - none", lambda d: int((d < -0.5).sum()))})
    pd.set_option("display.width", 200)
    print(f"\n{spec.name}: {trials} configurations x {epochs} epochs, replayed in {len(orders)} orders "
          f"({spec.prune_on} reported, {spec.metric} ranked; best with no pruning {none['best'].iloc[0]:.4f}); "
          f"means over the orders; points are hundredths of {spec.metric}, below 0 worse than no pruning:")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))

if __name__ == "__main__":
    main()
