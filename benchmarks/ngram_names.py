"""The anchor a surname generator must beat: a language-conditioned character n-gram model (interpolated
Kneser-Ney, one per language) on the makenames study's own name-disjoint split, scored like the study:
nats per character on the validation names, end token included. With --workdir, the best makenames trial of
that work folder is printed beside it, and their ratio.

    HPSEARCH_DATA=../shared/data python benchmarks/ngram_names.py [--workdir hpsearch-runs]
"""

from __future__ import annotations

import argparse
import math
from collections import Counter, defaultdict

from hpsearch.datasets import makenames, surnames

END = "\n"  # the end token; a name's context starts with START characters
START = "\t"
SYMBOLS = len(surnames.ALPHABET) + 1  # every character and the end: the uniform floor of the interpolation


class KneserNey:
    """P(c | last order-1 characters), interpolated Kneser-Ney: absolute ``discount`` on the counts of the
    longest context, continuation counts (how many contexts a character follows) below it, the uniform
    distribution at the bottom."""

    def __init__(self, names: list[str], order: int, discount: float) -> None:
        self.order, self.discount = order, discount
        raw: dict[str, Counter] = defaultdict(Counter)
        for name in names:
            padded = START * (order - 1) + name + END
            for i in range(order - 1, len(padded)):
                raw[padded[i - order + 1:i]][padded[i]] += 1
        self.tables = [raw]  # context length order-1, then shorter, from continuation counts
        for _ in range(order - 1):
            shorter: dict[str, Counter] = defaultdict(Counter)
            for context, following in self.tables[-1].items():
                for char in following:
                    shorter[context[1:]][char] += 1
            self.tables.append(shorter)
        self.tables.reverse()  # index k: contexts of length k
        self.totals = [{context: (sum(c.values()), len(c)) for context, c in table.items()} for table in self.tables]

    def probability(self, context: str, char: str) -> float:
        p = 1 / SYMBOLS
        for k, (table, totals) in enumerate(zip(self.tables, self.totals, strict=True)):
            key = context[len(context) - k:] if k else ""
            if key in table:
                total, types = totals[key]
                p = (max(table[key][char] - self.discount, 0) + self.discount * types * p) / total
        return p

    def nll(self, name: str) -> tuple[float, int]:
        padded = START * (self.order - 1) + name + END
        return (-sum(math.log(self.probability(padded[i - self.order + 1:i], padded[i]))
                     for i in range(self.order - 1, len(padded))), len(name) + 1)


def split_names(data: makenames.NameData, split: str) -> dict[str, list[str]]:
    part = data.split(split)
    names: dict[str, list[str]] = defaultdict(list)
    for inputs, length, language in zip(part.inputs, part.lengths, part.languages, strict=True):
        names[data.classes[int(language)]].append(makenames.decode(inputs[1:int(length)].tolist()))
    return names


def score(models: dict[str, KneserNey], names: dict[str, list[str]]) -> float:
    pairs = [models[language].nll(name) for language, group in names.items() for name in group]
    return sum(n for n, _ in pairs) / sum(c for _, c in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, nargs="+", default=[3, 4, 5, 6])
    parser.add_argument("--discounts", type=float, nargs="+", default=[0.5, 0.75, 0.9])
    parser.add_argument("--workdir", help="a work folder with a makenames study: its best trial is compared")
    args = parser.parse_args()

    data = makenames.load()  # the built-in spec's split: fractions 0.1 / 0.1, split_seed 0
    train, val, test = (split_names(data, split) for split in ("train", "val", "test"))
    scores = {}
    for order in args.orders:
        for discount in args.discounts:
            models = {language: KneserNey(train[language], order, discount) for language in data.classes}
            scores[order, discount] = (score(models, val), score(models, test))
            print(f"{order}-gram, discount {discount}: val {scores[order, discount][0]:.4f} nats/char, test "
                  f"{scores[order, discount][1]:.4f}")
    best = min(scores, key=lambda key: scores[key][0])
    print(f"anchor: the {best[0]}-gram with discount {best[1]}, chosen on validation: val {scores[best][0]:.4f}, "
          f"test {scores[best][1]:.4f}")
    if args.workdir:
        import optuna

        from hpsearch.studies import record

        study = optuna.load_study(study_name="makenames", storage=f"sqlite:///{args.workdir}/optuna.db")
        results = record.read(study.best_trial).results
        print(f"best makenames trial #{study.best_trial.number}: val {results['val_nll']:.4f}, test "
              f"{results['test_nll']:.4f}; val ratio to the anchor {results['val_nll'] / scores[best][0]:.3f}")


if __name__ == "__main__":
    main()
