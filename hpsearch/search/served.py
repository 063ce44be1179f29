"""The model a classification study serves, assembled after a search from its stored trials and the n-gram models
fitted beside them (training/assembly.py): kept in the study's artifact store, recorded on the study
(``record.ServedModel``), and logged to MLflow as the study's best model. ``predict`` and ``hpsearch best`` use
it and say what it is.

A study whose ``serve_metric`` is not made of the classification scores (a loss), or that has several objectives,
serves its best trial, as every other task does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpsearch.mlflow import ARTIFACTS, StudyTracking, check_reachable, tracking_uri
from hpsearch.search.artifacts import Checkpoints, location
from hpsearch.search.tracking import PARENT_ATTR
from hpsearch.studies import StudySpec, record
from hpsearch.training import TASKS, checkpoint
from hpsearch.training.assembly import CANDIDATES, assemble, member_label
from hpsearch.training.classification import SCORES, SequenceClassification
from hpsearch.training.loop import resolve_device

if TYPE_CHECKING:
    from hpsearch.search.study import SearchOptions


def serves_ensemble(spec: StudySpec) -> bool:
    return (isinstance(TASKS[spec.task], SequenceClassification) and not spec.multi_objective
            and spec.serve_metric.keys() <= {f"val_{score}" for score in SCORES})


def answers_for(spec: StudySpec) -> dict[str, float]:
    """The scores the served model answers for, with their weights, as ``assembly.gains`` takes them."""
    return {name.removeprefix("val_"): weight for name, weight in spec.serve_metric.items()}


def assemble_served(study: optuna.Study, spec: StudySpec, options: SearchOptions) -> record.ServedModel | None:
    """Assemble the study's served model, or keep it when no trial completed since and the spec still asks for
    what it answers for; None where the study serves its best trial."""
    if not serves_ensemble(spec):
        return None
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    served, content = record.read_served(study), None
    if completed and (served is None or served.completed != len(completed)
                      or served.serve_metric != spec.serve_metric):
        served, content = _assemble(study, spec, options, completed)
    # A study searched without MLflow has no parent run to hold the model.
    if served and options.mlflow and PARENT_ATTR in study.user_attrs and (content or options.register_model):
        _publish(study, spec, options, served, content)
    return served


def _assemble(study: optuna.Study, spec: StudySpec, options: SearchOptions,
              completed: list[FrozenTrial]) -> tuple[record.ServedModel, bytes]:
    task = TASKS[spec.task]
    ranked = sorted(completed, key=lambda t: t.value, reverse=spec.direction == "maximize")[:CANDIDATES]
    checkpoints = Checkpoints(location(options.artifacts, options.workdir), options.workdir)
    trained = {t.number: checkpoints.load(t) for t in ranked}
    data, device = task.load(options.data_dir, spec.data), resolve_device(options.device)
    metric = answers_for(spec)
    fitted = {name: model.to(device) for name, model in task.fitted_members(data).items()}
    assembled = assemble(data, [(n, t.model.to(device)) for n, t in trained.items()], fitted, metric)
    content = checkpoint.ensemble_to_bytes(task, task.describe(data), assembled.model,
                                           [trained[n].hyperparams if isinstance(n, int) else None
                                            for n in assembled.members])
    served = record.ServedModel(description=assembled.describe(metric),
                                members=list(assembled.members), results=assembled.results,
                                completed=len(completed), artifact=checkpoints.save_served(study, content),
                                serve_metric=dict(spec.serve_metric))
    record.write_served(study, served)
    return served, content


def _publish(study: optuna.Study, spec: StudySpec, options: SearchOptions, served: record.ServedModel,
             content: bytes | None) -> None:
    """A newly assembled model becomes the parent run's best model; registered when --register-model asks."""
    uri = tracking_uri(options.tracking_uri, options.workdir)
    check_reachable(uri)
    tracking = StudyTracking.open(uri, study.study_name, artifact_root=options.workdir / ARTIFACTS,
                                  parent_run_id=study.user_attrs.get(PARENT_ATTR), params={})
    if content:
        members = ", ".join(map(member_label, served.members))
        value = sum(weight * served.results[name] for name, weight in spec.serve_metric.items())
        tracking.log_best_model(content, {"trial": members, "model": served.description, "value": value,
                                          **served.results})
    if options.register_model:
        tracking.register_best(options.register_model)
    tracking.close()
