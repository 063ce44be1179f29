"""Tensors for a split of token sequences, and index batches of similar lengths.

Everything per sample happens once, when a split is tensorised; an epoch only permutes and slices tensors.
No training batch waits for a GPU: they come longest first, so packing them needs no sort copied to the
device, and their indices travel from pinned memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Split:
    """Padded token ids (0 is padding), true lengths and class labels of one split."""

    tokens: torch.Tensor  # (n, max_len) int64
    lengths: torch.Tensor  # (n,) int64, always on the CPU: pack_padded_sequence wants them there
    labels: torch.Tensor  # (n,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.tokens.to(device), self.lengths, self.labels.to(device))

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens cut to the longest sequence in the batch, lengths and labels."""
        lengths = self.lengths[index]
        device_index = to_device(index, self.tokens.device)
        return self.tokens[device_index, : int(lengths.max())], lengths, self.labels[device_index]


def unpadded(tokens: torch.Tensor, lengths: torch.Tensor) -> bool:
    """Whether every sequence of a batch fills its width: nothing to pack, and a shape that decides every kernel
    (a CUDA graph captured for it can replay it: training.graphs)."""
    return bool((lengths == tokens.shape[1]).all())


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` copied to ``device`` without waiting. A plain copy from the CPU to a GPU first waits until the
    GPU has run everything queued, so one per batch stalls the Python thread that should be queueing the next
    batch; a copy from pinned memory is queued like a kernel."""
    if torch.device(device).type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def tensorise(sequences: Sequence[Sequence[int]], labels: Sequence[int]) -> Split:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    tokens = torch.zeros(len(sequences), max(map(len, sequences), default=1), dtype=torch.long)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return Split(tokens, lengths, torch.tensor(labels, dtype=torch.long))


def shuffled_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Batches of near-equal length in random order, different every epoch, each longest first.

    Sorting by length plus up to two characters of noise keeps padding small while still mixing which
    sequences meet in a batch; the batch order is then shuffled so lengths do not come in a curriculum.
    Longest first is the order packing wants: unsorted, pack_padded_sequence sorts every batch and copies the
    order to the device, a wait for the GPU per batch.
    """
    noisy = lengths.float() + 2 * torch.rand(len(lengths), generator=generator)
    batches = torch.argsort(noisy).split(batch_size)
    for i in torch.randperm(len(batches), generator=generator).tolist():
        yield batches[i][torch.argsort(lengths[batches[i]], descending=True, stable=True)]


def uniform_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Batches in random order, different every epoch: as many as can be of ``batch_size`` sequences of one
    length (a batch of one shape, which a CUDA graph captured for that shape can replay: training.graphs),
    the few sequences left over in batches of near-equal length (``shuffled_batches``)."""
    shuffled = torch.randperm(len(lengths), generator=generator)
    by_length = shuffled[torch.argsort(lengths[shuffled], stable=True)]  # each length's sequences in random order
    batches, left = [], []
    for run in by_length.split(torch.bincount(lengths).tolist()):
        whole = len(run) // batch_size * batch_size
        batches += run[:whole].split(batch_size) if whole else []
        left.append(run[whole:])
    rest = torch.cat(left)
    batches += [rest[index] for index in shuffled_batches(lengths[rest], batch_size, generator)]
    for i in torch.randperm(len(batches), generator=generator).tolist():
        yield batches[i]


def ordered_batches(lengths: torch.Tensor, batch_size: int, max_tokens: int = 0) -> list[torch.Tensor]:
    """Deterministic length-sorted batches, for evaluation: at most ``batch_size`` sequences each and, with
    ``max_tokens``, at most that many padded tokens (a single longer sequence is a batch of its own)."""
    order = torch.argsort(lengths, stable=True)
    if not max_tokens:
        return list(order.split(batch_size))
    sizes, rows = [], 0
    for length in lengths[order].tolist():  # ascending: the newest row is the batch's longest
        if rows and (rows == batch_size or (rows + 1) * length > max_tokens):
            sizes.append(rows)
            rows = 0
        rows += 1
    return list(order.split([*sizes, rows]))
