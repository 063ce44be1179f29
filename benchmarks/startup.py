"""Start-up time of the commands a user types most: `hpsearch --help`, `best` and `studies`.

Each command runs a few times as a fresh process, side by side with `python -c pass` (the interpreter's own
start-up), on a storage holding one finished study. Prints the median wall time of each and its ratio to the
bare interpreter, and which heavy modules each command imported.

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

HEAVY = ("torch", "mlflow", "optuna_dashboard", "sklearn", "pandas", "plotly", "matplotlib")
# Runs the command in-process after recording sys.modules, so the heavy imports can be listed.
PROBE = ("import sys, runpy; sys.argv = ['hpsearch', *sys.argv[1:]]\n"
         "try:\n    runpy.run_module('hpsearch', run_name='__main__')\n"
         "except SystemExit:\n    pass\n"
         f"print(','.join(m for m in {HEAVY!r} if m in sys.modules) or '-', file=sys.stderr)")


def stored_study(folder: Path) -> str:
    url = f"sqlite:///{folder / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="startup", storage=url, direction="maximize")
    study.set_user_attr("metric", "val_accuracy")
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.01}, value=0.8,
                                              distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1)},
                                              user_attrs={"val_accuracy": 0.8, "test_accuracy": 0.79}))
    return url


def timed(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stderr.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        url = stored_study(Path(tmp))
        commands = {"python -c pass": None, "hpsearch --help": ["--help"],
                    "hpsearch best --study startup": ["best", "--study", "startup", "--storage", url],
                    "hpsearch studies": ["studies", "--storage", url]}
        times: dict[str, list[float]] = {name: [] for name in commands}
        imported: dict[str, str] = {}
        for _ in range(repeats):  # interleaved, so a noisy moment hits every command alike
            for name, args in commands.items():
                if args is None:
                    seconds, _ = timed([sys.executable, "-c", "import sys; print('-', file=sys.stderr)"])
                else:
                    seconds, imported[name] = timed([sys.executable, "-c", PROBE, *args])
                times[name].append(seconds)
    bare = statistics.median(times["python -c pass"])
    print(f"{'command':<32}{'median s':>10}{'x python':>10}  heavy modules imported")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<32}{median:>10.2f}{median / bare:>10.1f}  {imported.get(name, '')}")


if __name__ == "__main__":
    main()
