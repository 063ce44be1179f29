"""Everything that talks to MLflow. No other package imports mlflow."""

from hpsearch.mlflow.tracking import StudyTracking, check_reachable, log_folder, tracking_uri

__all__ = ["StudyTracking", "check_reachable", "log_folder", "tracking_uri"]
