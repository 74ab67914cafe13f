"""What the scanner's caches share: one SQLite file each, opened on first use, written in batches by one
process (the scan's parent), and turned off with one warning at the first sign of trouble (the scan
goes on without it: a cache costs time when missing, never a verdict)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import sqlite3

    from typing_extensions import Self

BUSY_TIMEOUT_SECONDS = 2.0


def default_cache_dir() -> Path:
    """`$MODELSHIELD_CACHE_DIR`, else `$XDG_CACHE_HOME/modelshield`, else `~/.cache/modelshield`."""
    explicit = os.environ.get("MODELSHIELD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "modelshield"


class UntrustedCache(OSError):
    """The cache could have been written by someone else."""


def _refuse_if_others_can_write(path: Path) -> None:
    """A cache vouches for files (a stored result stands in for a scan), so one that another user could
    have written is not used: it must belong to this user and be writable by no one else."""
    status = os.stat(path)
    if hasattr(os, "geteuid") and status.st_uid != os.geteuid():
        raise UntrustedCache(f"{path} belongs to another user (uid {status.st_uid})")
    if status.st_mode & 0o022:
        raise UntrustedCache(f"{path} is writable by other users (mode {status.st_mode & 0o777:o})")


class SqliteCache:
    """A cache database; a subclass names its file, schema and what is lost without it.

    A corrupt, locked or unwritable cache, or one of another schema version, warns once and from then
    on behaves as an empty cache that keeps nothing."""

    FILE_NAME: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int]
    TABLES: ClassVar[tuple[str, ...]]
    """CREATE TABLE statements of the schema."""
    NAME: ClassVar[str]
    """What the warning calls the cache ("hash cache")."""
    WITHOUT_IT: ClassVar[str]
    """What the scan does when the cache is off ("files are hashed in full")."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._connection: sqlite3.Connection | None = None
        self._disabled = False

    @property
    def disabled(self) -> bool:
        return self._disabled

    def flush(self) -> None:
        """Write what was stored since the last flush (subclasses keep writes pending)."""

    def close(self) -> None:
        """Flush and close the database."""
        self.flush()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fetch_one(self, query: str, parameters: tuple[object, ...]) -> Any:
        """The first row `query` selects (None when there is none, or the cache is off)."""
        connection = self._connect()
        if connection is None:
            return None
        try:
            return connection.execute(query, parameters).fetchone()
        except Exception as exc:  # noqa: BLE001 - sqlite3.Error and its kin: the cache is optional
            self._give_up(exc)
            return None

    def _write_all(self, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
        """Run `statement` for every row, in one transaction."""
        connection = self._connect()
        if connection is None:
            return
        try:
            with connection:
                connection.executemany(statement, rows)
        except Exception as exc:  # noqa: BLE001 - sqlite3.Error and its kin: the cache is optional
            self._give_up(exc)

    def _connect(self) -> sqlite3.Connection | None:
        if self._disabled:
            return None
        if self._connection is None:
            try:
                self._connection = self._open(self._directory or default_cache_dir())
            except Exception as exc:  # noqa: BLE001 - sqlite3.Error, OSError: the cache is optional
                self._give_up(exc)
        return self._connection

    def _open(self, directory: Path) -> sqlite3.Connection:
        import sqlite3

        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _refuse_if_others_can_write(directory)
        database = directory / self.FILE_NAME
        # Created private before SQLite sees it, whatever the umask; its WAL files take its mode.
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600))
        _refuse_if_others_can_write(database)
        connection = sqlite3.connect(database, timeout=BUSY_TIMEOUT_SECONDS)
        try:
            connection.execute("PRAGMA synchronous=NORMAL")  # with WAL: no fsync per commit; never corrupt
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == self.SCHEMA_VERSION:
                return connection
            if version != 0:
                raise sqlite3.DatabaseError(f"cache schema version {version}, expected {self.SCHEMA_VERSION}")
            # WAL: other modelshield processes keep reading while one of them writes (a persistent
            # setting of the file, made once); a cache may lose its last writes on power loss.
            connection.execute("PRAGMA journal_mode=WAL")
            with connection:
                for table in self.TABLES:
                    connection.execute(table)
                connection.execute(f"PRAGMA user_version = {self.SCHEMA_VERSION}")
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
        self._forget_pending()
        # Logged, not raised or warned: without logging configured, Python prints the message alone on
        # standard error. Named after the subclass's module, where the cache is defined. Imported here:
        # a scan without trouble does not pay for the logging package.
        import logging

        logging.getLogger(type(self).__module__).warning(
            "modelshield: warning: %s disabled for this scan (%s: %s); %s",
            self.NAME,
            type(exc).__name__,
            exc,
            self.WITHOUT_IT,
        )

    def _forget_pending(self) -> None:
        """Drop writes not yet flushed (the cache is off)."""
