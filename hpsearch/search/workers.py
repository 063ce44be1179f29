"""Several worker processes on one study, on this host.

Processes, not threads: a trial is Python-bound at small batch sizes, and two single-threaded trials side by
side beat one two-threaded trial. Each worker is an ordinary `run_search` on the shared storage; the study
and its MLflow parent run are made first, so workers only ever open them.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sys
import threading
from types import FrameType

from hpsearch.errors import HpsearchError, Interrupted, SearchStopped, Terminated
from hpsearch.search.ablation import Ablation
from hpsearch.search.progress import Progress
from hpsearch.search.resources import check_workers, cores
from hpsearch.search.study import SearchOptions, load_data, prepare_search, run_search
from hpsearch.studies import StudySpec
from hpsearch.training import TASKS

# Work a stop signal must not cut in half. An exception raised inside a storage transaction can leave its
# connection, still held by the exception's traceback, owning SQLite's write lock while the stop is handled:
# the stopped trial's own FAIL, and every other worker, then wait out the busy timeout, for minutes.
_ATOMIC = ("sqlalchemy.", "optuna.storages.", "mlflow.store.", "sqlite3")
_RETRY_SIGNAL_S = 0.05


def _inside(frame: FrameType | None, prefixes: tuple[str, ...]) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(prefixes):
            return True
        frame = frame.f_back
    return False


@dataclasses.dataclass
class _Stopping:
    """What one process's stop handlers share. Plain attributes, no lock (not a threading.Event): a second
    signal can arrive while the first one's handler runs, and a handler that waits for a lock its own thread
    holds waits forever (seen: a SIGTERM to the process group, which reaches a worker twice)."""

    under_way: bool = False
    retrying: bool = False  # a signal is to be sent again once a transaction ends


def _stopper(stop: type[BaseException], stopping: _Stopping):
    def retry(signum: int) -> None:
        stopping.retrying = False
        os.kill(os.getpid(), signum)

    def handler(signum: int, frame: FrameType | None) -> None:
        # A SIGTERM sent to the whole process group reaches a worker twice, directly and passed on by the main
        # process: the second must not cut the first stop's clean-up short. A second Ctrl-C is the user's own.
        if stopping.under_way and signum == signal.SIGTERM:
            return
        if _inside(frame, _ATOMIC):  # ask again in a moment, when the transaction has ended
            if not stopping.retrying:  # one retry at a time: starting its thread takes locks
                stopping.retrying = True
                threading.Timer(_RETRY_SIGNAL_S, retry, (signum,)).start()
            return
        stopping.under_way = True
        raise stop()

    return handler


def handle_stop_signals() -> None:
    """Ctrl-C and SIGTERM stop the search cleanly (the running trial is marked failed), but never in the middle
    of a storage or tracking transaction; a SIGTERM while stopping changes nothing, a second Ctrl-C interrupts."""
    stopping = _Stopping()
    signal.signal(signal.SIGINT, _stopper(KeyboardInterrupt, stopping))
    signal.signal(signal.SIGTERM, _stopper(Terminated, stopping))


def _worker(spec: StudySpec, options: SearchOptions, quiet: bool, index: int, errors,
            ablation: Ablation | None) -> None:
    handle_stop_signals()
    progress = Progress(quiet, options.epochs or spec.max_epochs, prefix=f"[worker {index}] ")
    try:
        run_search(spec, options, progress, ablation)
    except HpsearchError as exc:
        errors.put(str(exc))
        sys.exit(2)
    except SearchStopped as exc:
        errors.put((exc.how, exc.failed))
        sys.exit(130)


def run_workers(spec: StudySpec, options: SearchOptions, n_jobs: int, quiet: bool,
                ablation: Ablation | None = None) -> None:
    """Run ``n_jobs`` workers to the study's budget (an ablation's queue); raises what they hit, once, after all
    have stopped."""
    # The data first, as every worker loads it, so that this process weighs what a worker will.
    data = load_data(spec, options)
    threads = options.threads or max(1, cores() // n_jobs)
    if warning := check_workers(n_jobs, threads, TASKS[spec.task].training_memory):
        print(warning, file=sys.stderr, flush=True)  # even with --quiet, which silences progress only
    remaining = prepare_search(spec, options, Progress(quiet), data, ablation)
    n_jobs = min(n_jobs, max(remaining, 1))
    options = dataclasses.replace(options, threads=options.threads or max(1, cores() // n_jobs))
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch or sqlite state inherited
    errors = context.Queue()
    workers = [context.Process(target=_worker, args=(spec, dataclasses.replace(options, worker=index), quiet, index,
                                                     errors, ablation), name=f"worker {index}")
               for index in range(n_jobs)]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt as exc:
        # Ctrl-C in a terminal reaches the workers too; SIGTERM reaches only this process: pass it on.
        if isinstance(exc, Terminated):
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
        for worker in workers:
            worker.join()
    reported = [errors.get() for _ in range(sum(w.exitcode in (2, 130) for w in workers))]
    stops = [found for found in reported if isinstance(found, tuple)]
    messages = list(dict.fromkeys(found for found in reported if isinstance(found, str)))
    codes = {worker.name: worker.exitcode for worker in workers}
    if any(code == 130 for code in codes.values()):
        # One message for the stop, whose trials every worker marked failed; a worker's own error after it.
        how = "terminated" if any(how == "terminated" for how, _ in stops) else "interrupted"
        stop = SearchStopped(how, [number for _, failed in stops for number in failed])
        if messages:
            raise Interrupted("; ".join([str(stop), *messages]))
        raise stop
    if any(code == 2 for code in codes.values()):
        raise HpsearchError("; ".join(messages))
    crashed = {name: code for name, code in codes.items() if code != 0}
    if crashed:
        details = ", ".join(f"{name} {'was killed by signal ' + str(-code) if code < 0 else f'exited {code}'}"
                            for name, code in crashed.items())
        raise HpsearchError(f"{details}; finished trials are kept and a killed worker's trial is retried: "
                            "resume with the same command")
