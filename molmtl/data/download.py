"""Downloading files with SHA-256 verification (QM9's canonical archive and others)."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path


class DownloadError(RuntimeError):
    """A download failed or its checksum did not match."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch.

    Attributes:
        url: where it is.
        filename: name to store it under.
        sha256: expected SHA-256 (hex), or None when not pinned (the computed one is reported).
        extract: unzip it into the destination after verification.
    """

    url: str
    filename: str
    sha256: str | None = None
    extract: bool = False


def download_file(remote: RemoteFile, directory: Path, *, timeout: float = 60.0) -> str:
    """Fetch ``remote`` into ``directory``, verify its checksum, and return the SHA-256 found.

    The bytes go to ``<filename>.partial`` first and are renamed only after verification, so
    a failed or corrupted download never looks like a complete file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / remote.filename
    partial = directory / f"{remote.filename}.partial"
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(remote.url, timeout=timeout) as response,
            open(partial, "wb") as out,
        ):
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"could not download {remote.url}: {error}") from None
    found = digest.hexdigest()
    if remote.sha256 is not None and found != remote.sha256:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for {remote.url}: expected SHA-256 {remote.sha256}, got {found}; "
            "the file is corrupted or not the expected one, and was deleted"
        )
    if remote.sha256 is None:
        warnings.warn(
            f"no pinned checksum for {remote.url}: downloaded SHA-256 {found} (verify and pin it)",
            stacklevel=2,
        )
    partial.replace(target)
    if remote.extract:
        with zipfile.ZipFile(target) as archive:
            archive.extractall(directory)
    return found


def download_all(
    remotes: tuple[RemoteFile, ...], directory: Path, *, timeout: float = 60.0
) -> dict[str, str]:
    """Download every file; returns ``{filename: sha256}``."""
    return {
        remote.filename: download_file(remote, directory, timeout=timeout) for remote in remotes
    }
