"""Study specs (built-in TOML files and the loader that validates them) and the record of what a trial produced."""

from hpsearch.studies.spec import Hyperparams, StudySpec, builtin_names, load_spec

__all__ = ["Hyperparams", "StudySpec", "builtin_names", "load_spec"]
