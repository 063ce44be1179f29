"""Epoch time of the hand-written cells against torch's built-in layers and a seed-style cell, side by side.

The seed-style cell is the students' LSTM: four separate ``Linear`` gates over the concatenated input and
hidden state at every step of a padded batch (so it also reads the padding, and the backward direction
runs over it first). It runs twice: on the same length-bucketed batches as the others, which isolates the
cell, and on batches the way the seeds made them (random order, padded to the longest name), which is what
the students timed. The variants alternate within each repeat so machine noise hits them alike, and the
ratios compare medians from this one run.

    HPSEARCH_DATA=../shared/data python benchmarks/cells.py [--repeats 3] [--batch-size 32] [--hidden-size 128]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from hpsearch.datasets import surnames
from hpsearch.datasets.batching import shuffled_batches
from hpsearch.models import RecurrentClassifier
from hpsearch.training.classification import train_epoch


class SeedStyleLSTM(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.forget_gate, self.input_gate, self.cell_gate, self.output_gate = (
            nn.Linear(input_size + hidden_size, hidden_size) for _ in range(4))

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        hidden = steps.new_zeros(steps.shape[0], self.hidden_size)
        cell = torch.zeros_like(hidden)
        for t in range(steps.shape[1]):
            combined = torch.cat((steps[:, t], hidden), -1)
            forget, inp = torch.sigmoid(self.forget_gate(combined)), torch.sigmoid(self.input_gate(combined))
            cell = forget * cell + inp * torch.tanh(self.cell_gate(combined))
            hidden = torch.sigmoid(self.output_gate(combined)) * torch.tanh(cell)
        return hidden


class SeedStyleClassifier(nn.Module):
    """Embedding -> seed-style LSTM each way over the padded batch -> head on the last step's states."""

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.forward_cell = SeedStyleLSTM(embedding_dim, hidden_size)
        self.backward_cell = SeedStyleLSTM(embedding_dim, hidden_size)
        self.head = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        steps = self.embedding(tokens)
        both = torch.cat([self.forward_cell(steps), self.backward_cell(steps.flip(1))], dim=1)
        return self.head(both)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--cells", default="lstm,gru,rnn")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    data = surnames.load()
    train, num_classes = data.train, len(data.classes)
    generator = torch.Generator().manual_seed(0)
    bucketed = list(shuffled_batches(train.lengths, args.batch_size, generator))
    seed_batches = list(torch.randperm(len(train), generator=generator).split(args.batch_size))

    def classifier(cell: str, implementation: str) -> Callable[[], nn.Module]:
        return lambda: RecurrentClassifier(data.vocab_size, num_classes, cell=cell, embedding_dim=args.embedding_dim,
                                           hidden_size=args.hidden_size, bidirectional=True,
                                           implementation=implementation)

    cells = args.cells.split(",")
    variants: dict[str, tuple[Callable[[], nn.Module], list[torch.Tensor]]] = {}
    for cell in cells:
        variants[f"{cell} builtin"] = classifier(cell, "builtin"), bucketed
        variants[f"{cell} handwritten"] = classifier(cell, "handwritten"), bucketed
    if "lstm" in cells:
        def seed_style() -> nn.Module:
            return SeedStyleClassifier(data.vocab_size, num_classes, args.embedding_dim, args.hidden_size)
        variants["lstm seed-style"] = seed_style, bucketed
        variants["lstm seed-style, seed batches"] = seed_style, seed_batches

    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (make, batches) in variants.items():
            torch.manual_seed(0)
            model = make()
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            start = time.perf_counter()
            train_epoch(model, train, batches, optimizer, 1.0, torch.ones(num_classes))
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"bidirectional, hidden {args.hidden_size}, batch {args.batch_size}, {args.threads} thread(s), "
          f"median of {args.repeats} surname training epochs each:")
    for cell in cells:
        ratio = median[f"{cell} handwritten"] / median[f"{cell} builtin"]
        print(f"  {cell}: handwritten / builtin epoch time = {ratio:.2f}x")
    if "lstm" in cells:
        for name in ("lstm seed-style", "lstm seed-style, seed batches"):
            print(f"  {name} / lstm handwritten epoch time = {median[name] / median['lstm handwritten']:.2f}x")


if __name__ == "__main__":
    main()
