"""Making the folders a user names (work folder, artifact store, report folder)."""

from __future__ import annotations

from pathlib import Path

from hpsearch.errors import StorageError


def ensure_folder(path: Path, setting: str) -> Path:
    """Create ``path`` (and its parents) if needed; a folder that cannot be made is the user's to fix."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{setting} {path}: cannot create this folder ({exc.strerror}); give a folder this user "
                           "can write") from None
    return path
