"""Whole training steps replayed as CUDA graphs, one graph per batch shape.

A small recurrent model leaves a GPU idle: one Python thread cannot queue the ~110 small kernels of a step
(forward, backward, clipping, the optimizer's update) as fast as the device runs them. A CUDA graph queues
them all in one launch. Captured kernels read and write the addresses they saw at capture, so everything a
step touches outside its own temporaries must stay put: the parameters, their gradients (zeroed, never set to
None), the optimizer's state and learning rate (a tensor on the device, which a schedule fills in place), the
copies of the inputs and the running totals the steps add to.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from weakref import WeakKeyDictionary

import torch

Step = Callable[..., torch.Tensor]  # the step's inputs -> what it adds to the running totals (on the device)


class StepGraphs:
    """The captured training steps of one optimizer (its model's parameters and its state)."""

    def __init__(self) -> None:
        self._graphs: dict[Hashable, tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...]]] = {}
        self._pool = None  # one memory pool for all the shapes: their temporaries are never alive at once
        self._totals: torch.Tensor | None = None

    def __len__(self) -> int:
        """The number of batch shapes captured so far."""
        return len(self._graphs)

    def start(self, size: int, device: torch.device) -> torch.Tensor:
        """The running totals of a new epoch, zeroed: the same tensor every epoch, since graphs add to it."""
        if self._totals is None:
            self._totals = torch.zeros(size, device=device)
        return self._totals.zero_()

    def run(self, key: Hashable, step: Step, *inputs: torch.Tensor) -> None:
        """``step(*inputs)`` added to the totals; ``key`` names everything the step's kernels depend on besides
        the values of the inputs on the device: their shapes, and the inputs on the host (a capture reads those
        once, a replay never).

        The first batch of a key is a real step, run eagerly on a side stream (which also creates the gradients,
        the optimizer's state and cuDNN's workspaces outside the graph); the step is then captured, which runs
        nothing, and later batches of the key replay it.
        """
        captured = self._graphs.get(key)
        if captured:
            graph, static = captured
            for copy, value in zip(static, inputs, strict=True):
                copy.copy_(value)
            graph.replay()
            return
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.eager(step, *inputs)
        torch.cuda.current_stream().wait_stream(side)
        static = tuple(value.clone() for value in inputs)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            self._totals += step(*static)
        self._pool = graph.pool()
        self._graphs[key] = (graph, static)

    def eager(self, step: Step, *inputs: torch.Tensor) -> None:
        """A step that is not replayed: a batch of mixed lengths, which has no one shape to capture."""
        self._totals += step(*inputs)


_GRAPHS: WeakKeyDictionary[torch.optim.Optimizer, StepGraphs] = WeakKeyDictionary()


def graphs_of(optimizer: torch.optim.Optimizer) -> StepGraphs | None:
    """The step graphs of ``optimizer``, kept as long as it lives; None where its steps cannot be graphed (not on
    a CUDA device, or not built by ``training.loop.make_optimizer`` for one)."""
    group = optimizer.param_groups[0]
    if not (isinstance(group["lr"], torch.Tensor) and group["lr"].is_cuda):
        return None
    return _GRAPHS.setdefault(optimizer, StepGraphs())
