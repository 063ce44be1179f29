"""Per-trial wall time with MLflow logging against without, on the same surname trials, side by side.

The trials are the surnames spec's enqueued configurations, so both arms train exactly the same models
(per-trial seeding); arms alternate so machine noise hits both alike. Creating the tracking store happens
once before any trial and is not counted: it is a one-time cost, not a per-trial one.

    HPSEARCH_DATA=../shared/data python benchmarks/mlflow_overhead.py [--epochs 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

from optuna.trial import TrialState

from hpsearch.search.lookup import load
from hpsearch.search.progress import Progress
from hpsearch.search.storage import storage_url
from hpsearch.search.study import SearchOptions, run_search


def trial_seconds(spec, workdir: Path, epochs: int, tracked: bool) -> list[float]:
    options = SearchOptions(storage_url=storage_url(None, workdir), workdir=workdir, epochs=epochs,
                            device="cpu", mlflow=tracked)
    study = run_search(spec, options, Progress(quiet=True))
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    base = load("surnames")
    # No pruning: every arm runs every enqueued trial to the end.
    spec = dataclasses.replace(base, n_trials=len(base.enqueue), pruner=dataclasses.replace(base.pruner, type="none",
                                                                                             options={}))
    seconds: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for tracked in (True, False):
                seconds[tracked] += trial_seconds(spec, Path(tmp) / f"{repeat}-{tracked}", args.epochs, tracked)
    with_mlflow, without = statistics.mean(seconds[True]), statistics.mean(seconds[False])
    print(f"{len(seconds[True])} trials per arm, {args.epochs} epochs each: mean trial {with_mlflow:.2f}s with MLflow, "
          f"{without:.2f}s without")
    print(f"with / without MLflow = {with_mlflow / without:.3f} (overhead {with_mlflow / without - 1:+.1%})")


if __name__ == "__main__":
    main()
