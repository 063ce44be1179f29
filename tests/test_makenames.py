"""Surname generation: a language-conditioned character model learns each made-up language's pattern from the
tiny data, writes new names in it, and refuses what it cannot do in one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_SPEC
from test_cli import hpsearch, stored

from hpsearch.search.lookup import load
from hpsearch.studies import record
from hpsearch.training import serving

SPEC = """
name = "mk"
task = "makenames"
n_trials = 1
max_epochs = 25
[data]
split_seed = 1
[space]
cell = "lstm"
condition = { choices = ["input", "state"] }
hidden_size = 48
embedding_dim = 16
lr = 0.01
batch_size = 16
grad_clip = 1.0
[[enqueue]]
condition = "input"
[[enqueue]]
condition = "state"
"""


@pytest.fixture
def written(env: Path, tmp_path: Path) -> Path:
    path = tmp_path / "mk.toml"
    path.write_text(SPEC, encoding="utf-8")
    code, _, err = hpsearch("run", "--study", str(path), "--n-trials", "3", "--quiet", "--no-mlflow")
    assert code == 0, err
    return path


def test_a_conditioned_model_writes_each_languages_pattern(written, env, tmp_path):
    study = stored(env, "mk")
    best = record.read(study.best_trial)
    # Uniform guessing over the 59 symbols costs ln(59) = 4.1 nats a character; the patterns are easy.
    assert best.results["val_nll"] < 2.2 and best.results["val_perplexity"] < 9
    assert {f"nll_{language}" for language in ("Alpha", "Beta", "Gamma")} <= best.results.keys()
    assert 0 <= best.results["novel_fraction"] <= 1

    code, out, err = hpsearch("sample", "--study", str(written), "--language", "Beta", "-n", "20", "--seed", "3",
                              "--temperature", "0.5")
    assert code == 0, err
    names = out.split()
    assert len(names) == 20 and sum(name.startswith("Mc") for name in names) >= 15, names
    assert f"trial {study.best_trial.number}, seed 3:" in err and "are not training names" in err and "no classifier of the same data is stored" in err
    assert hpsearch("sample", "--study", str(written), "--language", "Beta", "-n", "20", "--seed", "3",
                    "--temperature", "0.5")[1] == out  # the seed writes the same names again
    code, out, _ = hpsearch("sample", "--study", str(written), "--language", "Alpha", "-n", "10", "--start", "Ka",
                            "--temperature", "0.5")
    names = out.split()
    assert all(name.startswith("Ka") for name in names) and sum(name.endswith("ov") for name in names) >= 7, names

    # A classifier trained on the same data, found in the same storage, says which language the names read as.
    classifier = tmp_path / "tiny.toml"
    classifier.write_text(TINY_SPEC.format(epochs=3), encoding="utf-8")
    assert hpsearch("run", "--study", str(classifier), "--n-trials", "1", "--quiet", "--no-mlflow")[0] == 0
    code, out, err = hpsearch("sample", "--study", str(written), "--language", "Gamma", "-n", "20", "--seed", "1",
                              "--temperature", "0.5")
    assert code == 0, err
    agreed = int(err.split("reads ")[1].split(" as Gamma")[0])
    # A written name may carry two languages' patterns ("Mcez"), and a classifier may read it either way; those
    # with Gamma's alone it must read as Gamma.
    names = out.split()
    gamma_alone = sum(n.endswith("ez") and not n.startswith("Mc") and not n.endswith("ov") for n in names)
    assert "study 'tiny', trial 0 reads" in err and gamma_alone >= 10 and agreed >= gamma_alone, (out, err)

    code, _, err = hpsearch("report", "--study", str(written), "--no-mlflow")
    assert code == 0, err
    markdown = (env / "reports" / "mk" / "report.md").read_text()
    section = markdown.split("## Samples from the best model")[1].split("\n## ")[0]
    assert f"Trial #{study.best_trial.number}, 50 samples per language" in section
    assert "are not training names; study 'tiny', trial 0 reads" in section
    assert all(f"| {language} | " in section for language in ("Alpha", "Beta", "Gamma"))
    # A minimised objective: the front keeps the lowest NLL at each cost, the comparisons rank lowest first.
    assert "no other completed trial has a lower val_nll at a lower cost" in markdown
    assert "Best median val_nll: " in markdown and "### Language: Is the language better" in markdown

    code, out, err = hpsearch("predict", "--study", str(written), "Petrov", "McAllen", "--top-k", "1")
    assert code == 0, err
    assert out.splitlines()[0].startswith("Petrov: nats per character if written in Alpha")
    assert out.splitlines()[1].startswith("McAllen: nats per character if written in Beta")
    # As MLflow serves it: a name per row, the language most likely to write it.
    served = serving._load_pyfunc(str(env / "artifacts" / best.checkpoint_artifact))
    assert served.predict(pd.DataFrame({"name": ["Petrov", "McAllen"]})) == ["Alpha", "Beta"]


@pytest.mark.parametrize("args, message", [
    (["--language", "Klingon"], "unknown language 'Klingon'; this model knows Alpha, Beta, Gamma"),
    (["--language", "Alpha", "--start", "K7"], "--start 'K7': '7' is not in the alphabet of the names"),
    (["--language", "Alpha", "--classifier", "nosuch"], "no study 'nosuch' in"),
], ids=lambda value: value[-1] if isinstance(value, list) else None)
def test_sampling_errors_are_one_line_exit_2(written, args, message):
    code, _, err = hpsearch("sample", "--study", str(written), *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_sampling_a_classifier_study_says_it_writes_nothing(env, spec_file):
    assert hpsearch("run", "--study", str(spec_file), "--n-trials", "1", "--quiet", "--no-mlflow")[0] == 0
    code, _, err = hpsearch("sample", "--study", str(spec_file), "--language", "Alpha")
    assert code == 2 and "task surnames does not write text; `hpsearch sample` takes a study of a task" in err


@pytest.mark.parametrize("line, problem", [
    ("bidirectional = true", "space.bidirectional: a model that writes left to right cannot read the characters "
                             "to come; remove it"),
    ("bidirectional = { choices = [true, false] }", "space.bidirectional: a model that writes left to right"),
    ("class_balance = 0.5", "space.class_balance: generation has no classes to weigh; remove it"),
    ('condition = "both"', "space.condition.value: 'both' is not a valid condition (one of input, state)"),
])
def test_a_makenames_spec_refuses_what_a_left_to_right_model_cannot_do(tmp_path, line, problem):
    path = tmp_path / "bad.toml"
    path.write_text(f'task = "makenames"\n[space]\ncell = "gru"\n{line}\n')
    code, _, err = hpsearch("run", "--study", str(path))
    assert code == 2 and problem in err and len(err.strip().splitlines()) == 1, err


def test_the_builtin_makenames_spec_loads_and_minimises_the_validation_nll():
    spec = load("makenames")
    assert spec.metric == "val_nll" and spec.direction == "minimize" and spec.prune_on == "val_nll"
    assert spec.data.split_seed == load("surnames").data.split_seed  # the same held-out names
