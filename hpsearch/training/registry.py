"""Every task this installation can train, by the name a study spec gives in ``task``.

Named, not imported: a task module imports torch, which `hpsearch --help` and `best` must not pay for.
Adding a task is one line here (see training/task.py for what the module provides).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpsearch.training.task import Task

_BUILTIN = {
    "surnames": "hpsearch.training.surnames:Surnames",
    "addition": "hpsearch.training.addition:Addition",
}


class _Registry(Mapping[str, "Task"]):
    """Task name -> task, imported on first use; ``register`` adds one at run time (a plug-in, a test)."""

    def __init__(self, paths: dict[str, str]) -> None:
        self._paths = dict(paths)
        self._loaded: dict[str, Task] = {}

    def register(self, name: str, task: Task | str) -> None:
        """``task`` is an instance, or its "module:Class" path."""
        self._loaded.pop(name, None)
        if isinstance(task, str):
            self._paths[name] = task
        else:
            self._paths[name] = f"{type(task).__module__}:{type(task).__qualname__}"
            self._loaded[name] = task

    def unregister(self, name: str) -> None:
        self._paths.pop(name, None)
        self._loaded.pop(name, None)

    def __getitem__(self, name: str) -> Task:
        if name not in self._loaded:
            module, _, attribute = self._paths[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attribute)()
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


TASKS = _Registry(_BUILTIN)
