"""The Optuna objective: sample a configuration, train it epoch by epoch, report, prune, keep the best."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import optuna
import torch

from hpsearch.datasets.batching import shuffled_batches
from hpsearch.errors import Terminated
from hpsearch.models import RecurrentClassifier
from hpsearch.search.training import (
    class_weights,
    evaluate,
    make_optimizer,
    train_epoch,
)
from hpsearch.studies import Hyperparams, StudySpec


class CheckpointSink(Protocol):
    """Where a completed trial's best weights go; returns the user attrs that find them again."""

    def save(self, trial: optuna.Trial, payload: dict[str, Any]) -> dict[str, str]: ...


class TrialHooks(Protocol):
    """What progress output and tracking are told while a trial trains."""

    def trial_started(self, trial: optuna.Trial, hp: Hyperparams) -> None: ...

    def epoch(self, trial: optuna.Trial, epoch: int, metrics: dict[str, float]) -> None: ...


def build_model(hp: Hyperparams, vocab_size: int, classes: Sequence[str]) -> RecurrentClassifier:
    model = RecurrentClassifier(vocab_size, len(classes), cell=hp.cell, embedding_dim=hp.embedding_dim,
                                hidden_size=hp.hidden_size, num_layers=hp.num_layers, bidirectional=hp.bidirectional,
                                dropout=hp.dropout, nonlinearity=hp.nonlinearity, implementation=hp.implementation)
    model.classes = tuple(classes)  # travels with the pickled model, so it can name its predictions
    return model


def load_checkpoint(source: str | Path | BinaryIO) -> RecurrentClassifier:
    """The model a completed trial saved (a file, or its bytes), in eval mode."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    model = build_model(Hyperparams(**checkpoint["hyperparams"]), checkpoint["vocab_size"], checkpoint["classes"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


class Objective:
    def __init__(self, spec: StudySpec, data: Any, *, max_epochs: int, device: torch.device,
                 checkpoints: CheckpointSink, hooks: Sequence[TrialHooks], seed: int | None = None) -> None:
        self.spec, self.max_epochs, self.device, self.seed = spec, max_epochs, device, seed
        self.checkpoints, self.hooks = checkpoints, hooks
        self.data = data
        self.splits = {name: split.to(device) for name, split in data.splits().items()}
        self.maximize = spec.direction == "maximize"
        self.stopped: int | None = None  # number of the last trial an exception or Ctrl-C stopped

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        try:
            return self._train(trial)
        except optuna.TrialPruned:
            raise
        except (KeyboardInterrupt, Exception) as exc:
            self.stopped = trial.number
            # Optuna keeps no reason for a failed trial; store one for `best`, the report and MLflow.
            if isinstance(exc, KeyboardInterrupt):
                reason = "interrupted by SIGTERM" if isinstance(exc, Terminated) else "interrupted by Ctrl-C"
            else:
                reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("fail_reason", reason)
            raise

    def _train(self, trial: optuna.Trial) -> float:
        hp = self.spec.sample(trial)
        seed = hp.seed() if self.seed is None else self.seed  # retraining may ask for other seeds
        trial.set_user_attr("hyperparams", dataclasses.asdict(hp))
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("max_epochs", self.max_epochs)  # what pruning saved is measured against it
        for hook in self.hooks:
            hook.trial_started(trial, hp)
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        train, val, test = self.splits["train"], self.splits["val"], self.splits["test"]
        n_classes = len(self.data.classes)

        model = build_model(hp, self.data.vocab_size, self.data.classes).to(self.device)
        optimizer = make_optimizer(hp, model.parameters())
        schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, self.max_epochs)
                    if hp.lr_schedule == "cosine" else None)
        weights = class_weights(train.labels, n_classes, hp.class_balance)

        best_value, best_epoch, best_state, best_val = None, 0, None, None
        train_seconds = total_seconds = 0.0
        for epoch in range(1, self.max_epochs + 1):
            start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            batches = shuffled_batches(train.lengths, hp.batch_size, shuffle)
            train_loss, train_accuracy = train_epoch(model, train, batches, optimizer, hp.grad_clip, weights)
            if schedule:
                schedule.step()
            trained = time.perf_counter()
            val_result = evaluate(model, val, n_classes)
            seconds = time.perf_counter() - start
            train_seconds += trained - start
            total_seconds += seconds
            metrics = {"train_loss": train_loss, "train_accuracy": train_accuracy, "val_loss": val_result.loss,
                       "val_accuracy": val_result.accuracy, "val_balanced_accuracy": val_result.balanced_accuracy,
                       "epoch_seconds": seconds, "samples_per_second": len(train) / (trained - start), "lr": lr}
            for hook in self.hooks:
                hook.epoch(trial, epoch, metrics)

            value = metrics[self.spec.metric]
            if best_value is None or (value > best_value if self.maximize else value < best_value):
                best_value, best_epoch, best_val = value, epoch, val_result
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            cost = {"epochs": epoch, "best_epoch": best_epoch, "epoch_seconds": total_seconds / epoch,
                    "samples_per_second": len(train) * epoch / train_seconds}
            if self.spec.multi_objective:  # Optuna cannot prune these: every trial runs its epochs
                continue
            # Report the best value so far: the trial's value is its best epoch, and the pruner then compares
            # like with like, so one noisy epoch does not get a trial pruned.
            trial.report(best_value, epoch)
            if trial.should_prune():
                self._record(trial, **cost)
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        model.load_state_dict(best_state)
        test_result = evaluate(model, test, n_classes)
        cost["n_params"] = sum(p.numel() for p in model.parameters())
        self._record(trial, **cost, val_accuracy=best_val.accuracy, val_balanced_accuracy=best_val.balanced_accuracy,
                     test_accuracy=test_result.accuracy, test_balanced_accuracy=test_result.balanced_accuracy,
                     **self.checkpoints.save(trial, self._payload(hp, best_state)))
        if self.spec.multi_objective:
            return best_value, float(cost[self.spec.metrics[1]])
        return best_value

    @staticmethod
    def _record(trial: optuna.Trial, **attrs: Any) -> None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)

    def _payload(self, hp: Hyperparams, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The best epoch's weights with what is needed to use them (see load_checkpoint)."""
        return {"task": self.spec.task, "classes": list(self.data.classes), "vocab_size": self.data.vocab_size,
                "hyperparams": dataclasses.asdict(hp), "state_dict": {k: v.cpu() for k, v in state.items()}}
