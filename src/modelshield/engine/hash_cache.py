"""A SQLite cache of files' SHA-256, keyed by what changes when a file does (device, inode, size,
mtime and ctime), so that an unchanged file is never hashed twice. Any trouble with the cache turns
it off with one warning; the scan goes on without it."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

CACHE_FILE = "hashes.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_SECONDS = 2.0
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


def default_cache_dir() -> Path:
    """`$MODELSHIELD_CACHE_DIR`, else `$XDG_CACHE_HOME/modelshield`, else `~/.cache/modelshield`."""
    explicit = os.environ.get("MODELSHIELD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "modelshield"


def is_sha256(text: object) -> bool:
    """Whether `text` is a SHA-256 digest in lowercase hex."""
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class HashCache:
    """Lookups and stores of file hashes; one process (the scan's parent) writes, in batches.

    The database is opened on first use. A corrupt, locked or unwritable cache warns once and
    from then on behaves as an empty cache that keeps nothing."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._connection: sqlite3.Connection | None = None
        self._disabled = False
        self._pending: dict[str, tuple[str, str]] = {}

    def lookup(self, stamp: FileStamp) -> str | None:
        """The SHA-256 recorded for exactly this state of the file, if any."""
        connection = self._connect()
        if connection is None:
            return None
        pending = self._pending.get(stamp.identity)
        if pending is not None:
            return pending[1] if pending[0] == stamp.state else None
        try:
            row = connection.execute(
                "SELECT state, sha256 FROM file_hashes WHERE identity = ?", (stamp.identity,)
            ).fetchone()
        except Exception as exc:  # noqa: BLE001 - sqlite3.Error and its kin: the cache is optional
            self._give_up(exc)
            return None
        if row is None or row[0] != stamp.state or not is_sha256(row[1]):
            return None
        return str(row[1])

    def store(self, stamp: FileStamp, sha256: str) -> None:
        """Remember a hash computed over the whole file in state `stamp` (written on `flush`)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a lowercase hex SHA-256: {sha256!r}")
        if not self._disabled:
            self._pending[stamp.identity] = (stamp.state, sha256)

    def flush(self) -> None:
        """Write what `store` collected, in one transaction."""
        if not self._pending:
            return
        connection = self._connect()
        rows = [(identity, state, digest) for identity, (state, digest) in self._pending.items()]
        self._pending.clear()
        if connection is None:
            return
        try:
            with connection:
                connection.executemany(
                    "INSERT OR REPLACE INTO file_hashes (identity, state, sha256) VALUES (?, ?, ?)", rows
                )
        except Exception as exc:  # noqa: BLE001 - sqlite3.Error and its kin: the cache is optional
            self._give_up(exc)

    def close(self) -> None:
        """Flush and close the database."""
        self.flush()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection | None:
        if self._disabled:
            return None
        if self._connection is None:
            try:
                self._connection = self._open(self._directory or default_cache_dir())
            except Exception as exc:  # noqa: BLE001 - sqlite3.Error, OSError: the cache is optional
                self._give_up(exc)
        return self._connection

    @staticmethod
    def _open(directory: Path) -> sqlite3.Connection:
        import sqlite3

        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        connection = sqlite3.connect(directory / CACHE_FILE, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            connection.execute("PRAGMA synchronous=NORMAL")  # with WAL: no fsync per commit; never corrupt
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                return connection
            if version != 0:
                raise sqlite3.DatabaseError(f"cache schema version {version}, expected {SCHEMA_VERSION}")
            # WAL: other modelshield processes keep reading while one of them writes (a persistent
            # setting of the file, made once); a cache may lose its last writes on power loss.
            connection.execute("PRAGMA journal_mode=WAL")
            with connection:
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS file_hashes "
                    "(identity TEXT PRIMARY KEY, state TEXT NOT NULL, sha256 TEXT NOT NULL) WITHOUT ROWID"
                )
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _give_up(self, exc: BaseException) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001, S110 - already failing; closing is best effort
                pass
        self._connection = None
        self._disabled = True
        self._pending.clear()
        # Logged, not raised or warned: a missing cache costs time, never a verdict. Without logging
        # configured, Python prints the message alone on standard error.
        import logging

        logging.getLogger(__name__).warning(
            "modelshield: warning: hash cache disabled for this scan (%s: %s); files are hashed in full",
            type(exc).__name__,
            exc,
        )
