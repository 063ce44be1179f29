"""The model a classification study serves: the n-gram models (the baseline, naive Bayes) as torch modules, the
choice of how to combine the best trials with them, and the assembled model as `run`, `best`, `predict` and the
report use it."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
from conftest import write_names
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB
from test_cli import hpsearch, stored
from torch import nn

from hpsearch.datasets.batching import Split
from hpsearch.models.ensemble import Ensemble
from hpsearch.search.artifacts import Checkpoints
from hpsearch.search.lookup import load
from hpsearch.studies import record
from hpsearch.training import TASKS, checkpoint
from hpsearch.training.assembly import Assembled, gains, mixture_weights
from hpsearch.training.baseline import ALPHAS, C, fit_ngram_logistic, fit_ngram_members
from hpsearch.training.classification import probabilities
from hpsearch.training.surnames import Surnames


def scikit_learn_fit(data, low: int, high: int, estimator):
    """The same n-gram model written directly with scikit-learn's own vectorizer: n-gram tuples of token ids."""
    def rows(split):
        return [split.tokens[i, :length].tolist() for i, length in enumerate(split.lengths.tolist())]

    def grams(ids):
        marked = [-1, *ids, -1]
        return [tuple(marked[i:i + n]) for n in range(low, high + 1) for i in range(len(marked) - n + 1)]

    vectorizer = TfidfVectorizer(analyzer=grams, sublinear_tf=True)
    estimator.fit(vectorizer.fit_transform(rows(data.train)), data.train.labels.numpy())
    return lambda split: torch.from_numpy(estimator.predict_proba(vectorizer.transform(rows(split)))).float()


@pytest.mark.parametrize("languages", [3, 2])
def test_the_baseline_module_answers_as_scikit_learn_does(data_root, languages):
    if languages == 2:  # two classes: scikit-learn fits one logit
        (data_root / "names" / "Gamma.txt").unlink()
    data = Surnames().load(str(data_root), Surnames.data_options())
    fitted = fit_ngram_logistic(data, (1, 3))
    reference = scikit_learn_fit(data, 1, 3, LogisticRegression(C=C, max_iter=3000, class_weight="balanced"))
    for split in (data.val, data.test):
        assert torch.allclose(probabilities(fitted, split), reference(split), atol=2e-3)
    # Padding, batch order and the device's batch shape change nothing: one name alone scores the same.
    test = data.test
    alone = torch.cat([probabilities(fitted, Split(test.tokens[i:i + 1, :int(test.lengths[i])], test.lengths[i:i + 1],
                                                   test.labels[i:i + 1])) for i in range(5)])
    assert torch.allclose(alone, probabilities(fitted, data.test)[:5], atol=1e-6)


@pytest.mark.parametrize(("languages", "small"), [(3, False), (3, True), (2, False)])
def test_naive_bayes_answers_as_scikit_learn_does_with_the_smoothing_validation_prefers(tmp_path, data_root, languages,
                                                                                         small):
    if languages == 2:
        (data_root / "names" / "Gamma.txt").unlink()
    if small:  # one class 16 names, the others 40, as the real data's smallest languages are
        data_root = write_names(tmp_path / "small", seed=2)  # names on which the two losses choose apart
        alpha = data_root / "names" / "Alpha.txt"
        alpha.write_text("".join(alpha.read_text(encoding="utf-8").splitlines(keepends=True)[:16]), encoding="utf-8")
    data = Surnames().load(str(data_root), Surnames.data_options())
    fitted = fit_ngram_members(data, (1, 3))
    assert torch.equal(fitted["baseline"].weight, fit_ngram_logistic(data, (1, 3)).weight)

    # Each validation row weighs the inverse of its class's share of the training names.
    share = torch.bincount(data.train.labels).float() / len(data.train.labels)
    balance = 1 / share[data.val.labels]

    def balanced_log_loss(probs):
        return (-(probs[torch.arange(len(balance)), data.val.labels].log()) * balance).sum().item() / balance.sum()

    # The same pipeline in scikit-learn (TF-IDF, then MultinomialNB with a uniform prior) at each smoothing: the
    # module keeps the one of lowest class-balanced validation log-loss, and answers as it does.
    references = {alpha: scikit_learn_fit(data, 1, 3, MultinomialNB(alpha=alpha, fit_prior=False)) for alpha in ALPHAS}
    losses = {alpha: balanced_log_loss(reference(data.val)) for alpha, reference in references.items()}
    assert len(set(losses.values())) == len(ALPHAS)  # the choice is not a tie on this data
    chosen = references[min(losses, key=losses.get)]
    for split in (data.val, data.test):
        assert torch.allclose(probabilities(fitted["naive Bayes"], split), chosen(split), atol=2e-3)


def test_mixture_weights_are_the_lowest_log_loss_and_drop_what_adds_nothing():
    labels = torch.tensor([0] * 8 + [1] * 2)
    sure = torch.tensor([[0.9, 0.1]] * 10)  # always the large class
    knows = torch.tensor([[0.6, 0.4]] * 8 + [[0.2, 0.8]] * 2)  # knows the small class
    weights = mixture_weights([sure, knows], labels)
    assert weights.sum().item() == pytest.approx(1)

    def log_loss(w):
        return nn.functional.nll_loss(((1 - w) * sure + w * knows).log(), labels).item()

    grid = min((log_loss(w / 1000), w / 1000) for w in range(1001))
    assert 0 < weights[1].item() < 1 and weights[1].item() == pytest.approx(grid[1], abs=2e-3)
    assert log_loss(weights[1].item()) <= grid[0] + 1e-6
    # A member whose probability of every label is lower than another's gets no share, and is dropped.
    worse = torch.tensor([[0.5, 0.5]] * 8 + [[0.85, 0.15]] * 2)
    assert mixture_weights([knows, worse], labels).tolist() == [1, 0]


def test_the_served_model_says_what_it_is():
    accuracy = {"accuracy": 1.0}
    assert Assembled(None, (4,), (1.0,), {}).describe(accuracy) == "trial #4 alone, answering for accuracy"
    assert Assembled(None, ("baseline",), (1.0,), {}).describe(accuracy) == "baseline alone, answering for accuracy"
    assert Assembled(None, (4, 7, "baseline", "naive Bayes"), (0.5, 0.2, 0.2, 0.1), {}).describe(
        {"blended_accuracy": 1.0}) == ("0.50 #4 + 0.20 #7 + 0.20 baseline + 0.10 naive Bayes (weights fitted by "
                                       "validation log-loss), answering for blended accuracy")
    assert Assembled(None, (4, 7), (0.6, 0.4), {}).describe({"accuracy": 0.55, "balanced_accuracy": 0.45}) == (
        "0.60 #4 + 0.40 #7 (weights fitted by validation log-loss), answering for 0.55 accuracy + 0.45 balanced "
        "accuracy")


class Logits(nn.Module):
    """A member whose logits are its input."""

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        return tokens


def test_gains_make_the_answer_the_one_the_metric_rewards():
    labels = torch.tensor([0] * 9 + [1])  # class 1 is a tenth of the data, class 2 absent
    assert gains({"accuracy": 1.0}, labels, 3).tolist() == [1, 1, 1]
    balanced = gains({"balanced_accuracy": 1.0}, labels, 3)
    assert balanced.tolist() == pytest.approx([1 / (2 * 0.9), 1 / (2 * 0.1), 1])
    blended = gains({"blended_accuracy": 1.0}, labels, 3)
    assert blended.tolist() == pytest.approx(((1 + balanced) / 2).tolist())
    # A weighted metric is worth the weighted sum of its scores' gains.
    assert gains({"accuracy": 0.5, "balanced_accuracy": 0.5}, labels, 3).tolist() == pytest.approx(blended.tolist())

    def answer(metric: dict[str, float]) -> int:
        return Ensemble([Logits()], [1.0], gains(metric, labels, 2))(logits, None).argmax(1).item()

    # p = (0.8, 0.2): accuracy answers class 0; balanced accuracy expects 0.8 / 1.8 < 0.2 / 0.2 from class 1;
    # blended accuracy 0.8 x 0.78 > 0.2 x 3, so class 0; a quarter accuracy, three quarters balanced, 0.53 < 0.8.
    logits = torch.tensor([[0.8, 0.2]]).log()
    assert [answer({"accuracy": 1.0}), answer({"balanced_accuracy": 1.0}), answer({"blended_accuracy": 1.0}),
            answer({"accuracy": 0.25, "balanced_accuracy": 0.75})] == [0, 1, 0, 1]


def test_a_changed_serve_metric_is_served_at_the_next_run_without_new_trials(env, spec_file):
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2", "--no-mlflow")
    assert code == 0, err
    before = record.read_served(stored(env))
    assert before.serve_metric == {"val_accuracy": 1.0} and before.description.endswith("answering for accuracy")
    weighted = 'direction = "maximize"\nserve_metric = { val_accuracy = 1, val_balanced_accuracy = 1 }'
    spec_file.write_text(spec_file.read_text(encoding="utf-8").replace('direction = "maximize"', weighted),
                         encoding="utf-8")
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2", "--no-mlflow")
    assert code == 0, err
    after = record.read_served(stored(env))
    assert after.completed == before.completed  # no trial ran, yet the model answers for what the spec asks
    assert after.serve_metric == {"val_accuracy": 0.5, "val_balanced_accuracy": 0.5}
    assert after.description.endswith("answering for 0.50 accuracy + 0.50 balanced accuracy")
    assert after.artifact != before.artifact
    # Unchanged, it is kept.
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2", "--no-mlflow")
    assert code == 0 and record.read_served(stored(env)) == after, err


def test_run_assembles_the_served_model_that_best_predict_and_the_report_use(env, spec_file, data_root):
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "3", "--no-mlflow")
    assert code == 0 and "assembling the model the study serves" in err, err
    study = stored(env)
    served = record.read_served(study)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert served.completed == len(complete) and served.members
    assert {n for n in served.members if isinstance(n, int)} <= {t.number for t in complete}

    # The stored model is the weighted mixture of its members, as loaded from their own checkpoints.
    checkpoints = Checkpoints(str(env / "artifacts"), env, create=False)
    model = checkpoints.served(study).model
    data = TASKS["surnames"].load(str(data_root), load(str(spec_file)).data)
    fitted = fit_ngram_members(data, (1, 4))
    members = [checkpoints.load(study.trials[n]).model if isinstance(n, int) else fitted[n] for n in served.members]
    mixed = sum(w * probabilities(m, data.test) for w, m in zip(model.weights.tolist(), members, strict=True))
    expected = mixed * model.log_gains.exp()
    assert torch.allclose(probabilities(model, data.test), expected / expected.sum(1, keepdim=True), atol=1e-5)
    assert served.results["test_accuracy"] == pytest.approx(
        (probabilities(model, data.test).argmax(1) == data.test.labels).float().mean().item())

    # The tiny data may leave one trial best alone: a mixture of every kind of member goes through the same
    # bytes and back.
    mixture = Ensemble([*(checkpoints.load(t).model for t in complete), *fitted.values()],
                       [0.3] * len(complete) + [0.05, 0.05], gains({"blended_accuracy": 1.0}, data.train.labels, 3))
    hyperparams = [checkpoints.load(t).hyperparams for t in complete] + [None, None]
    again = checkpoint.load(checkpoint.ensemble_to_bytes(TASKS["surnames"], {"classes": data.classes, "vocab_size":
                                                                            data.vocab_size}, mixture, hyperparams))
    mixture.classes = data.classes
    assert torch.allclose(probabilities(again.model, data.test), probabilities(mixture, data.test), atol=1e-6)

    code, out, _ = hpsearch("best", "--study", "tiny", "--json")
    assert code == 0 and json.loads(out)["served_model"]["description"] == served.description
    code, out, _ = hpsearch("best", "--study", "tiny")
    assert f"served model (predict, MLflow): {served.description}" in out
    code, out, err = hpsearch("predict", "--study", "tiny", "--json", "Petrovov", "McDonald")
    rows = json.loads(out)
    assert code == 0 and [r["model"] for r in rows] == [served.description] * 2
    one_trial = len(served.members) == 1 and isinstance(served.members[0], int)
    assert rows[0].get("trial") == (served.members[0] if one_trial else None)
    assert f"model: {served.description}" in err
    code, _, err = hpsearch("report", "--study", str(spec_file), "--no-mlflow")
    assert code == 0, err
    markdown = (env / "reports" / "tiny" / "report.md").read_text(encoding="utf-8")
    assert f"Served model (what `hpsearch predict` and the MLflow model answer with): {served.description}." in markdown
    assert "**Served model against the baseline**" in markdown

    # Resumed with nothing new completed: the same model, not assembled again.
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "3", "--no-mlflow")
    assert code == 0 and record.read_served(stored(env)).artifact == served.artifact


def test_a_study_ranked_by_loss_serves_its_best_trial(env, spec_file):
    spec_file.write_text(spec_file.read_text().replace('metric = "val_accuracy"\ndirection = "maximize"',
                                                       'metric = "val_loss"\ndirection = "minimize"'))
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "2", "--no-mlflow")
    assert code == 0 and "assembling" not in err and record.read_served(stored(env)) is None
    code, out, err = hpsearch("predict", "--study", "tiny", "--json", "Petrovov")
    best = stored(env).best_trial.number
    assert code == 0 and json.loads(out)[0]["trial"] == best and f"model: trial #{best}" in err
