"""Big-number addition (seeds 002 and 003): a recurrent model adds two integers digit by digit."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from hpsearch.datasets import addition
from hpsearch.errors import HpsearchError
from hpsearch.models import DigitAdder
from hpsearch.studies import Hyperparams
from hpsearch.training.task import QUESTIONS, Epoch, Metric, Question, Task

EVAL_BATCH = 1024
_NUMBER = re.compile(r"[0-9]+")


def _measure(logits: torch.Tensor, sums: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed loss, exact sums and correct digits of a batch, as tensors on its device."""
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), sums.flatten(), reduction="sum") / sums.shape[1]
    right = logits.argmax(-1) == sums
    return loss, right.all(1).sum(), right.sum()


class Addition(Task):
    name = "addition"
    # Exact match is the students' measure: a sum with one wrong digit is wrong. Digit accuracy moves long
    # before it does, which makes it the signal to prune on (see studies/addition.toml).
    metrics = (Metric("exact_match", "maximize", perfect=1.0), Metric("digit_accuracy", "maximize", perfect=1.0))
    objective = "val_exact_match"
    results = (Metric("steps_to_exact", "minimize"), Metric("longer_exact_match", "maximize"),
               Metric("all_carry_exact_match", "maximize"))
    data_options = addition.Options
    # Peak RSS of a one-trial `hpsearch run` of the largest models of the built-in spaces, hand-written LSTMs at
    # batch 256: 2.12 GB for addition-100's (4 layers of 128 over 101 positions), 1.74 GB for addition's
    # (10 layers of 256 over 21), less the 0.40 GB a worker holds before it trains; measured on 2026-11-25.
    training_memory = int(1.7e9)
    questions = (*QUESTIONS, Question("nonlinearity", "Nonlinearity", ("cell", "nonlinearity"),
                                      "tanh or relu (a plain RNN's choice)?"))
    unused: ClassVar = {"class_balance": "addition has no classes to weigh"}

    def load(self, root: str | None, options: addition.Options) -> addition.AdditionData:
        return addition.load(options)  # generated from the options alone: nothing to read under ``root``

    def describe(self, data: addition.AdditionData) -> dict[str, Any]:
        return {"max_digits": data.options.max_digits}

    def restore(self, hp: Hyperparams, meta: Mapping[str, Any]) -> nn.Module:
        return DigitAdder(cell=hp.cell, embedding_dim=hp.embedding_dim, hidden_size=hp.hidden_size,
                          num_layers=hp.num_layers, bidirectional=hp.bidirectional, dropout=hp.dropout,
                          nonlinearity=hp.nonlinearity, implementation=hp.implementation)

    def train_epoch(self, model: nn.Module, data: addition.AdditionData, optimizer: torch.optim.Optimizer,
                    hp: Hyperparams, generator: torch.Generator) -> Epoch:
        model.train()
        device = next(model.parameters()).device
        rng = random.Random(int(torch.randint(2**62, (1,), generator=generator)))
        total_loss = torch.zeros((), device=device)
        exact = torch.zeros((), dtype=torch.long, device=device)
        digits = torch.zeros((), dtype=torch.long, device=device)
        steps = data.options.steps_per_epoch
        for _ in range(steps):
            batch = data.batch(rng, hp.batch_size).to(device)
            logits = model(batch.digits)
            loss, right, correct = _measure(logits, batch.sums)
            optimizer.zero_grad(set_to_none=True)
            (loss / len(batch)).backward()
            if hp.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
            optimizer.step()
            total_loss += loss.detach()
            exact += right
            digits += correct
        samples = steps * hp.batch_size
        return Epoch({"loss": total_loss.item() / samples, "exact_match": exact.item() / samples,
                      "digit_accuracy": digits.item() / (samples * data.positions)}, samples, steps)

    def evaluate(self, model: nn.Module, data: addition.AdditionData, split: str) -> dict[str, float]:
        return self._score(model, data.split(split))

    @torch.no_grad()
    def _score(self, model: nn.Module, sums: addition.Sums) -> dict[str, float]:
        model.eval()
        total = torch.zeros(3, device=sums.sums.device)
        for start in range(0, len(sums), EVAL_BATCH):
            digits, target = sums.digits[start:start + EVAL_BATCH], sums.sums[start:start + EVAL_BATCH]
            total += torch.stack([value.float() for value in _measure(model(digits), target)])
        loss, exact, correct = total.tolist()
        return {"loss": loss / len(sums), "exact_match": exact / len(sums),
                "digit_accuracy": correct / sums.sums.numel()}

    def final(self, model: nn.Module, data: addition.AdditionData,
              history: Sequence[Mapping[str, float]]) -> dict[str, Any]:
        first = next((epoch for epoch, metrics in enumerate(history, start=1) if metrics["val_exact_match"] == 1.0),
                     None)
        return {"steps_to_exact": first and first * data.options.steps_per_epoch,
                "longer_exact_match": self._score(model, data.longer)["exact_match"],
                "all_carry_exact_match": self._score(model, data.all_carry)["exact_match"]}

    def queries(self, arguments: Sequence[str], lines: Sequence[str]) -> list[str]:
        """Arguments are one sum ("123 456"); stdin has one sum per line ("123 456" or "123 + 456")."""
        return [" ".join(arguments)] if arguments else list(lines)

    def predict(self, model: nn.Module, meta: Mapping[str, Any], queries: Sequence[str],
                top_k: int) -> list[dict[str, Any]]:
        max_digits = meta["max_digits"]
        pairs = [self._parse(query, max_digits) for query in queries]
        positions = max_digits + 1
        device = next(model.parameters()).device
        with torch.no_grad():
            answers = addition.from_digits(model.eval()(addition.tensorise(pairs, positions).digits.to(device))
                                           .argmax(-1).cpu())
        return [{"a": str(a), "b": str(b), "sum": str(a + b), "answer": str(answer), "correct": answer == a + b}
                for (a, b), answer in zip(pairs, answers, strict=True)]

    @staticmethod
    def _parse(query: str, max_digits: int) -> tuple[int, int]:
        parts = query.replace("+", " ").split()
        if len(parts) != 2 or not all(_NUMBER.fullmatch(p) for p in parts):
            raise HpsearchError(f"{query!r}: give two non-negative integers, e.g. `123456789 987654321`")
        a, b = (int(p) for p in parts)
        if (longest := max(len(str(a)), len(str(b)))) > max_digits:
            raise HpsearchError(f"{query!r}: a number of {longest} digits; this model was trained on numbers of up "
                                f"to {max_digits} digits")
        return a, b

    def answer(self, row: Mapping[str, Any]) -> str:
        return row["answer"]  # a string: JSON numbers lose digits beyond 2**53

    def show(self, row: Mapping[str, Any]) -> str:
        verdict = "correct" if row["correct"] else f"wrong (the sum is {row['sum']})"
        return f"{row['a']} + {row['b']} = {row['answer']}: {verdict}"
