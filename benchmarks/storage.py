"""Per-trial storage overhead: what one hpsearch trial's reads and writes cost in SQLite (as hpsearch opens it),
Optuna's journal file backend and PostgreSQL, against the same work in memory.

No model trains: each trial does what the search's objective does to its storage, in the same order (ask and
sample a built-in spec's space with its sampler, write the trial's record, report and ask the pruner every
epoch, write its results, tell), with made-up learning curves, so the storages are compared on identical
calls. The in-memory arm is the same sampler and pruner without a database; each storage's overhead is its
time minus that, per trial. The arms alternate over two rounds, so drift in machine load hits all alike.

PostgreSQL: a throw-away cluster on 127.0.0.1 (Debian's `postgresql` binaries, as the tests start it), or the
database of ``--postgres URL``.

    python benchmarks/storage.py [--trials 60] [--epochs 12] [--postgres postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import random
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

from hpsearch.search.lookup import load
from hpsearch.search.storage import open_storage
from hpsearch.studies import record
from hpsearch.studies.spec import PRUNERS, SAMPLERS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import create_database, postgres  # the tests' throw-away cluster


def search(storage: optuna.storages.BaseStorage | None, name: str, spec, trials: int, epochs: int) -> float:
    """Seconds for ``trials`` trials' storage traffic, one worker."""
    study = optuna.create_study(storage=storage, study_name=name, direction=spec.direction,
                                sampler=spec.sampler.build(SAMPLERS, seed=0), pruner=spec.pruner.build(PRUNERS))
    curves = random.Random(0)
    start = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        hp = spec.sample(trial)
        record.write(trial, hyperparams=dataclasses.asdict(hp),
                     seed=hp.seed(), max_epochs=epochs, mlflow_run_id="0" * 32)
        value, best = curves.uniform(0.3, 0.6), 0.0
        for epoch in range(1, epochs + 1):
            value += curves.uniform(-0.02, 0.06)
            best = max(best, value)
            trial.report(best, epoch)
            if trial.should_prune():
                break
        pruned = epoch < epochs
        record.write(trial, epochs=epoch, best_epoch=epoch, epoch_seconds=1.0, n_params=10_000,
                     results=None if pruned else {f"{split}_{m}": best for split in ("val", "test")
                                                  for m in ("accuracy", "balanced_accuracy", "loss")})
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, best)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="surnames")
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--postgres", help="an empty PostgreSQL database's URL [default: a throw-away cluster]")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load(args.study)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        server = args.postgres or stack.enter_context(postgres())
        storages = {
            "memory": lambda n: None,
            "sqlite (hpsearch)": lambda n: open_storage(f"sqlite:///{tmp}/{n}.db"),
            "journal file": lambda n: JournalStorage(JournalFileBackend(f"{tmp}/{n}.log")),
            "postgresql": lambda n: open_storage(server if args.postgres else create_database(server, n)),
        }
        seconds = dict.fromkeys(storages, 0.0)
        for round_ in range(2):
            for name in (list(storages) if round_ == 0 else list(storages)[::-1]):
                study = f"r{round_}{name.split()[0]}"
                seconds[name] += search(storages[name](study), study, spec, args.trials, args.epochs)
    trials = 2 * args.trials
    memory = seconds["memory"] / trials
    print(f"'{spec.name}' space and sampler, {args.trials} trials x {args.epochs} epochs (report + should_prune "
          f"each), two rounds, one worker; milliseconds per trial:")
    print(f"  {'memory':<18} {memory * 1e3:7.1f} (the sampler and pruner alone)")
    sqlite = seconds["sqlite (hpsearch)"] / trials - memory
    for name in list(storages)[1:]:
        overhead = seconds[name] / trials - memory
        print(f"  {name:<18} {seconds[name] / trials * 1e3:7.1f}  storage overhead {overhead * 1e3:6.1f} ms/trial "
              f"({overhead / sqlite:.2f}x SQLite's)")


if __name__ == "__main__":
    main()
