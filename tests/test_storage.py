"""Several processes on one SQLite storage."""

from __future__ import annotations

import multiprocessing

import optuna

from hpsearch.search.storage import open_storage


def ask_many(url: str, times: int, numbers) -> None:
    study = optuna.load_study(study_name="race", storage=open_storage(url))
    numbers.put([study.ask().number for _ in range(times)])


def test_workers_starting_together_never_take_the_same_enqueued_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="race", storage=open_storage(url))
    for x in range(80):
        study.enqueue_trial({"x": x})
    context = multiprocessing.get_context("spawn")
    numbers = context.Queue()
    workers = [context.Process(target=ask_many, args=(url, 20, numbers)) for _ in range(4)]
    for worker in workers:
        worker.start()
    taken = [n for _ in workers for n in numbers.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=60)
    # Without BEGIN IMMEDIATE, about 5 of 60 were handed to two workers at once on this machine.
    assert sorted(taken) == list(range(80))
