"""Where datasets live on disk, and fetching an archive into that place safely."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from hpsearch.errors import DataError


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else ``HPSEARCH_DATA``, else a per-user cache folder (like torchvision's ``root``)."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("HPSEARCH_DATA"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "hpsearch"


def _checked(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or ":" in name:
        raise DataError(f"refusing to extract {name!r}: the archive names a path outside its folder")
    return path


def safe_members(archive: zipfile.ZipFile, prefix: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The archive's files under ``prefix``, with their paths relative to it; refuses escaping paths."""
    members = []
    for info in archive.infolist():
        path = _checked(info.filename)
        if not info.is_dir() and path.is_relative_to(prefix):
            members.append((info, path.relative_to(prefix)))
    return members


def safe_tar_members(archive: tarfile.TarFile, prefix: str,
                     wanted: Callable[[PurePosixPath], bool]) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    """The regular files under ``prefix`` that ``wanted`` keeps, with their paths relative to it. Refuses
    escaping paths anywhere in the archive, and links or devices among the files it would extract."""
    members = []
    for info in archive.getmembers():
        path = _checked(info.name)
        if info.isdir() or not path.is_relative_to(prefix) or not wanted(path.relative_to(prefix)):
            continue
        if not info.isfile():
            raise DataError(f"refusing to extract {info.name!r}: a link or device where a file is expected")
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


def file_digest(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def download(url: str, path: Path) -> None:
    """``url``'s bytes into ``path``, with a progress bar on stderr when it is a terminal."""
    with urllib.request.urlopen(url, timeout=60) as response, path.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {url.rsplit('/', 1)[-1]}",
                  disable=None, leave=False) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


@contextmanager
def staged(destination: Path) -> Iterator[Path]:
    """A path to write ``destination``'s content at, in a scratch folder beside it (the same file system), renamed
    to ``destination`` when the block ends without an error: a reader finds it whole or absent, never partial.
    The scratch folder, and whatever else the block put in it, is removed either way."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as tmp:
        staging = Path(tmp) / destination.name
        yield staging
        staging.rename(destination)


def fetch_zip_folder(url: str, prefix: str, destination: Path, hint: str, sha256: str) -> None:
    """Download a zip and extract the files under ``prefix`` into ``destination``.

    Extracts into a temporary folder next to ``destination`` and renames it into place only when the
    extracted files match ``sha256`` (their folder_digest), so a failed, interrupted or tampered download
    never leaves anything behind.
    """
    try:
        with staged(destination) as staging:
            archive_path = staging.with_name("download.zip")
            download(url, archive_path)
            with zipfile.ZipFile(archive_path) as archive:
                for info, relative in safe_members(archive, prefix):
                    _write(archive.open(info), staging / relative)
            if not staging.is_dir():
                raise DataError(f"{url} holds no files under {prefix}/; {hint}")
            if (found := folder_digest(staging)) != sha256:
                raise DataError(f"the files downloaded from {url} do not match the pinned SHA-256 "
                                f"(got {found[:12]}..., expected {sha256[:12]}...); {hint}")
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"could not download {url} ({exc}); {hint}") from None


def fetch_file(url: str, destination: Path, hint: str, sha256: str) -> None:
    """Download ``url`` to ``destination``, which appears only once its bytes match ``sha256``."""
    try:
        with staged(destination) as partial:
            download(url, partial)
            if (found := file_digest(partial)) != sha256:
                raise DataError(f"the file downloaded from {url} does not match the pinned SHA-256 "
                                f"(got {found[:12]}..., expected {sha256[:12]}...); {hint}")
    except OSError as exc:
        raise DataError(f"could not download {url} ({exc}); {hint}") from None


def extract_tar_folder(archive_path: Path, prefix: str, destination: Path, wanted: Callable[[PurePosixPath], bool],
                       hint: str) -> None:
    """Extract the files under ``prefix`` that ``wanted`` keeps into ``destination``, which appears only once
    every one of them is written."""
    try:
        with staged(destination) as staging, tarfile.open(archive_path) as archive:
            for info, relative in safe_tar_members(archive, prefix, wanted):
                _write(archive.extractfile(info), staging / relative)
            if not staging.is_dir():
                raise DataError(f"{archive_path} holds no files under {prefix}/; {hint}")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DataError(f"could not extract {archive_path} ({exc}); {hint}") from None


def _write(source, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with source, target.open("wb") as out:
        shutil.copyfileobj(source, out)
