"""Epoch time with length-bucketed batches against random batches, same model and data, side by side.

Packed sequences skip padded positions, but a random batch still runs as many time steps as its longest
name, most of them on a few sequences; bucketing makes every step of a batch full.

    HPSEARCH_DATA=../shared/data python benchmarks/batching.py [--repeats 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hpsearch.datasets import surnames
from hpsearch.datasets.batching import shuffled_batches
from hpsearch.models import RecurrentClassifier
from hpsearch.training.classification import train_epoch


def random_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator):
    return torch.randperm(len(lengths), generator=generator).split(batch_size)


def padding_share(lengths: torch.Tensor, batches) -> float:
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1 - int(lengths.sum()) / padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cell", default="gru")
    args = parser.parse_args()

    torch.set_num_threads(1)
    data = surnames.load()
    train = data.train
    generator = torch.Generator().manual_seed(0)
    strategies = {"bucketed": shuffled_batches, "random": random_batches}
    shares = {name: padding_share(train.lengths, list(make(train.lengths, args.batch_size, generator)))
              for name, make in strategies.items()}
    print(f"padded positions: random {shares['random']:.1%}, bucketed {shares['bucketed']:.1%}")

    seconds: dict[str, list[float]] = {name: [] for name in strategies}
    for _ in range(args.repeats):
        for name, make_batches in strategies.items():  # alternate, so machine noise hits both alike
            torch.manual_seed(0)
            model = RecurrentClassifier(data.vocab_size, len(data.classes), cell=args.cell, embedding_dim=64,
                                        hidden_size=128, bidirectional=True)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            batches = list(make_batches(train.lengths, args.batch_size, generator))
            start = time.perf_counter()
            train_epoch(model, train, batches, optimizer, 0.0, torch.ones(len(data.classes)))
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    print(f"{args.cell}, batch {args.batch_size}, median of {args.repeats} epochs each: "
          f"random / bucketed epoch time = {median['random'] / median['bucketed']:.2f}x")


if __name__ == "__main__":
    main()
