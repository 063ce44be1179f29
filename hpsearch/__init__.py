"""hpsearch: hyperparameter search for recurrent networks, on Optuna and MLflow."""

__version__ = "0.1.0"
