from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import optuna
import pytest

from hpsearch.errors import SpecError
from hpsearch.studies import Hyperparams, builtin_names, load_spec
from hpsearch.studies.spec import SAMPLERS
from hpsearch.training import TASKS


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(str(path), TASKS)
    lines = str(caught.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    return [line.removeprefix(f"{path}: ") for line in lines]


def test_builtin_surnames_spec_is_valid():
    assert "surnames" in builtin_names()
    spec = load_spec("surnames", TASKS)
    assert (spec.task, spec.metric, spec.direction) == ("surnames", "val_accuracy", "maximize")
    assert spec.serve_metric == pytest.approx({"val_accuracy": 0.55, "val_balanced_accuracy": 0.45})
    assert spec.pruner.type == "successive_halving" and spec.sampler.options["seed"] == 0
    assert spec.timeout == 2700 and spec.stop is None  # the served model gains from the whole budget
    # every optimizer gets exactly one learning-rate range
    for optimizer in next(p for p in spec.space if p.name == "optimizer").choices:
        assert sum(p.active({"optimizer": optimizer}) for p in spec.space if p.name == "lr") == 1
    names = {p.name for p in spec.space}
    assert {"cell", "implementation", "bidirectional", "num_layers", "hidden_size", "embedding_dim", "dropout",
            "optimizer", "lr", "weight_decay", "batch_size", "grad_clip", "momentum", "nonlinearity"} <= names


def test_every_problem_is_one_line_naming_file_and_key(tmp_path):
    found = problems(tmp_path, """
task = "poetry"
colour = "blue"
[space]
hidden_size = { low = 64, high = 32 }
lr = { low = 0.0, high = 0.1, log = true }
cell = { choices = [] }
dropout = { low = 0.1, high = 0.5, when = { optimiser = "sgd" } }
""")
    assert found == [
        "colour: unknown key (known: data, description, direction, enqueue, max_epochs, metric, n_trials, "
        "name, prune_on, pruner, sampler, serve_metric, space, stop, task, timeout)",
        "task: unknown task 'poetry' (known: addition, imdb, makenames, surnames)",
        "space.hidden_size: low (64) is greater than high (32)",
        "space.lr: log scale needs low > 0, got 0.0",
        "space.cell.choices: must be a non-empty list",
        "space.dropout.when: condition on 'optimiser', which is not in the space",
    ]


@pytest.mark.parametrize("body, expected", [
    ('[space]\nwidth = { low = 1, high = 2 }', "space.width: unknown parameter"),
    ('[space]\ncell = { choices = ["rnn", "transformer"] }',
     "space.cell.choices: 'transformer' is not a valid cell (one of rnn, gru, lstm)"),
    ('[space]\nmomentum = { low = 0.0, high = 0.9, when = { optimizer = "sgd" } }\n'
     'optimizer = { choices = ["sgd"] }', "space.momentum.when: condition on 'optimizer', which is declared after it"),
    ('[space]\noptimizer = { choices = ["adam"] }\nmomentum = { low = 0.0, high = 0.9, when = { optimizer = "sgd" } }',
     "space.momentum.when: optimizer can never be 'sgd'"),
    ('[space]\nnum_layers = { low = 1.5, high = 3 }',
     "space.num_layers: num_layers takes a whole number, not a float range"),
    ('[space]\nlr = { low = 0.1, high = 0.2, colour = 1 }', "space.lr.colour: unknown key"),
    ('[sampler]\ntype = "grid"', "sampler.type: unknown sampler 'grid' (known: tpe, random, gp)"),
    ('[pruner]\nn_warmup = 3', "pruner.n_warmup: not an option of MedianPruner"),
    ('metric = "val_loss"\ndirection = "maximize"', "direction: val_loss must be minimized, not 'maximize'"),
    ('n_trials = 0', "n_trials: must be a whole number >= 1, got 0"),
    ('timeout = -5', "timeout: must be a number of seconds > 0, got -5"),
    ('serve_metric = "val_loss"', "serve_metric: 'val_loss' is not a validation metric to maximize (known: "
                                  "val_accuracy, val_balanced_accuracy, val_blended_accuracy)"),
    ('serve_metric = { val_accuracy = 1, val_loss = 1 }', "serve_metric.val_loss: not a validation metric to "
                                                          "maximize (known: val_accuracy, val_balanced_accuracy, "),
    ('serve_metric = { val_accuracy = 0, val_balanced_accuracy = 1 }',
     "serve_metric.val_accuracy: a weight must be a number > 0, got 0"),
    ('serve_metric = { val_accuracy = "half" }',
     "serve_metric.val_accuracy: a weight must be a number > 0, got 'half'"),
    ('serve_metric = {}', "serve_metric: must be a validation metric's name or a table of them with weights"),
    ('serve_metric = 0.5', "serve_metric: must be a validation metric's name or a table of them with weights"),
    ('[space]\nlr = { low = 0.001, high = 0.01 }\n[[enqueue]]\nlr = 0.5', "enqueue[0].lr: 0.5 is outside the space"),
    ('[space]\nlr = { low = 0.001, high = 0.01 }\n[[enqueue]]\ncell = "gru"',
     "enqueue[0].cell: not a searched parameter of the space"),
    ('[data]\nval_fraction = 0.6\ntest_fraction = 0.5', "data: val_fraction + test_fraction must leave"),
    ('[data]\nsplit_seed = "one"', "data.split_seed: must be a whole number, got 'one'"),
    # Ranges outside what the model, optimizers and loss accept fail at load, not in a trial.
    ('[space]\ndropout = { low = 0.0, high = 1.5 }', "space.dropout: 1.5 is not a possible dropout (must be >= 0 and < 1)"),
    ('[space]\ndropout = 1.0', "space.dropout.value: 1.0 is not a possible dropout"),
    ('[space]\nlr = { low = 0.0, high = 0.1 }', "space.lr: 0.0 is not a possible lr (must be > 0)"),
    ('[space]\nhidden_size = { choices = [0, 64] }', "space.hidden_size.choices: 0 is not a possible hidden_size"),
    ('[space]\nnum_layers = { low = 0, high = 3 }', "space.num_layers: 0 is not a possible num_layers (must be >= 1)"),
    ('[space]\nbatch_size = -8', "space.batch_size.value: -8 is not a possible batch_size"),
    ('[space]\nweight_decay = { low = -0.1, high = 0.1 }', "space.weight_decay: -0.1 is not a possible weight_decay"),
    ('[space]\nmomentum = { low = 0.0, high = 1.0 }', "space.momentum: 1.0 is not a possible momentum"),
    ('[space]\nclass_balance = { low = 0.0, high = 2.0 }', "space.class_balance: 2.0 is not a possible class_balance"),
    ('[space]\ntoken_dropout = { value = 1.0 }', "space.token_dropout.value: 1.0 is not a possible token_dropout (must be >= 0 and < 1)"),
    ('[space]\nlr = { low = nan, high = 0.1 }', "space.lr.low: must be a finite number, got nan"),
    ('[space]\ngrad_clip = { low = 1.0, high = inf }', "space.grad_clip.high: must be a finite number, got inf"),
    ('[space]\nhidden_size = { low = 8, high = 64, log = true, step = 2 }', "space.hidden_size: step and log cannot"),
    ('name = "../escape"', "name must be letters, digits and -_.: starting with a letter or digit, with no path"),
    ('name = "a/b"', "name must be letters, digits"),
    ('name = 7', "name must be letters, digits"),
    ('description = ["x"]', "description: must be a string"),
    ('description = "no space"', "space: missing; add a [space] table"),
    ('[sampler]\nseed = "zero"', "sampler.seed: must be a whole number, got 'zero'"),
    ('[sampler]\nn_startup_trials = 2.5', "sampler.n_startup_trials: must be a whole number like its default (10)"),
    ('[pruner]\nn_warmup_steps = "3"', "pruner.n_warmup_steps: must be a whole number like its default (0)"),
])
def test_single_problems(tmp_path, body, expected):
    space = "" if "[space]" in body or expected.startswith("space: missing") else "\n[space]\n"
    found = problems(tmp_path, f'task = "surnames"\n{body}\n{space}')
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_name_taken_from_the_file_name_is_checked_too(tmp_path):
    path = tmp_path / "my study.toml"
    path.write_text('task = "surnames"\n[space]\n', encoding="utf-8")
    with pytest.raises(SpecError, match="name: 'my study', from the file name, must be letters"):
        load_spec(str(path), TASKS)
    fine = tmp_path / "my-study:v1.2.toml"
    fine.write_text('task = "surnames"\n[space]\n', encoding="utf-8")
    assert load_spec(str(fine), TASKS).name == "my-study:v1.2"


def test_malformed_toml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('task = "surnames"\n[space\n', encoding="utf-8")
    with pytest.raises(SpecError, match=r"broken.toml: not valid TOML: .*line 2"):
        load_spec(str(path), TASKS)


def test_unknown_study_name_lists_builtins():
    with pytest.raises(SpecError, match="unknown study 'surname'; built-in studies: addition, addition-100, imdb, makenames, surnames"):
        load_spec("surname", TASKS)


def test_conditional_params_are_sampled_only_when_their_condition_holds(spec_file):
    spec = load_spec(str(spec_file), TASKS)
    sgd = spec.sample(optuna.trial.FixedTrial({"cell": "rnn", "implementation": "handwritten",
                                                "nonlinearity": "relu", "bidirectional": True, "hidden_size": 8,
                                                "optimizer": "sgd", "momentum": 0.5, "lr": 0.01, "batch_size": 16}))
    assert (sgd.momentum, sgd.nonlinearity, sgd.embedding_dim) == (0.5, "relu", 8)

    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"cell": "gru", "optimizer": "adam"})
    trial = study.ask()
    adam = spec.sample(trial)
    assert "momentum" not in trial.params and "nonlinearity" not in trial.params
    assert "embedding_dim" not in trial.params  # fixed values are not search dimensions
    assert (adam.momentum, adam.nonlinearity, adam.embedding_dim) == (Hyperparams.momentum, "tanh", 8)

    # What a report shows of each: the defaults a trial never used are left out, fixed and unsearched values kept.
    shown = spec.applicable(dataclasses.asdict(adam))
    assert "momentum" not in shown and "nonlinearity" not in shown
    assert (shown["embedding_dim"], shown["cell"], shown["class_balance"]) == (8, "gru", adam.class_balance)
    assert spec.applicable(dataclasses.asdict(sgd)) == dataclasses.asdict(sgd)


def test_every_numeric_hyperparameter_has_a_limit():
    numeric = {f.name for f in dataclasses.fields(Hyperparams) if f.type in ("int", "float")}
    assert set(Hyperparams.limits) == numeric


def test_seed_follows_the_configuration_only():
    assert Hyperparams(lr=0.01).seed() == Hyperparams(lr=0.01).seed()
    assert Hyperparams(lr=0.01).seed() != Hyperparams(lr=0.02).seed()


PER_OPTIMIZER = """
task = "surnames"
n_trials = 12
[sampler]
type = "random"
seed = 0
[space]
optimizer = { choices = ["adam", "sgd", "adadelta"] }
lr = [
  { low = 1e-4, high = 1e-2, log = true, when = { optimizer = "adam" } },
  { low = 1e-2, high = 0.3, log = true, when = { optimizer = "sgd" } },
  { low = 0.3, high = 3.0, log = true, when = { optimizer = "adadelta" } },
]
[[enqueue]]
optimizer = "adadelta"
lr = 1.0
"""


def test_a_parameter_may_have_a_range_per_condition(tmp_path):
    path = tmp_path / "per-optimizer.toml"
    path.write_text(PER_OPTIMIZER, encoding="utf-8")
    spec = load_spec(str(path), TASKS)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [spec.sample(study.ask()) for _ in range(30)]
    ranges = {"adam": (1e-4, 1e-2), "sgd": (1e-2, 0.3), "adadelta": (0.3, 3.0)}
    assert {hp.optimizer for hp in drawn} == set(ranges)
    assert all(ranges[hp.optimizer][0] <= hp.lr <= ranges[hp.optimizer][1] for hp in drawn)


def test_the_gp_sampler_draws_a_conditional_space(tmp_path):
    # The GP models only the parameters every trial has; the per-optimizer lr ranges fall to its random sampler.
    path = tmp_path / "gp.toml"
    path.write_text(PER_OPTIMIZER.replace('type = "random"', 'type = "gp"\nn_startup_trials = 3'), encoding="utf-8")
    spec = load_spec(str(path), TASKS)
    study = optuna.create_study(sampler=spec.sampler.build(SAMPLERS, warn_independent_sampling=False))
    assert isinstance(study.sampler, optuna.samplers.GPSampler)
    ranges = {"adam": (1e-4, 1e-2), "sgd": (1e-2, 0.3), "adadelta": (0.3, 3.0)}
    for _ in range(6):
        trial = study.ask()
        hp = spec.sample(trial)
        assert ranges[hp.optimizer][0] <= hp.lr <= ranges[hp.optimizer][1]
        study.tell(trial, hp.lr)


@pytest.mark.parametrize(("change", "problem"), [
    (('when = { optimizer = "sgd" }', 'when = { optimizer = ["sgd", "adam"] }'),
     "space.lr[1]: its `when` can hold together with that of lr[0]; give each definition conditions that exclude"),
    ((', when = { optimizer = "adadelta" }', ""), "space.lr[2]: its `when` can hold together with that of lr[0]"),
    (("lr = 1.0", "lr = 0.01"), "enqueue[0].lr: 0.01 is outside the space"),
    (("high = 3.0", "high = -3.0"), "space.lr[2]: low (0.3) is greater than high (-3.0)"),
])
def test_several_definitions_must_exclude_each_other(tmp_path, change, problem):
    path = tmp_path / "bad.toml"
    path.write_text(PER_OPTIMIZER.replace(*change), encoding="utf-8")
    with pytest.raises(SpecError, match=re.escape(problem)):
        load_spec(str(path), TASKS)


def test_an_ablation_varies_a_parameter_by_the_definition_its_base_uses(tmp_path):
    from hpsearch.studies.ablation import levels

    path = tmp_path / "per-optimizer.toml"
    path.write_text(PER_OPTIMIZER, encoding="utf-8")
    spec = load_spec(str(path), TASKS)
    assert levels("lr", None, spec, {"optimizer": "sgd", "lr": 0.05}) == (0.005, 0.015, 0.05, 0.15, 0.5)


def test_serve_metric_is_one_metric_or_weighted_ones(tmp_path):
    path = tmp_path / "served.toml"

    def served(line: str) -> dict[str, float]:
        path.write_text(f'task = "surnames"\nmetric = "val_balanced_accuracy"\n{line}\n[space]\n', encoding="utf-8")
        return load_spec(str(path), TASKS).serve_metric

    assert served("") == {"val_balanced_accuracy": 1.0}  # the study's metric
    assert served('serve_metric = "val_blended_accuracy"') == {"val_blended_accuracy": 1.0}
    # Weights need not sum to 1: they are shares.
    assert served("serve_metric = { val_accuracy = 3, val_balanced_accuracy = 1 }") == {
        "val_accuracy": 0.75, "val_balanced_accuracy": 0.25}
