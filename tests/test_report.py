from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import optuna_dashboard
import pandas as pd
import pytest
import servers
import torch
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from test_cli import hpsearch, stored

from hpsearch.errors import SpecError
from hpsearch.report import analysis
from hpsearch.studies import load_spec, record
from hpsearch.training import TASKS

SECTIONS = ["Summary", "Per-class results of the best model", "Is more search worth it?", "What matters",
            "The objective against cost",
            "The comparison questions", "Search dynamics"]


def hand_made(number_of_params: int = 0, **attrs) -> optuna.trial.FrozenTrial:
    return create_trial(state=attrs.pop("state", TrialState.COMPLETE), value=attrs.pop("value", None),
                        params={"cell": attrs.pop("cell", "gru")},
                        distributions={"cell": CategoricalDistribution(["rnn", "gru", "lstm"])},
                        user_attrs=attrs, intermediate_values={1: 0.5})


def test_pareto_front_is_exactly_the_non_dominated_trials():
    study = optuna.create_study(direction="maximize")
    points = {0: (0.80, 5.0), 1: (0.85, 9.0), 2: (0.84, 9.0), 3: (0.70, 2.0), 4: (0.85, 12.0), 5: (0.80, 5.0),
              6: (0.60, 3.0), 7: (0.86, 20.0)}
    for value, seconds in points.values():
        study.add_trial(hand_made(value=value, epoch_seconds=seconds))
    study.add_trial(hand_made(state=TrialState.PRUNED, value=0.99, epoch_seconds=0.1))  # not a finished result
    frame = analysis.completed(analysis.trials_frame(study, load_spec("surnames", TASKS)))
    mask = analysis.pareto_mask(frame["value"], frame["epoch_seconds"])
    # 2 and 4 lose to 1, 6 to 3; 0 and 5 tie, and neither beats the other, so both stay.
    assert sorted(frame.loc[mask, "number"]) == [0, 1, 3, 5, 7]


def test_the_trials_frame_leaves_out_what_a_trial_never_used(spec_file):
    study = optuna.create_study(direction="maximize")
    recorded = [{"cell": "rnn", "nonlinearity": "relu", "optimizer": "sgd", "momentum": 0.5},
                {"cell": "gru", "nonlinearity": "tanh", "optimizer": "adam", "momentum": 0.0}]
    for config in recorded:  # the full configurations trials record: a GRU's unused defaults included
        study.add_trial(hand_made(value=0.5, hyperparams={**config, "pooling": "last"}))
    frame = analysis.trials_frame(study, load_spec(str(spec_file), TASKS)).set_index("cell")
    assert frame.loc["rnn", ["nonlinearity", "momentum"]].tolist() == ["relu", 0.5]
    assert frame.loc["gru", ["nonlinearity", "momentum"]].isna().all()
    assert frame["pooling"].tolist() == ["last", "last"]  # not searched, but every trial used it


def test_paired_intervals_hold_the_difference_and_widen_with_fewer_rows():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (600,), generator=g)
    ours = torch.where(torch.rand(600, generator=g) < 0.9, labels, (labels + 1) % 3)
    theirs = torch.where(torch.rand(600, generator=g) < 0.8, labels, (labels + 1) % 3)
    found = analysis.paired_intervals(ours, theirs, labels, 3)
    difference = ((ours == labels).float().mean() - (theirs == labels).float().mean()).item()
    low, high = found["accuracy"]
    assert 0 < low < difference < high  # ten points apart on 600 rows: told apart
    few = analysis.paired_intervals(ours[:40], theirs[:40], labels[:40], 3)["accuracy"]
    assert few[1] - few[0] > 2 * (high - low)  # a fifteenth of the rows: about four times as wide
    same = analysis.paired_intervals(ours, ours, labels, 3)
    assert same == {name: (0.0, 0.0) for name in ("accuracy", "balanced_accuracy", "blended_accuracy")}


def test_levels_bin_wide_numeric_ranges_and_cross_categories():
    frame = pd.DataFrame({"hidden_size": [32, 40, 64, 100, 130, 200, 300, 400, 500, 511],
                          "cell": ["gru"] * 5 + ["lstm"] * 5, "bidirectional": [True, False] * 5,
                          "implementation": ["builtin"] * 10})
    # Ten trials fill three ranges of about three: powers of 4, as powers of 2 would make four.
    bins = analysis.levels(frame, ["hidden_size"]).astype(str).tolist()
    assert bins == ["16-63"] * 2 + ["64-255"] * 4 + ["256-1023"] * 4
    # Six learning rates, one trial each, are not six levels: two ranges of two decades.
    rates = pd.DataFrame({"lr": [1.1e-4, 3e-4, 2e-3, 9e-3, 0.02, 0.09]})
    assert analysis.levels(rates, ["lr"]).astype(str).tolist() == ["0.0001-0.01"] * 4 + ["0.01-1"] * 2
    dropout = pd.DataFrame({"dropout": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]})  # from 0: equal widths
    assert analysis.levels(dropout, ["dropout"]).astype(str).tolist() == ["0-0.25"] * 3 + ["0.25-0.5"] * 3
    few = pd.DataFrame({"batch_size": [32, 64, 128] * 4})  # three values for twelve trials stay three levels
    assert analysis.levels(few, ["batch_size"]).tolist() == ["32", "64", "128"] * 4
    crossed = analysis.levels(frame, ["cell", "bidirectional", "implementation"]).tolist()
    assert crossed[:2] == ["gru bi", "gru uni"]  # a constant column is left out of the label
    # A GRU has no nonlinearity to choose (trials_frame leaves it empty): it is no level of that question, and
    # the RNNs' cell, the same for all of them, is left out of the label.
    cells = pd.DataFrame({"cell": ["rnn", "rnn", "gru", "lstm"], "nonlinearity": ["tanh", "relu", None, None]})
    nonlinearity = analysis.levels(cells, ["cell", "nonlinearity"])
    assert nonlinearity[:2].tolist() == ["tanh", "relu"] and nonlinearity[2:].isna().all()
    assert analysis.levels(cells[1:], ["cell", "nonlinearity"]) is None  # one RNN nonlinearity: not searched


@pytest.fixture
def mixed_study(env, spec_file) -> Path:
    """The tiny study with five completed trials from a real run (enough for importances), plus a pruned and a
    failed trial."""
    spec_file.write_text(spec_file.read_text().replace("n_warmup_steps = 1", "n_warmup_steps = 100"))
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "5")
    assert code == 0, err
    study = stored(env)
    study.add_trial(create_trial(state=TrialState.PRUNED, value=0.4, params={"lr": 0.005},
                                 distributions={"lr": FloatDistribution(1e-3, 1e-2, log=True)},
                                 user_attrs={"epochs": 1, "epoch_seconds": 0.1, "samples_per_second": 900.0},
                                 intermediate_values={1: 0.4}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "TrainingDiverged: nan"}))
    return env


def test_report_writes_every_section_offline_and_publishes(mixed_study, spec_file):
    code, out, err = hpsearch("report", "--study", str(spec_file))
    assert code == 0, err
    folder = mixed_study / "reports" / "tiny"
    page = (folder / "index.html").read_text()
    markdown = (folder / "report.md").read_text()
    for title in SECTIONS:
        assert f">{title}</h2>" in page and f"\n## {title}\n" in markdown
    # Offline: no address outside the folder, and the plotting library is beside the page.
    assert not re.search(r"https?://", page), re.search(r".{80}https?://.{80}", page).group(0)
    assert '<script src="plotly.min.js">' in page and (folder / "plotly.min.js").stat().st_size > 1_000_000
    images = re.findall(r"!\[[^]]*\]\(([^)]+\.png)\)", markdown)
    assert len(images) >= 10 and all((folder / name).stat().st_size > 5_000 for name in images)
    assert "7 trials: 5 complete, 1 pruned, 1 fail." in markdown
    assert "Epochs trained by the finished trials:" in markdown
    assert "Confusion" in markdown and "| Alpha |" in markdown
    assert "Which optimizer is best?" in markdown and "Best median val_accuracy:" in markdown
    assert "Baseline: class-weighted character 1-4-gram TF-IDF + logistic regression" in markdown
    # The search serves its best trials mixed with the baseline: the table compares what a user gets.
    assert "**Served model against the baseline**" in markdown and "| test_balanced_accuracy |" in markdown
    header = "| best trial | served model | baseline | served model - baseline | 95% interval of the difference |"
    assert header in markdown
    # How strong the evidence is: each test score's interval holds its difference, and the verdict follows it.
    rows = re.findall(r"\| (test_\w+) \| [^|]+ \| [^|]+ \| [^|]+ \| ([-\d.e]+) \| ([-+\d.]+) to ([-+\d.]+) \|", markdown)
    assert [name for name, *_ in rows] == ["test_accuracy", "test_balanced_accuracy", "test_blended_accuracy"]
    for name, difference, low, high in rows:
        assert float(low) <= float(difference) <= float(high)
        state = "ahead" if float(low) > 0 else "behind" if float(high) < 0 else "not told apart"
        assert f"{name[5:].replace('_', ' ')} {float(difference):+.4f} ({low} to {high}), {state}" in markdown
    # 5 completed and 1 pruned trial have a value (the pruned one its best report); the failed one has none.
    assert "drawn like the 6 so far, from completed and pruned trials" in markdown and "(budget.png)" in markdown

    study = stored(mixed_study)
    # The per-class table is the served model's, with the best trial's recall beside it: each column's mean is
    # that model's balanced accuracy on the test split.
    served, best = record.read_served(study), record.best_trial(study)
    assert f"The served model ({served.description}) on the test split" in markdown
    header, *rows = markdown.split("**Per class (test split)**\n\n")[1].split("\n\n")[0].splitlines()
    columns = [c.strip() for c in header.strip("|").split("|")]
    recall = pd.DataFrame([[float(c) for c in row.strip("|").split("|")[1:]] for row in rows[1:]], columns=columns[1:])
    assert recall["recall (accuracy)"].mean() == pytest.approx(served.results["test_balanced_accuracy"], abs=1e-3)
    alone = recall[f"recall of trial #{best.number} alone"]
    assert alone.mean() == pytest.approx(record.read(best).results["test_balanced_accuracy"], abs=1e-3)
    note = optuna_dashboard.get_note(study)
    assert note.startswith("## Summary") and "index.html" in note
    client = MlflowClient(f"sqlite:///{mixed_study / 'mlflow.db'}")
    logged = {a.path for a in client.list_artifacts(study.user_attrs["mlflow_parent_run_id"], "report")}
    assert {"report/index.html", "report/report.md", "report/pareto.png"} <= logged
    assert "logged under report/" in out


def test_a_study_too_small_for_importances_still_gets_a_report(env, spec_file):
    code, _, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "1", "--no-mlflow")
    assert code == 0, err
    code, out, err = hpsearch("report", "--study", str(spec_file), "--no-mlflow")
    assert code == 0, err
    markdown = (env / "reports" / "tiny" / "report.md").read_text()
    assert "PED-ANOVA (Optuna's default), val_accuracy: not computed from 1 completed trial: it needs at least 5" \
        in markdown
    assert "Fewer than two completed trials: no front to draw." in markdown
    assert "Not searched" in markdown or "no other level has a completed trial" in markdown


def test_report_on_an_unknown_study_is_one_line(env, spec_file):
    code, _, err = hpsearch("report", "--study", str(spec_file))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no study storage at" in err


def test_multi_objective_study_runs_without_pruning_and_reports_its_front(env, spec_file):
    two = 'metric = ["val_accuracy", "n_params"]'
    spec_file.write_text(spec_file.read_text().replace('metric = "val_accuracy"\ndirection = "maximize"', two)
                         .replace('type = "median"\nn_startup_trials = 2\nn_warmup_steps = 1', 'type = "none"'))
    code, out, err = hpsearch("run", "--study", str(spec_file), "--n-trials", "4")
    assert code == 0, err
    study = stored(env)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert all(t.state == TrialState.COMPLETE and len(t.values) == 2 for t in study.trials)
    assert all(t.values[1] == t.user_attrs["n_params"] for t in study.trials)
    assert all(not t.intermediate_values for t in study.trials)  # nothing reported, nothing pruned
    assert out.startswith("best trial of 'tiny': #")

    code, _, err = hpsearch("report", "--study", str(spec_file))
    assert code == 0, err
    folder = env / "reports" / "tiny"
    markdown = (folder / "report.md").read_text()
    assert "A multi-objective study (val_accuracy and n_params): Optuna cannot prune these" in markdown
    assert "**Pareto-optimal trials**" in markdown
    assert (folder / "pareto_objectives.png").stat().st_size > 5_000


def test_multi_objective_specs_are_checked(tmp_path):
    path = tmp_path / "two.toml"
    path.write_text('task = "surnames"\nmetric = ["val_accuracy", "test_accuracy"]\n[pruner]\ntype = "median"\n')
    with pytest.raises(SpecError) as error:
        load_spec(str(path), TASKS)
    assert "metric: the second objective must be a cost (epoch_seconds, n_params), got 'test_accuracy'" \
        in str(error.value)
    assert "pruner: Optuna cannot prune a multi-objective study" in str(error.value)
    assert load_spec("surnames-pareto", TASKS).directions == ("maximize", "minimize")


# Appended to a copy of the page: once it has drawn, the page says how wide it is and which plots stayed empty.
MEASURE = """<script>window.addEventListener("load", () => setTimeout(() => {
  const plots = [...document.querySelectorAll(".plotly-graph-div")];
  const empty = plots.filter(div => !div.querySelector(".main-svg .trace, .main-svg .traces")).length;
  const images = [...document.images].filter(img => !img.complete || img.naturalWidth === 0).length;
  document.body.insertAdjacentHTML("beforeend", `<pre id="measured">${document.documentElement.scrollWidth} ` +
    `${window.innerWidth} ${plots.length} ${empty} ${images}</pre>`);
}, 500));</script>"""


def test_the_report_page_fits_the_window_and_every_figure_draws_in_a_browser(mixed_study, spec_file):
    code, _, err = hpsearch("report", "--study", str(spec_file), "--no-mlflow")
    assert code == 0, err
    folder = mixed_study / "reports" / "tiny"
    probe = folder / "measured.html"
    probe.write_text((folder / "index.html").read_text().replace("</body>", MEASURE + "</body>"))
    measured = re.search(r'<pre id="measured">(\d+) (\d+) (\d+) (\d+) (\d+)</pre>', servers.rendered(probe.as_uri()))
    assert measured
    width, window, plots, empty, broken = map(int, measured.groups())
    assert width <= window == 1400, f"the page is {width} px wide in a {window} px window"
    # Every interactive figure of the page (the Pareto front and one per comparison) has drawn its traces.
    assert plots == (folder / "index.html").read_text().count('class="plotly-graph-div"') >= 6
    assert empty == 0 and broken == 0, (plots, empty, broken)


def test_the_dashboard_names_the_metric_and_serves_checkpoints_as_binary(mixed_study, spec_file):
    port = servers.free_port()
    server = subprocess.Popen([sys.executable, "-m", "hpsearch", "dashboard", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert servers.answers(f"http://127.0.0.1:{port}/api/studies", server), "the dashboard did not start"
        study = stored(mixed_study)
        trial = study.best_trial
        artifact = trial.user_attrs["checkpoint_artifact"]
        url = f"http://127.0.0.1:{port}/artifacts/{study._study_id}/{trial._trial_id}/{artifact}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.headers["Content-Type"] == "application/octet-stream"
        page = servers.rendered(f"http://127.0.0.1:{port}/dashboard/studies/{study._study_id}")
        # The history plot's axis and its selector name the spec's metric, not "Objective 0".
        assert 'data-unformatted="val_accuracy"' in page and "Objective 0" not in page
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_learning_curves_tick_whole_epochs(mixed_study):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from hpsearch.report import figures

    figure = figures.learning_curves(stored(mixed_study), "val_accuracy")
    FigureCanvasAgg(figure.png).draw()  # ticks are chosen when the figure is drawn
    ticks = figure.png.axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_the_expected_best_of_n_trials_is_dodges_estimate():
    values = np.array([2.0, 3.0, 1.0])
    mean, spread = analysis.expected_best(values, True, np.array([1, 2, 200]))
    # Best of 2 draws from {1, 2, 3}: 1 with probability 1/9, 2 with 3/9, 3 with 5/9.
    assert mean == pytest.approx([2.0, 22 / 9, 3.0]) and spread[0] == pytest.approx(np.std(values))
    assert spread[2] == pytest.approx(0, abs=1e-12)
    lowest, _ = analysis.expected_best(values, False, np.array([2]))  # minimised: the mirror image
    assert lowest == pytest.approx([4 - 22 / 9])
    rng = np.random.default_rng(0)
    draws = rng.choice(values, size=(100_000, 5)).max(1)
    assert analysis.expected_best(values, True, np.array([5]))[0][0] == pytest.approx(draws.mean(), abs=0.01)
