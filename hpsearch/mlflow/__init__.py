"""Everything that talks to MLflow. No other package imports mlflow."""

from hpsearch.mlflow.tracking import (
    ARTIFACTS,
    StudyTracking,
    check_reachable,
    log_folder,
    study_experiments,
    tracking_uri,
)

__all__ = ["ARTIFACTS", "StudyTracking", "check_reachable", "log_folder", "study_experiments", "tracking_uri"]
