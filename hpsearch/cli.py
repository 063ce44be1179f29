"""The `hpsearch` command: parse, call one library function, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hpsearch.errors import HpsearchError, Interrupted
from hpsearch.search.storage import DEFAULT_WORKDIR, storage_url, workdir_path
from hpsearch.urls import check_free, mask

# Each command imports the library it calls when it runs: torch, mlflow, optuna-dashboard and the report's
# plotting take seconds to import, and `--help`, `best` and `studies` need none of them.


class _UserError(click.ClickException):
    exit_code = 2


class _Group(click.Group):
    """Turns the errors a user can cause into one line and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HpsearchError as exc:
            raise _UserError(str(exc)) from None
        except Interrupted as exc:
            click.echo(str(exc), err=True)
            ctx.exit(130)


def _where(command):
    command = click.option("--storage", metavar="URL",
                           help="SQLAlchemy URL of the Optuna storage [env HPSEARCH_STORAGE; "
                                "default: sqlite:///WORKDIR/optuna.db]")(command)
    return click.option("--workdir", type=click.Path(file_okay=False),
                        help="working folder for databases and checkpoints [env HPSEARCH_WORKDIR; "
                             f"default: ./{DEFAULT_WORKDIR}]")(command)


def _artifacts(command):
    return click.option("--artifacts", metavar="FOLDER|s3://BUCKET",
                        help="artifact store of the trials' checkpoints, shared by every host of a study "
                             "[env HPSEARCH_ARTIFACTS; default: WORKDIR/artifacts]")(command)


def _training(command):
    """The options of every command that trains trials: where, on what, with how many workers, logged where."""
    for option in reversed((
            click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
            click.option("--data-dir", type=click.Path(file_okay=False),
                         help="data root holding one folder per dataset, e.g. names/ [env HPSEARCH_DATA; "
                              "default: ~/.cache/hpsearch]"),
            click.option("--tracking-uri", metavar="URI", help="MLflow tracking store or server [env "
                         "MLFLOW_TRACKING_URI; default: sqlite:///WORKDIR/mlflow.db]"),
            click.option("--no-mlflow", is_flag=True, help="do not log to MLflow"),
            click.option("--n-jobs", type=click.IntRange(min=1), default=1, show_default=True,
                         help="worker processes on this host, sharing the study"),
            click.option("--threads", type=click.IntRange(min=1),
                         help="torch threads per worker [default: cores / n-jobs with several workers, else "
                              "torch's]"),
            click.option("--quiet", is_flag=True, help="no progress lines"),
            _artifacts, _where)):
        command = option(command)
    return command


def _checkpoints(artifacts: str | None, workdir_path: Path, create: bool = True):
    from hpsearch.search.artifacts import Checkpoints, location

    return Checkpoints(location(artifacts, workdir_path), workdir_path, create)


def _locate(workdir: str | None, storage_option: str | None):
    path = workdir_path(workdir)
    return path, storage_url(storage_option, path)


@click.group(cls=_Group)
@click.version_option(package_name="hpsearch")
def main() -> None:
    """Hyperparameter search for recurrent networks, on Optuna.

    \b
    hpsearch run --study surnames          search; resumes if the study exists
    hpsearch best --study surnames         the best trial found so far
    hpsearch report --study surnames       importance, Pareto and comparison plots
    hpsearch ablate --study surnames --factor cell     one factor at a time, paired seeds
    hpsearch sample --study makenames --language Irish  new surnames from the best model
    hpsearch studies                       built-in specs and stored studies
    """


@main.command()
@click.option("--study", "study_ref", required=True, metavar="NAME|FILE.toml",
              help="a built-in study name or the path of a study spec")
@click.option("--n-trials", type=click.IntRange(min=1),
              help="total finished (complete + pruned) trials the study should hold; default from the spec")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="stop starting new trials after this long (this invocation only)")
@click.option("--epochs", type=click.IntRange(min=1), help="max epochs per trial, overriding the spec")
@click.option("--register-model", metavar="NAME", help="also register the best model in the MLflow Model Registry")
@click.option("--no-stop", is_flag=True, help="run the whole budget, ignoring the spec's [stop] rule")
@_training
def run(study_ref, n_trials, timeout, epochs, register_model, no_stop, device, data_dir, tracking_uri, no_mlflow,
        n_jobs, threads, quiet, artifacts, workdir, storage):
    """Search a study's space; running it again resumes the same study.

    \b
    Example:
      hpsearch run --study surnames --n-trials 40 --n-jobs 2
      hpsearch run --study ./my-study.toml --epochs 2 --n-trials 5
    The same command on other hosts (shared --storage and --tracking-uri) adds workers to the same study.
    Ctrl-C or SIGTERM stops cleanly: running trials are marked failed, finished trials stay.
    A spec with two objectives (metric = ["val_accuracy", "epoch_seconds"]) runs a multi-objective study;
    Optuna cannot prune those, so every trial trains all its epochs (see the surnames-pareto study).
    A spec's [stop] table (trials = 15, min_delta = 0.002) ends the study early once the best value has
    improved by no more than min_delta over the last 15 finished trials, on every worker.
    Every trial is an MLflow run under the study's parent run; see them with `hpsearch ui`.
    A classification study then assembles the model it serves from its best trials and its n-gram models
    (`hpsearch best` says which; `predict` and the MLflow best model use it).
    """
    from hpsearch.search import lookup, results, served, study, workers
    from hpsearch.search.progress import Progress

    spec = lookup.load(study_ref)
    workdir_path, url = _locate(workdir, storage)
    options = study.SearchOptions(storage_url=url, workdir=workdir_path, data_dir=data_dir, n_trials=n_trials,
                                  timeout=timeout, epochs=epochs, device=device, tracking_uri=tracking_uri,
                                  mlflow=not no_mlflow, register_model=register_model, threads=threads,
                                  artifacts=artifacts, stop_rule=not no_stop)
    workers.handle_stop_signals()
    if n_jobs > 1:
        workers.run_workers(spec, options, n_jobs, quiet)
        found = lookup.require_study(spec.name, url)
    else:
        found = study.run_search(spec, options, Progress(quiet, epochs or spec.max_epochs))
    if served.serves_ensemble(spec):
        if not quiet:
            click.echo("assembling the model the study serves (its best trials and n-gram models) ...", err=True)
        try:
            served.assemble_served(found, spec, options)
        except HpsearchError as exc:  # the search itself went well: keep its exit status, say what is missing
            click.echo(f"the served model was not assembled: {exc}", err=True)
    try:
        click.echo(results.format_summary(results.best_summary(found)))
    except HpsearchError as exc:
        click.echo(str(exc))


@main.command()
@click.option("--study", "study_ref", required=True, metavar="NAME|FILE.toml",
              help="the study whose trial to vary (a built-in name or a spec's path)")
@click.option("--factor", "factors", multiple=True, required=True, metavar="PARAM[=V1,V2,...]",
              help="a parameter to vary, all else fixed; repeat for several. Levels default to the spec's choices, "
                   "layers 1-4 (a short range), lr x 0.1, 0.3, 1, 3, 10 (a log range), widths x 1/4 ... 4")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="seeds per level, the same for every level")
@click.option("--base", default="best", show_default=True, metavar="best|N", help="the trial whose configuration "
              "is varied")
@click.option("--epochs", type=click.IntRange(min=1), help="epochs per trial [default: the base trial's]")
@click.option("--metric", metavar="NAME", help="what levels are ranked by, e.g. test_balanced_accuracy or "
              "steps_to_exact [default: the study's objective]")
@click.option("--name", metavar="NAME", help="the ablation's study [default: STUDY:ablation]")
@_training
def ablate(study_ref, factors, repeats, base, epochs, metric, name, device, data_dir, tracking_uri, no_mlflow,
           n_jobs, threads, quiet, artifacts, workdir, storage):
    """Vary one parameter at a time around a trial, each level with the same seeds, without pruning.

    \b
    Example:
      hpsearch ablate --study surnames --factor cell --factor bidirectional --factor optimizer \\
                      --factor batch_size=8,32,128 --repeats 3
    The trials form a study of their own (STUDY:ablation), so they do not bias the parent's sampler or its
    importances. Running the command again resumes it, and adds what a larger design asks for; several
    workers or hosts share its queue. `hpsearch report --study STUDY` shows it as a section; its trials are
    MLflow runs under the ablation study's parent run.
    """
    from hpsearch.report.ablation import analyse
    from hpsearch.search import ablation, lookup, study, workers
    from hpsearch.search.progress import Progress

    spec = lookup.load(study_ref)
    workdir_path, url = _locate(workdir, storage)
    plan = ablation.plan(lookup.require_study(spec.name, url), spec, factors, repeats=repeats, base=base,
                         epochs=epochs, metric=metric, name=name)
    options = study.SearchOptions(storage_url=url, workdir=workdir_path, data_dir=data_dir,
                                  epochs=plan.design.max_epochs, device=device, tracking_uri=tracking_uri,
                                  mlflow=not no_mlflow, threads=threads, artifacts=artifacts)
    workers.handle_stop_signals()
    if n_jobs > 1:
        workers.run_workers(plan.spec, options, n_jobs, quiet, plan)
    else:
        study.run_search(plan.spec, options, Progress(quiet, plan.design.max_epochs), plan)
    for factor in analyse(lookup.require_study(plan.name, url)):
        click.echo(f"\n{factor.text()}")


@main.command()
@click.option("--study", "study_ref", required=True, metavar="NAME|FILE.toml")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_where
def best(study_ref, as_json, workdir, storage):
    """The best completed trial: params, its validation and test metrics, epochs and costs.

    \b
    Example:
      hpsearch best --study surnames --json
    """
    from hpsearch.search import lookup, results

    summary = results.best_summary(lookup.require_study(lookup.study_name(study_ref), _locate(workdir, storage)[1]))
    click.echo(json.dumps(summary, indent=2) if as_json else results.format_summary(summary))


@main.command()
@click.option("--study", "study_ref", required=True, metavar="NAME|FILE.toml")
@click.option("--out", type=click.Path(file_okay=False), help="report folder [default: WORKDIR/reports/STUDY]")
@click.option("--data-dir", type=click.Path(file_okay=False), help="data root, for the per-class results "
              "[env HPSEARCH_DATA]")
@click.option("--tracking-uri", metavar="URI", help="[env MLFLOW_TRACKING_URI; default: sqlite:///WORKDIR/mlflow.db]")
@click.option("--no-mlflow", is_flag=True, help="do not log the report on the study's MLflow parent run")
@_artifacts
@_where
def report(study_ref, out, data_dir, tracking_uri, no_mlflow, artifacts, workdir, storage):
    """Importance, Pareto, comparison and per-class results of a study, and its ablations, as HTML, Markdown
    and PNG.

    \b
    Example:
      hpsearch report --study surnames
    Reads the stored trials without locking them, so it works while workers are still running. The summary
    also becomes the study's note in optuna-dashboard, and the folder is logged on its MLflow parent run.
    """
    from hpsearch.mlflow import tracking_uri as mlflow_tracking_uri
    from hpsearch.report.publish import make_report
    from hpsearch.search import lookup

    spec = lookup.load(study_ref)
    workdir_path, url = _locate(workdir, storage)
    folder = Path(out) if out else workdir_path / "reports" / spec.name
    study = lookup.require_study(spec.name, url)
    done = make_report(study, spec, folder, checkpoints=_checkpoints(artifacts, workdir_path), data_dir=data_dir,
                       tracking_uri=None if no_mlflow else mlflow_tracking_uri(tracking_uri, workdir_path),
                       ablations=lookup.ablations(spec.name, url), judge=lookup.classifier_of(study, url))
    click.echo(f"report: {folder / 'index.html'} ({len(done.files)} files; also report.md)")
    click.echo(f"optuna-dashboard: summary note, {done.dashboard_figures} figures and {done.new_artifacts} new "
               f"artifacts on study '{spec.name}' (hpsearch dashboard)")
    if not no_mlflow:
        click.echo(f"MLflow: logged under report/ on parent run {done.mlflow_run_id}" if done.mlflow_run_id
                   else "MLflow: the study has no parent run (it ran with --no-mlflow); nothing logged")


@main.command()
@click.option("--study", "study_ref", required=True, metavar="NAME|FILE.toml")
@click.option("--trial", "number", type=click.IntRange(min=0), required=True, help="the trial number to retrain")
@click.option("--epochs", type=click.IntRange(min=1), help="default: the epochs the trial was given")
@click.option("--seed", type=int, help="first seed [default: the trial's own, which reproduces it]")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="retrain with this many seeds (seed, seed+1, ...) and report mean and standard deviation")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), help="data root [env HPSEARCH_DATA]")
@click.option("--tracking-uri", metavar="URI", help="[env MLFLOW_TRACKING_URI; default: sqlite:///WORKDIR/mlflow.db]")
@click.option("--no-mlflow", is_flag=True, help="do not log to MLflow")
@click.option("--quiet", is_flag=True, help="no progress lines")
@_where
def train(study_ref, number, epochs, seed, seeds, device, data_dir, tracking_uri, no_mlflow, quiet, workdir,
          storage):
    """Retrain one trial's configuration outside the search: all epochs, no pruning, one MLflow run per seed.

    \b
    Example:
      hpsearch train --study surnames --trial 25 --seeds 5
    """
    from hpsearch.mlflow import tracking_uri as mlflow_tracking_uri
    from hpsearch.retrain import Retraining, retrain
    from hpsearch.search import lookup
    from hpsearch.search.progress import Progress

    spec = lookup.load(study_ref)
    workdir_path, url = _locate(workdir, storage)
    how = Retraining(workdir_path, data_dir, epochs, device,
                     None if no_mlflow else mlflow_tracking_uri(tracking_uri, workdir_path))
    table = retrain(lookup.require_study(spec.name, url), spec, number, seed, seeds, how,
                    Progress(quiet, epochs or spec.max_epochs))
    click.echo(table.to_string(float_format=lambda v: f"{v:.4f}"))
    if len(table) > 1:
        summary = table.drop(columns="mlflow_run_id").agg(["mean", "std"])
        click.echo(f"\nover {len(table)} seeds:\n" + summary.to_string(float_format=lambda v: f"{v:.4f}"))


@main.command()
@click.option("--study", "study_ref", required=True, metavar="NAME|FILE.toml")
@click.argument("inputs", nargs=-1)
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="for a classifier: how many classes to show")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_artifacts
@_where
def predict(study_ref, inputs, top_k, as_json, artifacts, workdir, storage):
    """What the study's model answers for raw input, as its task reads it; with no arguments, one input per line
    of stdin. The model is the one `hpsearch run` assembled for a classification study (its best trials and its
    n-gram models: `hpsearch best` says which), else the best trial's.

    \b
    Example:
      hpsearch predict --study surnames Nakamura Schmidt --top-k 3
      printf 'Nakamura\\nSchmidt\\n' | hpsearch predict --study surnames --json
      hpsearch predict --study addition 123456789 987654321
    """
    from hpsearch.search import lookup
    from hpsearch.studies import record

    workdir_path, url = _locate(workdir, storage)
    found = lookup.require_study(lookup.study_name(study_ref), url)
    checkpoints = _checkpoints(artifacts, workdir_path, create=False)
    if trained := checkpoints.served(found):
        served = record.read_served(found)
        source = {"model": served.description}
        if len(served.members) == 1 and isinstance(served.members[0], int):  # one trial's model, served or not
            source["trial"] = served.members[0]
    else:
        trial = record.best_trial(found)
        trained, source = checkpoints.load(trial), {"model": f"trial #{trial.number}", "trial": trial.number}
    lines = () if inputs else tuple(line.strip() for line in sys.stdin if line.strip())
    rows = [{**row, **source} for row in trained.predict(inputs, lines, top_k)]
    click.echo(f"model: {source['model']}", err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        click.echo(trained.task.show(row))


@main.command()
@click.option("--study", "study_ref", required=True, metavar="NAME|FILE.toml",
              help="a study whose task writes text, such as makenames")
@click.option("--language", required=True, help="what to write like, e.g. Russian")
@click.option("-n", "count", type=click.IntRange(min=1), default=10, show_default=True, help="how many")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="below 1: safer, more common spellings; above 1: bolder ones")
@click.option("--start", default="", help="the first characters of every name")
@click.option("--seed", type=int, help="the same seed writes the same names [default: a new one each time]")
@click.option("--classifier", metavar="STUDY", help="a classifying study that checks which language each name reads "
              "as [default: a stored one trained on the same data, such as surnames]")
@_artifacts
@_where
def sample(study_ref, language, count, temperature, start, seed, classifier, artifacts, workdir, storage):
    """New names from the best trial's model, and how many of them are new and read as the language asked for.

    \b
    Example:
      hpsearch sample --study makenames --language Russian -n 10 --temperature 0.8
      hpsearch sample --study makenames --language Irish --start "O'" --seed 1
    """
    from hpsearch.sampling import BestModel, write
    from hpsearch.search import lookup

    workdir_path, url = _locate(workdir, storage)
    study = lookup.require_study(lookup.study_name(study_ref), url)
    judge = lookup.require_study(classifier, url) if classifier else lookup.classifier_of(study, url)
    models = _checkpoints(artifacts, workdir_path, create=False)
    writer = BestModel.of(study, models)
    reader = BestModel.of(judge, models) if judge else None
    samples = write(writer, language, count, temperature=temperature, start=start, seed=seed, reader=reader)
    for text in samples.texts:
        click.echo(text)
    checked = f"; {reader.name} reads {samples.agreed} as {language}" if reader else \
        " (no classifier of the same data is stored to check the language; --classifier names one)"
    click.echo(f"trial {writer.trial}, seed {samples.seed}: {samples.novel} of {len(samples.texts)} are not "
               f"training names{checked}", err=True)


@main.command()
@click.option("--study", "study_ref", metavar="NAME|FILE.toml", help="print this study's page [default: all]")
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind; 0.0.0.0 exposes it")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@_artifacts
@_where
def dashboard(study_ref, host, port, artifacts, workdir, storage):
    """optuna-dashboard on the study storage, with report figures as study artifacts and each completed
    trial's checkpoint as an artifact of its trial."""
    from hpsearch.search import dashboard as dashboard_server
    from hpsearch.search import lookup

    workdir_path, url = _locate(workdir, storage)
    check_free(host, port)
    store = _checkpoints(artifacts, workdir_path).store
    ids = dashboard_server.prepare(url, workdir_path, store, lookup.study_name(study_ref) if study_ref else None)
    pages = [f"http://{host}:{port}/dashboard/studies/{number}" for number in ids.values()] or \
        [f"http://{host}:{port}/dashboard"]
    click.echo(f"optuna-dashboard for {mask(url)} at {' '.join(pages)} (Ctrl-C stops it)", err=True)
    dashboard_server.serve(url, store, host, port)


@main.command()
@_where
def studies(workdir, storage):
    """Built-in study specs, and the studies stored with their trial counts and best value."""
    import pandas as pd

    from hpsearch.search import results
    from hpsearch.studies.spec import builtin_names, outline

    click.echo("built-in studies:")
    click.echo(pd.DataFrame([outline(name) for name in builtin_names()]).to_string(index=False))
    url = _locate(workdir, storage)[1]
    try:
        rows = results.stored_studies(url)
    except HpsearchError as exc:
        rows, note = [], str(exc)
    else:
        note = f"no studies stored in {mask(url)} yet"
    click.echo(f"\nstored in {mask(url)}:")
    click.echo(pd.DataFrame(rows).to_string(index=False, na_rep="-") if rows else note)


@main.command()
@click.option("--tracking-uri", metavar="URI", help="[env MLFLOW_TRACKING_URI; default: sqlite:///WORKDIR/mlflow.db]")
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind; 0.0.0.0 exposes it")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False), help="working folder [env HPSEARCH_WORKDIR]")
def ui(tracking_uri, host, port, workdir):
    """The MLflow UI on the studies' tracking store: one experiment per study, one run per trial."""
    from hpsearch.mlflow import check_reachable, study_experiments
    from hpsearch.mlflow import tracking_uri as mlflow_tracking_uri
    from hpsearch.mlflow.ui import experiments_page, serve

    uri = mlflow_tracking_uri(tracking_uri, workdir_path(workdir))
    check_free(host, port)
    check_reachable(uri)  # also points a moved work folder's store at its own artifacts
    click.echo(f"MLflow UI for {mask(uri)} at http://{host}:{port}/{experiments_page()} (Ctrl-C stops it)", err=True)
    for name, experiment_id in study_experiments(uri).items():
        click.echo(f"  study '{name}': http://{host}:{port}/{experiments_page(experiment_id)}", err=True)
    raise SystemExit(serve(uri, host, port))
