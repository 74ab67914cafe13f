"""Remote addresses as scan inputs: each is pinned to one version, downloaded within a byte budget into a
private directory, and its files named by the pinned address (`hf://org/name@<sha>/path/in/repo`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from modelshield.connectors import (
    ConnectorSettings,
    DownloadBudget,
    DownloadTooLarge,
    VersionRef,
    connector_for,
    is_remote_address,
)
from modelshield.connectors.base import GiB
from modelshield.connectors.staging import private_directory
from modelshield.engine.scanner import FileTarget, expand_paths

DEFAULT_MAX_DOWNLOAD_BYTES = 20 * GiB
DEFAULT_MAX_DOWNLOAD = "20GiB"



@dataclass(frozen=True)
class FetchedVersion:
    """One pinned version, downloaded: where its files are and how each is named in reports."""

    version: VersionRef
    root: Path
    targets: tuple[FileTarget, ...]

    @property
    def size(self) -> int:
        return sum(target.path.stat().st_size for target in self.targets if target.refusal is None)


def fetch_version(
    address: str, dest: Path, *, settings: ConnectorSettings | None = None, budget: DownloadBudget
) -> FetchedVersion:
    """Pin `address` to one exact version and download it into `dest` (absent or empty)."""
    connector = connector_for(address, settings)
    version = connector.resolve(address)
    root = connector.download(version, dest, budget)
    return FetchedVersion(version, root, tuple(pinned_targets(version, root)))


def pinned_targets(version: VersionRef, root: Path) -> Iterator[FileTarget]:
    """The downloaded files under `root`, each shown as `<pinned address>/<path in the version>`."""
    for target in expand_paths([root]):
        relative = target.path.relative_to(root).as_posix()
        yield FileTarget(target.path, f"{version.address}/{relative}", target.refusal)


@contextmanager
def scan_inputs(
    paths: Sequence[str | os.PathLike[str]],
    *,
    settings: ConnectorSettings | None = None,
    max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
) -> Iterator[list[FileTarget]]:
    """The files to scan for every input, in order: local paths walked as usual, remote addresses fetched
    into private directories that are removed when the block ends. `max_download_bytes` bounds all the
    downloads together."""
    targets: list[FileTarget] = []
    remaining = max_download_bytes
    with ExitStack() as stack:
        for raw in paths:
            address = os.fspath(raw)
            if not is_remote_address(address):
                targets.extend(expand_paths([raw]))
                continue
            if remaining <= 0:
                raise DownloadTooLarge(f"{address}: the downloads before it used the whole download budget")
            staging = stack.enter_context(private_directory(prefix="modelshield-fetch-"))
            fetched = fetch_version(
                address, staging / "files", settings=settings, budget=DownloadBudget(max_bytes=remaining)
            )
            remaining -= fetched.size
            targets.extend(fetched.targets)
        yield targets
