"""A SQLite cache of files' SHA-256, keyed by what changes when a file does (device, inode, size,
mtime and ctime), so that an unchanged file is never hashed twice."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from modelshield.engine.sqlite_cache import SqliteCache, default_cache_dir

__all__ = ["CACHE_FILE", "FileStamp", "HashCache", "StampedHash", "default_cache_dir", "is_sha256"]

CACHE_FILE = "hashes.sqlite3"
SCHEMA_VERSION = 1
SETTLE_NS = 2_000_000_000
"""Coarser than any file system's time stamps (FAT and ext3 keep whole or even seconds)."""


@dataclass(frozen=True)
class FileStamp:
    """What identifies one state of a file's content without reading it.

    The ctime is part of it because `touch -d` can put an old mtime back on rewritten content but
    nothing short of changing the clock can put back the ctime; a stale hash would let changed
    content pass as content already scanned."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, status: os.stat_result) -> FileStamp | None:
        """The stamp of a regular file's `os.stat`/`os.fstat` result; None for anything else."""
        if not stat.S_ISREG(status.st_mode):
            return None
        return cls(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> FileStamp | None:
        """The stamp of the regular file at `path` (links followed); None if there is none to stamp."""
        try:
            return cls.of(os.stat(path))
        except OSError:
            return None

    def settled_before(self, moment_ns: int) -> bool:
        """Whether the last change is safely older than `moment_ns` (wall clock), when hashing began.

        File times advance in coarse ticks (a jiffy, or a whole second on some file systems): a
        change made in the same tick as the one stamped would leave the stamp as it was. So, as git
        does for its index, a hash of content changed too recently to tell is not kept."""
        return self.ctime_ns < moment_ns - SETTLE_NS and self.mtime_ns < moment_ns - SETTLE_NS

    @property
    def identity(self) -> str:
        # Text, not integers: inode numbers may not fit SQLite's signed 64-bit integers.
        return f"{self.device}:{self.inode}"

    @property
    def state(self) -> str:
        return f"{self.size}:{self.mtime_ns}:{self.ctime_ns}"


@dataclass(frozen=True)
class StampedHash:
    """A file's SHA-256 over the whole of its content in the state `stamp`."""

    stamp: FileStamp
    sha256: str


def is_sha256(text: object) -> bool:
    """Whether `text` is a SHA-256 digest in lowercase hex."""
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class HashCache(SqliteCache):
    """Lookups and stores of file hashes; one process (the scan's parent) writes, in batches."""

    FILE_NAME = CACHE_FILE
    SCHEMA_VERSION = SCHEMA_VERSION
    TABLES = (
        "CREATE TABLE IF NOT EXISTS file_hashes "
        "(identity TEXT PRIMARY KEY, state TEXT NOT NULL, sha256 TEXT NOT NULL) WITHOUT ROWID",
    )
    NAME = "hash cache"
    WITHOUT_IT = "files are hashed in full"

    def __init__(self, directory: Path | None = None) -> None:
        super().__init__(directory)
        self._pending: dict[str, tuple[str, str]] = {}

    def lookup(self, stamp: FileStamp) -> str | None:
        """The SHA-256 recorded for exactly this state of the file, if any."""
        if self.disabled:
            return None
        pending = self._pending.get(stamp.identity)
        if pending is not None:
            return pending[1] if pending[0] == stamp.state else None
        row = self._fetch_one("SELECT state, sha256 FROM file_hashes WHERE identity = ?", (stamp.identity,))
        if row is None or row[0] != stamp.state or not is_sha256(row[1]):
            return None
        return str(row[1])

    def store(self, stamp: FileStamp, sha256: str) -> None:
        """Remember a hash computed over the whole file in state `stamp` (written on `flush`)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a lowercase hex SHA-256: {sha256!r}")
        if not self.disabled:
            self._pending[stamp.identity] = (stamp.state, sha256)

    def flush(self) -> None:
        """Write what `store` collected, in one transaction."""
        if not self._pending:
            return
        rows = [(identity, state, digest) for identity, (state, digest) in self._pending.items()]
        self._pending.clear()
        self._write_all("INSERT OR REPLACE INTO file_hashes (identity, state, sha256) VALUES (?, ?, ?)", rows)

    def _forget_pending(self) -> None:
        self._pending.clear()
