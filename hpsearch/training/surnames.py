"""Surname -> language (seeds 000 and 004): character-level sequence classification of the tutorial names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from hpsearch.datasets import Fractions, surnames
from hpsearch.training.classification import SequenceClassification


class Surnames(SequenceClassification):
    name = "surnames"
    data_options = Fractions
    subject, label = "name", "language"
    token, baseline_ngrams = "character", (1, 4)
    # Peak RSS of a one-trial `hpsearch run` of the surnames space's largest model (hand-written bidirectional
    # LSTM, 4 layers of 512, embedding 128, batch 512: 2.18 GB) less the RSS of a process that has only loaded
    # what a worker loads (0.40 GB), measured on 2026-11-25.
    training_memory = int(1.8e9)

    def load(self, root: str | None, options: Fractions) -> surnames.SurnameData:
        return surnames.load(root, val_fraction=options.val_fraction, test_fraction=options.test_fraction,
                             split_seed=options.split_seed)

    def encode(self, texts: Sequence[str], meta: Mapping[str, Any]) -> list[list[int]]:
        return surnames.encode(texts)  # folded to ASCII exactly as in training

    def unreadable(self, text: str) -> str:
        return f"no letter of the alphabet ({surnames.ALPHABET!r}) in it"


def classify(model: nn.Module, names: Sequence[str], top_k: int = 3) -> list[list[tuple[str, float]]]:
    """The ``top_k`` (language, probability) pairs for each raw name, most likely first; [] for a name with no
    letter of the alphabet. ``model`` is a trial's: ``checkpoint.load(...).model``."""
    return Surnames().classify(model, names, top_k)
