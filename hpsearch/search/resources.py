"""Whether K worker processes fit this machine: its cores, and its memory.

Each worker is a whole process: torch, mlflow and the data loaded again, then a model trained. How much
that takes is measured, not guessed: the preparing process has imported the same modules and loaded the
same data, so its resident memory is what a worker holds before it trains. Training adds the model, its
gradients and optimizer state and one batch's activations: each task declares how much that is for the largest
model of its built-in spaces (``Task.training_memory``).
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from hpsearch.errors import HpsearchError

GB = 1e9


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def available_memory() -> int:
    """Bytes this process may still use: what the machine has free, or its container's limit if lower."""
    free = psutil.virtual_memory().available
    limit, usage = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")  # cgroup v2
    try:
        left = int(limit.read_text()) - int(usage.read_text())
    except (OSError, ValueError):  # no cgroup v2, or "max": no limit
        return free
    return min(free, left)


def check_workers(n_jobs: int, threads: int, training_memory: int) -> str | None:
    """Refuse ``n_jobs`` workers that would not fit in memory, each holding what this process holds plus
    ``training_memory`` bytes; a warning when they oversubscribe the cores."""
    per_worker = psutil.Process().memory_info().rss + training_memory
    available = available_memory()
    if n_jobs * per_worker > available:
        fits = max(available // per_worker, 1)
        raise HpsearchError(f"--n-jobs {n_jobs}: {n_jobs} workers need about {n_jobs * per_worker / GB:.1f} GB "
                            f"({per_worker / GB:.1f} GB each) but {available / GB:.1f} GB is available; use "
                            f"--n-jobs {fits} or fewer")
    if n_jobs * threads > cores():
        return (f"warning: {n_jobs} workers x {threads} torch thread{'s' * (threads > 1)} on {cores()} cores: "
                f"they slow each other down; --n-jobs {max(cores() // threads, 1)} uses the cores as well")
    return None
