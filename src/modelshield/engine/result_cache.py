"""A SQLite cache of finished file results, keyed by the content's SHA-256 and the exact settings that
shaped them (this scanner's code and libraries, policy, limits, options), so that a file already
scanned is not parsed again: with the hash cache, a re-scan of an unchanged file reads none of it.

Only results a second scan would repeat are kept: none with an error, a crash, a timeout or a limit hit
(they may pass on another try or with other bounds). A result that depends on side files (an ONNX
model's external data, an OpenVINO model's weights) is reused only for the same file, and only while
every side file is in the state it was scanned with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modelshield.engine.context import SideFileSeen
from modelshield.engine.hash_cache import is_sha256
from modelshield.engine.result import FileResult
from modelshield.engine.result_codec import (
    decode_file_result,
    decode_side_files,
    encode_file_result,
    encode_side_files,
)
from modelshield.engine.sqlite_cache import SqliteCache

CACHE_FILE = "results.sqlite3"
SCHEMA_VERSION = 1

REPEATABLE_ISSUE_KINDS = frozenset(
    {"corrupt", "deep-unsupported", "partial", "truncated", "unparsed", "unsupported"}
)
"""Issues that say what the content is (damaged, of an unsupported kind, analysed in part), not what
happened to this scan; a result with any other kind of issue is never kept."""


@dataclass(frozen=True)
class StoredScan:
    """A result as scanned, with what it depended on besides the content."""

    result: FileResult
    side_files: tuple[SideFileSeen, ...] = ()
    scanned_path: str | None = None
    """The real path of the file scanned, when side files were looked for (their names may derive
    from it, and their resolution starts from its folder); None when the content alone decided."""

    def reusable_for(self, path: Path) -> bool:
        """Whether this result holds for the file at `path` (whose content has the same SHA-256)."""
        if not self.side_files and self.scanned_path is None:
            return True
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return False
        return str(real) == self.scanned_path and all(seen.still_so(real.parent) for seen in self.side_files)


def repeatable(result: FileResult) -> bool:
    """Whether scanning the same content under the same settings would give this result again."""
    return result.sha256 is not None and all(issue.kind in REPEATABLE_ISSUE_KINDS for issue in result.issues)


class ResultCache(SqliteCache):
    """Lookups and stores of results under one scan's settings key; written in batches on flush."""

    FILE_NAME = CACHE_FILE
    SCHEMA_VERSION = SCHEMA_VERSION
    # One row per content: a result under other settings is replaced, so the cache never holds more
    # rows than distinct files scanned.
    TABLES = (
        "CREATE TABLE IF NOT EXISTS file_results (sha256 TEXT PRIMARY KEY, settings TEXT NOT NULL, "
        "side_files TEXT NOT NULL, scanned_path TEXT, result TEXT NOT NULL)",
    )
    NAME = "result cache"
    WITHOUT_IT = "files are scanned in full"

    def __init__(self, settings: str, directory: Path | None = None) -> None:
        super().__init__(directory)
        self._settings = settings
        self._pending: dict[str, StoredScan] = {}

    def lookup(self, sha256: str) -> StoredScan | None:
        """The result stored for this content under these settings, if any (malformed rows are misses)."""
        pending = self._pending.get(sha256)
        if pending is not None:
            return pending
        row = self._fetch_one(
            "SELECT settings, side_files, scanned_path, result FROM file_results WHERE sha256 = ?", (sha256,)
        )
        if row is None or row[0] != self._settings or not (row[2] is None or isinstance(row[2], str)):
            return None
        try:
            stored = StoredScan(
                decode_file_result(json.loads(row[3])), decode_side_files(json.loads(row[1])), row[2]
            )
        except (ValueError, TypeError, RecursionError):  # the decoders' errors are ValueErrors
            return None
        return stored if stored.result.sha256 == sha256 and not stored.result.from_cache else None

    def store(self, stored: StoredScan) -> None:
        """Keep a finished result (written on `flush`) unless a second scan might not repeat it."""
        sha256 = stored.result.sha256
        if sha256 is None or not is_sha256(sha256):
            raise ValueError("only a result with the content's SHA-256 can be stored")
        if repeatable(stored.result) and not self.disabled:
            self._pending[sha256] = stored

    def flush(self) -> None:
        """Write what `store` collected, in one transaction."""
        if not self._pending:
            return
        rows = [
            (
                sha256,
                self._settings,
                json.dumps(encode_side_files(stored.side_files)),
                stored.scanned_path,
                json.dumps(encode_file_result(stored.result), separators=(",", ":")),
            )
            for sha256, stored in self._pending.items()
        ]
        self._pending.clear()
        self._write_all(
            "INSERT OR REPLACE INTO file_results "
            "(sha256, settings, side_files, scanned_path, result) VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def _forget_pending(self) -> None:
        self._pending.clear()
