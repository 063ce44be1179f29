"""Trials per hour: K single-threaded worker processes against one worker with K threads, same spec.

Every trial of the benchmark spec costs the same (the architecture and batch size are fixed; only the
learning rate is sampled, and nothing is pruned), so the ratio measures the workers, not the sampler's
luck. Two ratios: trials per hour of searching (from the first trial's start to the last trial's end, as
stored in the study), and per wall second of the whole command, start-up included.

    HPSEARCH_DATA=../shared/data python benchmarks/parallel.py [--jobs 2] [--trials 8] [--epochs 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

SPEC = """
name = "parallel-benchmark"
task = "surnames"
metric = "val_accuracy"
direction = "maximize"
n_trials = {trials}
max_epochs = {epochs}
[sampler]
type = "random"
seed = 0
[pruner]
type = "none"
[space]
cell = "gru"
bidirectional = true
hidden_size = 128
embedding_dim = 64
batch_size = 32
optimizer = "adam"
lr = {{ low = 1e-3, high = 1e-2, log = true }}
"""


def run(spec: Path, workdir: Path, jobs: int, threads: int, device: str = "auto") -> tuple[float, float]:
    """Seconds of searching (first trial start to last trial end) and of wall time."""
    start = time.perf_counter()
    # -P: the package comes from the environment (PYTHONPATH first), not from the working directory, so that
    # PYTHONPATH=other/version times that version.
    subprocess.run([sys.executable, "-P", "-m", "hpsearch", "run", "--study", str(spec), "--workdir", str(workdir),
                    "--n-jobs", str(jobs), "--threads", str(threads), "--device", device, "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    trials = optuna.load_study(study_name="parallel-benchmark", storage=f"sqlite:///{workdir / 'optuna.db'}").trials
    searching = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    return searching.total_seconds(), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "parallel.toml"
        spec.write_text(SPEC.format(trials=args.trials, epochs=args.epochs))
        # Alternate the order over two rounds so drift in machine load hits both set-ups alike.
        seconds = {name: [0.0, 0.0] for name in ("one", "many")}
        for round_ in range(2):
            for name in (("one", "many") if round_ == 0 else ("many", "one")):
                jobs, threads = (1, args.jobs) if name == "one" else (args.jobs, 1)
                searching, wall = run(spec, Path(tmp) / f"{name}-{round_}", jobs, threads)
                seconds[name][0] += searching
                seconds[name][1] += wall
    (search_one, wall_one), (search_many, wall_many) = seconds["one"], seconds["many"]
    print(f"{args.trials} trials x {args.epochs} epochs, two rounds each, {args.jobs} single-threaded workers "
          f"against 1 worker with {args.jobs} threads:")
    print(f"  trials per hour of searching: {search_one / search_many:.2f}x")
    print(f"  trials per hour of wall time, start-up included: {wall_one / wall_many:.2f}x")


if __name__ == "__main__":
    main()
