"""Surname generation (seed 000's title): a character language model conditioned on the language writes new
surnames in that language's style. Scored by its negative log-likelihood per character on names it never saw.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from hpsearch.datasets import Fractions, makenames, surnames
from hpsearch.datasets.batching import ordered_batches, shuffled_batches, to_device
from hpsearch.errors import HpsearchError
from hpsearch.models import NameGenerator
from hpsearch.studies import Hyperparams
from hpsearch.studies.spec import Param
from hpsearch.training.task import QUESTIONS, Epoch, Metric, Question, Task

EVAL_BATCH = 1024
LONGEST = 24  # characters a sampled name may reach before it is cut: the data's longest has 20
SAMPLES_PER_LANGUAGE = 20  # what a completed trial's novelty is measured on


@dataclass(frozen=True)
class NameHyperparams(Hyperparams):
    condition: Literal["input", "state"] = "input"  # the language: beside every character, or the initial state


def _nll(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, languages: torch.Tensor) -> torch.Tensor:
    """Summed negative log-likelihood of each name, in nats (padding is not scored)."""
    logits, _ = model(inputs, languages)
    per_step = nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=0, reduction="none")
    return per_step.sum(1)


class Makenames(Task):
    name = "makenames"
    # nll: mean negative log-likelihood per character of the split's names, end token included, in nats; the
    # loss is the same number. Perplexity is exp(nll): how many characters the model hesitates between.
    metrics = (Metric("nll", "minimize"), Metric("perplexity", "minimize"))
    objective = "val_nll"
    results = (Metric("novel_fraction", "maximize"),)  # and nll_<language>: the test split's, per language
    data_options = Fractions
    hyperparams = NameHyperparams
    generates = True
    questions = (*QUESTIONS, Question("condition", "Language", ("condition",),
                                      "Is the language better beside every character or as the initial state?"))
    # Peak RSS of a one-trial `hpsearch run` of the makenames space's largest model (hand-written LSTM, 3 layers
    # of 512, embedding 128, batch 256: 1.15 GB) less the 0.40 GB a worker holds before it trains (the same
    # run with 3 layers of 16 peaks at 0.53 GB); measured on 2026-11-26.
    training_memory = int(0.75e9)

    unused: ClassVar = {"class_balance": "generation has no classes to weigh"}

    @classmethod
    def check_space(cls, space: Sequence[Param]) -> list[str]:
        return [*super().check_space(space),
                *("space.bidirectional: a model that writes left to right cannot read the characters to come; "
                  "remove it (it is false by default)" for p in space
                  if p.name == "bidirectional" and (True in p.choices or p.value is True))]

    def load(self, root: str | None, options: Fractions) -> makenames.NameData:
        return makenames.load(root, val_fraction=options.val_fraction, test_fraction=options.test_fraction,
                              split_seed=options.split_seed)

    def describe(self, data: makenames.NameData) -> dict[str, Any]:
        # The training names travel with the model, so that a sample is checked for novelty anywhere.
        return {"classes": list(data.classes), "train_names": sorted(data.train_names)}

    def restore(self, hp: NameHyperparams, meta: Mapping[str, Any]) -> nn.Module:
        return NameGenerator(makenames.VOCAB_SIZE, len(meta["classes"]), condition=hp.condition, cell=hp.cell,
                             embedding_dim=hp.embedding_dim, hidden_size=hp.hidden_size, num_layers=hp.num_layers,
                             dropout=hp.dropout, nonlinearity=hp.nonlinearity, implementation=hp.implementation)

    def train_epoch(self, model: nn.Module, data: makenames.NameData, optimizer: torch.optim.Optimizer,
                    hp: Hyperparams, generator: torch.Generator) -> Epoch:
        model.train()
        train = data.train
        total = torch.zeros((), device=train.inputs.device)
        characters, steps = 0, 0
        for index in shuffled_batches(train.lengths, hp.batch_size, generator):
            inputs, targets, languages = train.batch(index)
            nll = _nll(model, inputs, targets, languages).sum()
            count = int(train.lengths[index].sum())
            optimizer.zero_grad(set_to_none=True)
            (nll / count).backward()
            if hp.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip)
            optimizer.step()
            total += nll.detach()
            characters += count
            steps += 1
        return Epoch({"loss": total.item() / characters}, len(train), steps)

    @torch.no_grad()
    def _per_name(self, model: nn.Module, split: makenames.Sequences) -> torch.Tensor:
        model.eval()
        summed = torch.empty(len(split), device=split.inputs.device)
        for index in ordered_batches(split.lengths, EVAL_BATCH):
            summed[to_device(index, summed.device)] = _nll(model, *split.batch(index))
        return summed.cpu()

    def evaluate(self, model: nn.Module, data: makenames.NameData, split: str) -> dict[str, float]:
        part = data.split(split)
        nll = self._per_name(model, part).sum().item() / part.lengths.sum().item()
        return {"loss": nll, "nll": nll, "perplexity": math.exp(nll)}

    def final(self, model: nn.Module, data: makenames.NameData, history: Sequence[Mapping[str, float]]) -> dict[str, Any]:
        """Test NLL per language (where the model has too little data shows here) and the share of sampled
        names that are not training names."""
        test = data.test
        summed = self._per_name(model, test)
        languages = test.languages.cpu()
        per_language = {f"nll_{language}": (summed[mine].sum() / test.lengths[mine].sum()).item()
                        for i, language in enumerate(data.classes) if (mine := languages == i).any()}
        meta = self.describe(data)
        written = [name for i, language in enumerate(data.classes) for name in
                   self.generate(model, meta, language, SAMPLES_PER_LANGUAGE, temperature=1.0, start="",
                                 generator=torch.Generator().manual_seed(i))]
        novel = sum(name not in data.train_names for name in written) / len(written)
        return {"novel_fraction": novel, **per_language}

    # -- generation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, model: nn.Module, meta: Mapping[str, Any], condition: str, n: int, *, temperature: float,
                 start: str, generator: torch.Generator) -> list[str]:
        classes = list(meta["classes"])
        if condition not in classes:
            raise HpsearchError(f"unknown language {condition!r}; this model knows {', '.join(classes)}")
        if outside := sorted({c for c in start if c not in surnames.ALPHABET}):
            raise HpsearchError(f"--start {start!r}: {''.join(outside)!r} is not in the alphabet of the names "
                                f"({surnames.ALPHABET!r})")
        if temperature <= 0:
            raise HpsearchError(f"--temperature {temperature}: must be above 0 (1 samples as trained, lower is "
                                "more conservative)")
        model.eval()
        device = next(model.parameters()).device
        prefix = [makenames.BOUNDARY, *surnames.encode([start])[0]]
        languages = torch.full((n,), classes.index(condition), device=device)
        logits, state = model(torch.tensor([prefix] * n, device=device), languages)
        written: list[list[int]] = [[] for _ in range(n)]
        open_ = torch.ones(n, dtype=torch.bool)
        for step in range(LONGEST - len(start)):
            weights = (logits[:, -1] / temperature).softmax(-1).cpu()
            weights[:, 0] = 0  # padding is never written
            if step == 0 and not start:
                weights[:, makenames.BOUNDARY] = 0  # nor an empty name
            chosen = torch.multinomial(weights, 1, generator=generator)
            for i in open_.nonzero().flatten().tolist():
                if chosen[i, 0] == makenames.BOUNDARY:
                    open_[i] = False
                else:
                    written[i].append(int(chosen[i, 0]))
            if not open_.any():
                break
            logits, state = model(chosen.to(device), languages, state)
        return [start + makenames.decode(ids) for ids in written]

    def seen(self, meta: Mapping[str, Any]) -> Collection[str]:
        return frozenset(meta["train_names"])

    # -- prediction: how likely each language makes a name ------------------------------------------------
    @torch.no_grad()
    def predict(self, model: nn.Module, meta: Mapping[str, Any], queries: Sequence[str],
                top_k: int) -> list[dict[str, Any]]:
        classes = list(meta["classes"])
        device = next(model.parameters()).device
        rows = []
        for name, ids in zip(queries, surnames.encode(queries), strict=True):
            if not ids:
                raise HpsearchError(f"{name!r}: no letter of the alphabet ({surnames.ALPHABET!r}) in it")
            inputs = torch.tensor([[makenames.BOUNDARY, *ids]] * len(classes), device=device)
            targets = torch.tensor([[*ids, makenames.BOUNDARY]] * len(classes), device=device)
            per_char = (_nll(model.eval(), inputs, targets, torch.arange(len(classes), device=device))
                        / (len(ids) + 1)).cpu()
            ranked = per_char.argsort()[:top_k].tolist()
            rows.append({"name": name, "languages": [{"language": classes[i], "nll": per_char[i].item()}
                                                      for i in ranked]})
        return rows

    def show(self, row: Mapping[str, Any]) -> str:
        likely = ", ".join(f"{entry['language']} {entry['nll']:.2f}" for entry in row["languages"])
        return f"{row['name']}: nats per character if written in {likely}"

    def answer(self, row: Mapping[str, Any]) -> str:
        return row["languages"][0]["language"]
