"""Classify raw surname strings with a trained model, folded to ASCII exactly as in training."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hpsearch.datasets import surnames
from hpsearch.datasets.batching import tensorise


@torch.no_grad()
def classify(model: torch.nn.Module, names: Sequence[str], top_k: int = 3) -> list[list[tuple[str, float]]]:
    """The ``top_k`` (language, probability) pairs for each name, most likely first.

    ``model`` is a trial's model, from ``load_checkpoint`` or ``mlflow.pytorch.load_model``: it carries the
    class names it was trained on in ``model.classes``. A name with no letter left after folding gets [].
    """
    encoded = surnames.encode(names)
    keep = [i for i, seq in enumerate(encoded) if seq]
    results: list[list[tuple[str, float]]] = [[] for _ in names]
    if keep:
        split = tensorise([encoded[i] for i in keep], [0] * len(keep))
        device = next(model.parameters()).device
        probabilities = model.eval()(split.tokens.to(device), split.lengths).softmax(-1).cpu()
        best = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        for row, i in enumerate(keep):
            ranked = zip(best.values[row].tolist(), best.indices[row].tolist(), strict=True)
            results[i] = [(model.classes[c], p) for p, c in ranked]
    return results
