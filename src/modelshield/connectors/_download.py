"""Writing a version's files under its download budget: declared sizes checked first, real bytes counted
while writing, and nothing written outside the destination or through a link."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from modelshield.connectors.base import (
    DownloadBudget,
    DownloadTooLarge,
    RemoteFile,
    SourceError,
    safe_relative_path,
)

# A new file only: an existing file or a planted link at the target makes the open fail.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
# Registry paths are checked for shape (relative, no `..`, no drive) before any destination exists.
_LISTING_ROOT = Path(os.sep) / "modelshield-listing"


def check_listed_path(path: str) -> str:
    """A registry path as listed, refused when it is absolute or climbs out of the version."""
    safe_relative_path(_LISTING_ROOT, path)
    return path


def empty_destination(dest: Path) -> Path:
    """Create `dest` if absent; refuse one that already holds anything (a download never merges)."""
    if dest.is_symlink():
        raise SourceError(f"refusing to download into a symbolic link: {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise SourceError(f"download destination is not empty: {dest}")
    return dest.resolve()


class DownloadTally:
    """Counts the files and bytes written for one version against its budget."""

    def __init__(self, dest: Path, budget: DownloadBudget) -> None:
        self.dest = dest.resolve()
        self.budget = budget
        self.files = 0
        self.bytes = 0

    def check_declared(self, files: Sequence[RemoteFile]) -> None:
        """Refuse before writing anything when the registry's own listing already crosses the budget,
        or names a path that would leave the destination."""
        if len(files) > self.budget.max_files:
            raise DownloadTooLarge(f"{len(files)} files exceed the budget of {self.budget.max_files} files")
        declared = sum(f.size or 0 for f in files)
        if declared > self.budget.max_bytes:
            raise DownloadTooLarge(
                f"declared size {declared} bytes exceeds the download budget of {self.budget.max_bytes} bytes"
            )
        for remote in files:
            safe_relative_path(self.dest, remote.path)

    def target(self, remote_path: str) -> Path:
        """Where a registry path lands under the destination (the path itself, not what a link there
        points to); parent folders are created, and none of them may be a link."""
        safe_relative_path(self.dest, remote_path)
        target = self.dest.joinpath(*remote_path.replace("\\", "/").split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.parent.resolve() != target.parent:
            raise SourceError(f"refusing a file path that leaves the download: {remote_path!r}")
        return target

    def write(self, remote_path: str, chunks: Iterable[bytes], expected_size: int | None = None) -> Path:
        """Stream one file into the destination, stopping (and removing the partial file) as soon as the
        budget would be crossed; a file that ends up another size than the registry declared is refused."""
        self._count_file(remote_path)
        target = self.target(remote_path)
        allowance = self.budget.max_bytes - self.bytes
        written = 0
        try:
            fd = os.open(target, _CREATE_FLAGS, 0o600)
        except FileExistsError:
            raise SourceError(f"{remote_path} is listed twice or its place is taken by a link") from None
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    written += len(chunk)
                    if written > allowance:
                        raise DownloadTooLarge(self._over_budget(remote_path))
                    out.write(chunk)
            if expected_size is not None and written != expected_size:
                raise SourceError(_size_mismatch(remote_path, written, expected_size))
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        self.bytes += written
        return target

    def account(self, remote_path: str, expected_size: int | None = None) -> Path:
        """Count a file a client library has already written: it must be a regular file (not a link) of
        the size the registry declared, within the budget; otherwise it is removed and refused."""
        self._count_file(remote_path)
        target = self.target(remote_path)
        info = os.lstat(target)
        try:
            if not stat.S_ISREG(info.st_mode):
                raise SourceError(f"the download of {remote_path} is not a regular file")
            if info.st_size > self.budget.max_bytes - self.bytes:
                raise DownloadTooLarge(self._over_budget(remote_path))
            if expected_size is not None and info.st_size != expected_size:
                raise SourceError(_size_mismatch(remote_path, info.st_size, expected_size))
        except SourceError:
            target.unlink(missing_ok=True)
            raise
        self.bytes += info.st_size
        return target

    def _count_file(self, remote_path: str) -> None:
        self.files += 1
        if self.files > self.budget.max_files:
            raise DownloadTooLarge(f"{remote_path} crosses the budget of {self.budget.max_files} files")

    def _over_budget(self, remote_path: str) -> str:
        return f"{remote_path} crosses the download budget of {self.budget.max_bytes} bytes; stopped there"


def _size_mismatch(remote_path: str, actual: int, declared: int) -> str:
    return f"{remote_path} is {actual} bytes, but the registry declared {declared} bytes"


def only_expected_files(dest: Path, expected: Iterable[str]) -> None:
    """After a client library wrote into `dest`: no entry is a link, and every file is one the registry
    listed."""
    wanted = {safe_relative_path(dest, path) for path in expected}
    for root, dirs, files in os.walk(dest, followlinks=False):
        for name in (*dirs, *files):
            entry = Path(root) / name
            relative = entry.relative_to(dest)
            if entry.is_symlink():
                raise SourceError(f"the download left a symbolic link: {relative}")
            if name in files and entry not in wanted:
                raise SourceError(f"the download wrote a file the registry did not list: {relative}")
