"""Surname generation: the surname data as next-character sequences, each with its language.

The same files, deduplication and name-disjoint split as surname classification (datasets/surnames.py): a
model is scored on names it never saw. A name is read after a start token and ends with an end token, which
share one id: as an input it starts a name, as a target it ends one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from hpsearch.datasets import surnames
from hpsearch.datasets.batching import Split, to_device

BOUNDARY = len(surnames.ALPHABET) + 1  # 0 is padding, 1..len(ALPHABET) the characters
VOCAB_SIZE = BOUNDARY + 1


@dataclass(frozen=True)
class Sequences:
    """One split: what the model reads, what it must predict at each step, and the language of each name."""

    inputs: torch.Tensor  # (n, longest + 1): start token, characters, padding
    targets: torch.Tensor  # (n, longest + 1): characters, end token, padding (0, never scored)
    lengths: torch.Tensor  # (n,) characters + 1, on the CPU
    languages: torch.Tensor  # (n,)

    def __len__(self) -> int:
        return len(self.languages)

    def to(self, device: torch.device | str) -> Sequences:
        return Sequences(self.inputs.to(device), self.targets.to(device), self.lengths, self.languages.to(device))

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs and targets cut to the batch's longest name, and its languages."""
        longest = int(self.lengths[index].max())
        index = to_device(index, self.inputs.device)
        return self.inputs[index, :longest], self.targets[index, :longest], self.languages[index]


@dataclass(frozen=True)
class NameData:
    classes: tuple[str, ...]  # the languages
    train: Sequences
    val: Sequences
    test: Sequences
    train_names: frozenset[str]  # what a generated name must differ from to be new
    fingerprint: str

    def split(self, name: str) -> Sequences:
        return getattr(self, name)

    def to(self, device: torch.device | str) -> NameData:
        return replace(self, **{name: self.split(name).to(device) for name in ("train", "val", "test")})


def sequences(split: Split) -> Sequences:
    n, longest = split.tokens.shape
    inputs = torch.zeros(n, longest + 1, dtype=torch.long)
    inputs[:, 0] = BOUNDARY
    inputs[:, 1:] = split.tokens
    targets = torch.zeros(n, longest + 1, dtype=torch.long)
    targets[:, :longest] = split.tokens
    targets[torch.arange(n), split.lengths] = BOUNDARY
    return Sequences(inputs, targets, split.lengths + 1, split.labels)


def decode(ids: list[int]) -> str:
    return "".join(surnames.ALPHABET[i - 1] for i in ids if 0 < i < BOUNDARY)


def load(root: str | None = None, *, val_fraction: float = 0.1, test_fraction: float = 0.1,
         split_seed: int = 0) -> NameData:
    data = surnames.load(root, val_fraction=val_fraction, test_fraction=test_fraction, split_seed=split_seed)
    train = data.train
    names = frozenset(decode(row[:length].tolist()) for row, length in zip(train.tokens, train.lengths, strict=True))
    return NameData(data.classes, sequences(data.train), sequences(data.val), sequences(data.test), names,
                    data.fingerprint)
