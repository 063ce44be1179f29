"""Samplers: the training time a one-worker search needs to first reach a target validation value, under TPE as
the spec configures it, random sampling and Optuna's GP sampler, over several seeds.

Each search is a real `hpsearch` search of a built-in study (its space, pruner, epochs), with the sampler
swapped and without the spec's enqueued configurations, so that only the samplers' own draws are compared
(their random start-up trials coincide: each seeds its random sampler alike). Two searches run side by side,
one thread each, the arms interleaved so that machine load hits them alike. Time is the sum of the trials'
durations up to the first completed trial at or past the target (start-up and the baseline fit left out); a
search that never gets there counts as its whole time and is marked.

The target defaults to the median of the searches' final best values: the value a typical search reaches.
The searches are kept (hpsearch-runs/sampler-searches/, one study database each): run again with the same
settings and a finished search is read, not repeated, and an interrupted one resumes where it stopped.

    HPSEARCH_DATA=../shared/data python benchmarks/samplers.py --study addition          # 2 x 10 x 3: 11 min
    HPSEARCH_DATA=../shared/data python benchmarks/samplers.py --study surnames --full   # 5 seeds x 30 trials
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from hpsearch.search.lookup import load
from hpsearch.search.progress import Progress
from hpsearch.search.study import SearchOptions, run_search
from hpsearch.studies.spec import Component

ARMS = ("spec", "random", "gp")


def sampler(spec, arm: str, seed: int) -> Component:
    if arm == "spec":
        return dataclasses.replace(spec.sampler, options={**spec.sampler.options, "seed": seed})
    # As many random start-up trials as the spec gives TPE; but GP counts (and learns from) completed trials
    # only, not pruned ones, so under a pruner its start-up lasts longer (RESULTS.md).
    if arm == "gp":
        startup = {k: v for k, v in spec.sampler.options.items() if k == "n_startup_trials"}
        return Component("gp", {"seed": seed, "warn_independent_sampling": False, **startup})
    return Component(arm, {"seed": seed})


def search(job: tuple[str, str, int, int, int, str | None, str]) -> dict:
    """One search; its completed trials' values and every trial's seconds, in the order they ran."""
    study_ref, arm, seed, trials, epochs, data_dir, workdir = job
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load(study_ref)
    name = f"{spec.name}-{arm}-{seed}"
    spec = dataclasses.replace(spec, name=name, sampler=sampler(spec, arm, seed), enqueue=(), stop=None, timeout=None)
    folder = Path(workdir) / name
    options = SearchOptions(storage_url=f"sqlite:///{folder / 'optuna.db'}", workdir=folder, data_dir=data_dir,
                            n_trials=trials, epochs=epochs, mlflow=False, threads=1, device="cpu")
    study = run_search(spec, options, Progress(quiet=True))
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return {"arm": arm, "seed": seed, "direction": spec.direction,
            "values": [t.value if t.state == TrialState.COMPLETE else None for t in done],
            "seconds": [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]}


def time_to(run: dict, target: float) -> tuple[float, bool]:
    better = (lambda v: v >= target) if run["direction"] == "maximize" else (lambda v: v <= target)
    spent = 0.0
    for value, seconds in zip(run["values"], run["seconds"]):
        spent += seconds
        if value is not None and better(value):
            return spent, True
    return spent, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="addition")
    parser.add_argument("--data-dir")
    parser.add_argument("--seeds", type=int, help="searches per sampler [default: 2, --full 5]")
    parser.add_argument("--trials", type=int, help="trials per search [default: 10, --full 30]")
    parser.add_argument("--epochs", type=int, help="epochs per trial [default: 3, --full the spec's]")
    parser.add_argument("--target", type=float, help="[default: the median of the searches' final best values]")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--searches", default="hpsearch-runs/sampler-searches", help="folder for the searches")
    args = parser.parse_args()
    spec = load(args.study)
    seeds = args.seeds or (5 if args.full else 2)
    trials = args.trials or (30 if args.full else 10)
    epochs = args.epochs or (spec.max_epochs if args.full else 3)
    # The folder names the settings, so that a search is only ever resumed with its own.
    folder = str(Path(args.searches) / f"{spec.name}-{trials}x{epochs}")
    jobs = [(args.study, arm, seed, trials, epochs, args.data_dir, folder) for seed in range(seeds) for arm in ARMS]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        runs = pool.map(search, jobs, chunksize=1)
    pick = max if spec.direction == "maximize" else min
    finals = pd.Series([pick(v for v in run["values"] if v is not None) for run in runs])
    target = args.target if args.target is not None else float(finals.median())
    rows = []
    for run, final in zip(runs, finals):
        seconds, reached = time_to(run, target)
        rows.append({"sampler": run["arm"], "seed": run["seed"], "seconds": seconds, "reached": reached,
                     "final best": final})
    found = pd.DataFrame(rows)
    spec_seconds = found[found["sampler"] == "spec"].set_index("seed")["seconds"]
    found["/ spec"] = found["seconds"] / found["seed"].map(spec_seconds)
    table = found.groupby("sampler", sort=False).agg(
        reached=("reached", "sum"), **{"time to target / spec (median)": ("/ spec", "median"),
                                       "mean final best": ("final best", "mean")})
    per_seed = found.pivot(index="seed", columns="sampler", values="/ spec")[list(ARMS)]
    pd.set_option("display.width", 200)
    print(f"{spec.name}: {seeds} seeds x {trials} trials x {epochs} epochs, no enqueued trials; target "
          f"{spec.metric} {target:.4f}; spec sampler = {spec.sampler.type} {spec.sampler.options}")
    print(f"time to target relative to the spec's sampler, per seed (a search that never reached it counts all "
          f"its time):\n{per_seed.to_string(float_format=lambda v: f'{v:.2f}')}")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
