"""Classify raw surname strings with a trained model, folded to ASCII exactly as in training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
import torch

from hpsearch.datasets import surnames
from hpsearch.datasets.batching import tensorise
from hpsearch.errors import HpsearchError
from hpsearch.search.artifacts import Checkpoints
from hpsearch.search.results import best_trial


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


def predict_with_best(study: optuna.Study, checkpoints: Checkpoints, names: Sequence[str],
                      top_k: int) -> list[dict[str, Any]]:
    """Per name, the best trial's top-k languages; a name with no letter of the alphabet gets none and a reason."""
    if not names:
        raise HpsearchError("no names to classify: give them as arguments, or one per line on stdin")
    trial = best_trial(study)
    ranked = classify(checkpoints.load(trial), names, top_k)
    return [{"name": name, "trial": trial.number,
             "predictions": [{"language": language, "probability": p} for language, p in top],
             **({} if top else {"error": f"no letter of the alphabet ({surnames.ALPHABET!r}) in it"})}
            for name, top in zip(names, ranked, strict=True)]
