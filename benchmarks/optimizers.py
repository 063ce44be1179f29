"""A training epoch of the surnames baseline trial with each optimizer's fused step against torch's default.

Same model, seed and batches for both; the two alternate within each repeat so machine noise hits them alike,
and the ratio compares medians from this one run. The loss columns show that the step computes the same.
torch's default is the foreach step on a GPU, several kernels per group of tensors where the fused step
launches one, and a loop over the tensors on a CPU.

    HPSEARCH_DATA=../shared/data python benchmarks/optimizers.py [--repeats 3] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from hpsearch.search.lookup import load
from hpsearch.training.loop import FUSED, make_optimizer
from hpsearch.training.registry import TASKS


def epoch(task, hp, data, device: torch.device, fused: bool) -> tuple[float, float]:
    """Seconds and mean loss of the first training epoch."""
    torch.manual_seed(0)
    model = task.build(hp, data).to(device)
    optimizer = make_optimizer(hp, model.parameters())
    if not fused:  # torch's default step: foreach on a GPU, one tensor at a time on a CPU
        for group in optimizer.param_groups:
            group["fused"] = None
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    synchronize()
    start = time.perf_counter()
    trained = task.train_epoch(model, data, optimizer, hp, torch.Generator().manual_seed(0))
    synchronize()
    return time.perf_counter() - start, trained.metrics["loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    spec = load("surnames")
    task = TASKS[spec.task]
    data = task.load(None, spec.data).to(device)
    baseline = task.hyperparams_of(spec.enqueue[0])
    print(f"a training epoch of the surnames baseline trial on {device}, {args.threads} thread(s), "
          f"median of {args.repeats}:")
    for name in FUSED.get(device.type, ()):
        hp = dataclasses.replace(baseline, optimizer=name, lr=1e-3)
        seconds, losses = {True: [], False: []}, {}
        for _ in range(args.repeats):
            for fused in (False, True):
                took, losses[fused] = epoch(task, hp, data, device, fused)
                seconds[fused].append(took)
        ratio = statistics.median(seconds[True]) / statistics.median(seconds[False])
        print(f"  {name}: fused / default epoch time = {ratio:.3f}x; loss {losses[False]:.5f} default, "
              f"{losses[True]:.5f} fused")


if __name__ == "__main__":
    main()
