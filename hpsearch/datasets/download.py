"""Where datasets live on disk, and fetching an archive into that place safely."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from hpsearch.errors import DataError


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else ``HPSEARCH_DATA``, else a per-user cache folder (like torchvision's ``root``)."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("HPSEARCH_DATA"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hpsearch"


def safe_members(archive: zipfile.ZipFile, prefix: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The archive's files under ``prefix``, with their paths relative to it; refuses escaping paths."""
    members = []
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts or ":" in info.filename:
            raise DataError(f"refusing to extract {info.filename!r}: the archive names a path outside its folder")
        if not info.is_dir() and path.is_relative_to(prefix):
            members.append((info, path.relative_to(prefix)))
    return members


def folder_digest(folder: Path) -> str:
    """SHA-256 over a folder's files (relative names and bytes, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        content = path.read_bytes()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def fetch_zip_folder(url: str, prefix: str, destination: Path, hint: str, sha256: str) -> None:
    """Download a zip and extract the files under ``prefix`` into ``destination``.

    Extracts into a temporary folder next to ``destination`` and renames it into place only when the
    extracted files match ``sha256`` (their folder_digest), so a failed, interrupted or tampered download
    never leaves anything behind.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=destination.parent) as tmp:
            archive_path = Path(tmp) / "download.zip"
            with urllib.request.urlopen(url, timeout=60) as response, archive_path.open("wb") as out:
                shutil.copyfileobj(response, out)
            staging = Path(tmp) / "staging"
            with zipfile.ZipFile(archive_path) as archive:
                for info, relative in safe_members(archive, prefix):
                    target = staging / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
            if not staging.is_dir():
                raise DataError(f"{url} holds no files under {prefix}/; {hint}")
            if (found := folder_digest(staging)) != sha256:
                raise DataError(f"the files downloaded from {url} do not match the pinned SHA-256 "
                                f"(got {found[:12]}..., expected {sha256[:12]}...); {hint}")
            staging.rename(destination)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"could not download {url} ({exc}); {hint}") from None
