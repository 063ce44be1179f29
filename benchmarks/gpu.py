"""The GPU checks in one prepared run of a few minutes (a GPU machine is lent only now and then; CI has none).

1. An epoch of the surnames baseline trial (the spec's first enqueued configuration: bi-GRU 128, batch 32), the
   built-in and the hand-written cell, on the GPU against every CPU thread, side by side in one process. The
   search's own training loop (training.loop.Fit): training, validation and all; the second epoch is timed, so
   that cuDNN's set-up and the capture of the step's CUDA graphs (training.graphs) are left out, and the
   first is printed beside it.
2. Where a GPU epoch goes: torch.profiler's busiest operators, the share of the epoch the device computes, the
   kernel and graph launches and how often the CPU waited for the device.
3. Trials per hour of `hpsearch run --n-jobs K --device DEVICE` for several K on one device, on parallel.py's
   spec (every trial costs the same), relative to K = 1.

Without CUDA the same runs on the CPU, with K = 1, 2: what a machine without a GPU can check.

    HPSEARCH_DATA=../shared/data python benchmarks/gpu.py [--workers 1,2,4,8] [--trials 16] [--epochs 2]

On an H100 with 16 CPU threads parts 1 and 2 take about a minute, part 3 with `--trials 32` about four.
`--cells ""` skips part 1; `--cells builtin --workers 0` times parts 1 and 2 alone. PYTHONPATH=other/version
times that version of the package, part 3's `hpsearch run` included: a before-and-after of a change on the
same machine. The GPU's tests belong in the same call: `python -m pytest --noconftest tests/test_graphs.py`
(skipped without CUDA).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from hpsearch.search.lookup import load
from hpsearch.search.resources import cores
from hpsearch.training.loop import Fit
from hpsearch.training.registry import TASKS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parallel import SPEC, run  # the fixed-cost spec and one timed `hpsearch run`


def epoch_seconds(task, hp, data, device: torch.device, profiled: bool = False) -> tuple[float, float, str]:
    """The first and second epochs' seconds; with ``profiled``, a third epoch under the profiler, summarised."""
    fit = iter(Fit(task, hp, data.to(device), max_epochs=3, seed=0, device=device, select="val_accuracy"))
    first = next(fit)["epoch_seconds"]
    seconds = next(fit)["epoch_seconds"]
    if not profiled:
        return first, seconds, ""
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        next(fit)
        torch.cuda.synchronize()
    events = prof.key_averages()
    # Kernels and copies only: the profiler also puts ranges such as Optimizer.step on the device's timeline,
    # and they overlap the kernels they hold (the table's "Self CUDA time total" leaves them out likewise).
    busy = sum(e.self_device_time_total for e in events
               if e.device_type == DeviceType.CUDA and not e.is_user_annotation) / 1e6
    table = events.table(sort_by="self_device_time_total", row_limit=12)
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel"))
    graphs = sum(e.count for e in events if e.key == "cudaGraphLaunch")
    waits = sum(e.count for e in events if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
    return first, seconds, (f"{table}\ndevice busy {busy:.2f} s of a {seconds:.2f} s epoch; {launches} kernel "
                            f"launches and {graphs} graph launches; the CPU waited for the device {waits} times")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", help="K values [default: 1,2,4,8 on a GPU, 1,2 on the CPU]")
    parser.add_argument("--trials", type=int, default=16, help="trials per K [default: 16]")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per trial [default: 2]")
    parser.add_argument("--cells", default="builtin,handwritten", help="implementations timed in part 1 "
                        "[default: builtin,handwritten; none: \"\"]")
    args = parser.parse_args()
    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    spec = load("surnames")
    task = TASKS[spec.task]
    data = task.load(None, spec.data)  # HPSEARCH_DATA, which the `hpsearch run` of part 3 reads too
    baseline = task.hyperparams_of(spec.enqueue[0])
    name = torch.cuda.get_device_name() if gpu else "no GPU"
    print(f"device: {name}; {cores()} CPU threads; torch {torch.__version__}")

    print("\n1. an epoch of the baseline trial (training + validation), second epoch:")
    torch.set_num_threads(cores())
    for implementation in filter(None, args.cells.split(",")):
        hp = dataclasses.replace(baseline, implementation=implementation)
        _, cpu, _ = epoch_seconds(task, hp, data, torch.device("cpu"))
        if gpu:
            first, on_gpu, summary = epoch_seconds(task, hp, data, device, profiled=implementation == "builtin")
            print(f"  {implementation}: CPU ({cores()} threads) / GPU epoch time = {cpu / on_gpu:.2f}x "
                  f"({cpu:.2f} s, {on_gpu:.2f} s; the GPU's first epoch {first:.2f} s)")
            if summary:
                print(f"\n2. where the GPU epoch goes (built-in cell):\n{summary}\n")
        else:
            print(f"  {implementation}: {cpu:.2f} s on {cores()} CPU threads (no GPU to compare)")

    ks = [int(k) for k in (args.workers or ("1,2,4,8" if gpu else "1,2")).split(",") if int(k) > 0]
    if not ks:
        return
    print(f"3. trials per hour of --n-jobs K --device {device.type}, {args.trials} trials x {args.epochs} epochs:")
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "parallel.toml"
        spec_path.write_text(SPEC.format(trials=args.trials, epochs=args.epochs))
        # One thread per worker on a GPU (the device does the work); on the CPU the cores are shared out.
        per_hour = {}
        for k in ks:
            threads = 1 if gpu else max(1, cores() // k)
            searching, wall = run(spec_path, Path(tmp) / f"k{k}", k, threads, device.type)
            per_hour[k] = args.trials / searching * 3600
            print(f"  K = {k}: {per_hour[k]:.0f} trials/hour, {per_hour[k] / per_hour[ks[0]]:.2f}x K = {ks[0]} "
                  f"({wall:.0f} s with start-up)", flush=True)


if __name__ == "__main__":
    main()
