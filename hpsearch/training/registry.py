"""Every task this installation can train, by the name a study spec gives in ``task``.

Named, not imported: a task module imports torch, which `hpsearch --help` and `best` must not pay for.
A built-in task is one line of ``_BUILTIN``; a task in another package is an entry point of the group
``hpsearch.tasks`` (``parity = mypackage.parity:Parity``), which every worker process finds by itself.
See training/task.py for what a task provides.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpsearch.training.task import Task

_BUILTIN = {
    "surnames": "hpsearch.training.surnames:Surnames",
    "addition": "hpsearch.training.addition:Addition",
    "makenames": "hpsearch.training.makenames:Makenames",
    "imdb": "hpsearch.training.imdb:Imdb",
}
ENTRY_POINTS = "hpsearch.tasks"


class _Registry(Mapping[str, "Task"]):
    """Task name -> task, imported on first use; ``register`` adds one in this process (a test, a notebook)."""

    def __init__(self, builtin: dict[str, str]) -> None:
        self._builtin = builtin
        self._added: dict[str, str] = {}
        self._loaded: dict[str, Task] = {}

    def _paths(self) -> dict[str, str]:
        installed = {point.name: point.value for point in entry_points(group=ENTRY_POINTS)}
        return {**installed, **self._builtin, **self._added}

    def register(self, name: str, task: Task) -> None:
        self._added[name] = f"{type(task).__module__}:{type(task).__qualname__}"
        self._loaded[name] = task

    def unregister(self, name: str) -> None:
        self._added.pop(name, None)
        self._loaded.pop(name, None)

    def __getitem__(self, name: str) -> Task:
        if name not in self._loaded:
            module, _, attribute = self._paths()[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module), attribute)()
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths())

    def __len__(self) -> int:
        return len(self._paths())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._paths()


TASKS = _Registry(_BUILTIN)
