"""The Optuna side: creating and resuming studies, storage, the objective, budget, workers and progress."""
