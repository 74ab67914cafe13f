"""The vocabulary every connector shares: where a model version lives, its files, and the download budget.

A connector (Hugging Face, MLflow, S3, a local folder) lists models and versions, pins an address to an
exact version, downloads that version's files into a directory the caller owns (never more than the
budget allows), and, where the registry supports it, writes the scan verdict back. Connectors use the
network; nothing in `engine`, `formats` or `analysis` imports them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from modelshield.errors import ModelShieldError

GiB = 1024 * 1024 * 1024


class SourceError(ModelShieldError):
    """A source could not be reached, listed or downloaded, or its address is invalid."""


class DownloadTooLarge(SourceError):
    """A download would cross its budget; nothing beyond the budget was written."""


@dataclass(frozen=True)
class DownloadBudget:
    """Bounds on one version's download: total bytes and number of files."""

    max_bytes: int = 50 * GiB
    max_files: int = 10_000

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_files <= 0:
            raise ValueError("download budget limits must be positive")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a model version as the registry describes it (before any download)."""

    path: str
    """POSIX path relative to the version's root; never absolute, never with `..` parts."""
    size: int | None = None
    sha256: str | None = None
    """Set when the registry itself records the content hash (e.g. Hugging Face LFS files)."""


@dataclass(frozen=True)
class VersionRef:
    """One exact, immutable version of one model in one source."""

    source: str
    """Canonical address of the source, e.g. `hf://`, `mlflow+http://127.0.0.1:5000`, `s3://bucket/models`,
    `file:///srv/models`: the key under which the inventory groups its models."""
    model: str
    """The model's name within the source: `org/name`, a registered model name, a key prefix, a folder."""
    version: str
    """The pinned version: a commit sha, an MLflow version number, a content digest of the file set."""
    address: str
    """An address that `modelshield scan` accepts and that names exactly this version."""
    origin: str = ""
    """Where the bytes come from, for a human: an artifact URI, a repo URL, a folder."""
    created_at: str | None = None
    """ISO 8601 UTC, when the registry records it."""
    labels: tuple[str, ...] = ()
    """Names the registry gives this version besides its id: a branch or tag, MLflow aliases."""


@runtime_checkable
class Connector(Protocol):
    """A registry of models. Implementations live in `connectors/<name>.py` and import their client
    library lazily, so the base install needs none of them."""

    scheme: str
    """The address scheme this connector answers, e.g. `hf`, `models`, `s3`, `file`."""

    @property
    def source(self) -> str:
        """Canonical address of the source this connector reads (see `VersionRef.source`)."""
        ...

    def list_models(self) -> Iterator[str]:
        """Every model name in the source, in a stable order."""
        ...

    def list_versions(self, model: str) -> Iterator[VersionRef]:
        """Every version of one model, oldest first."""
        ...

    def resolve(self, address: str) -> VersionRef:
        """Pin an address (`hf://org/name@main`, `models:/name@champion`, ...) to one exact version."""
        ...

    def list_files(self, version: VersionRef) -> list[RemoteFile]:
        """The files of one version, as the registry describes them."""
        ...

    def download(self, version: VersionRef, dest: Path, budget: DownloadBudget) -> Path:
        """Write the version's files under `dest` (which must be empty or absent) and return the root
        to scan. Raises DownloadTooLarge before writing past the budget, SourceError on failure. Paths
        from the registry that are absolute or climb out of `dest` are refused."""
        ...

    def write_verdict(self, version: VersionRef, tags: Mapping[str, str]) -> bool:
        """Record the scan's verdict in the registry (e.g. MLflow model-version tags). Returns False
        when the registry has nowhere to put it."""
        ...


def safe_relative_path(dest: Path, remote_path: str) -> Path:
    """`dest / remote_path`, refusing any registry path that is absolute or leaves `dest`."""
    parts = remote_path.replace("\\", "/").split("/")
    if not remote_path or remote_path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise SourceError(f"refusing a registry file path that could leave the download: {remote_path!r}")
    if ":" in parts[0]:
        raise SourceError(f"refusing a file path with a drive or scheme: {remote_path!r}")
    target = (dest / Path(*parts)).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise SourceError(f"refusing a file path that leaves the download: {remote_path!r}")
    return target
