"""The hash cache: exact stamps only, ctime guards against restored mtimes, trouble disables it once."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from modelshield.engine import sqlite_cache
from modelshield.engine.hash_cache import (
    CACHE_FILE,
    FileStamp,
    HashCache,
    default_cache_dir,
)

DIGEST = "0123456789abcdef" * 4
OTHER = "fedcba9876543210" * 4


def _stamp(**changes: int) -> FileStamp:
    fields = {"device": 2049, "inode": 2**64 - 3, "size": 10, "mtime_ns": 1_000, "ctime_ns": 2_000}
    fields.update(changes)
    return FileStamp(**fields)


def test_a_stored_hash_is_found_by_a_later_scan_for_the_exact_stamp_only(tmp_path: Path) -> None:
    with HashCache(tmp_path) as cache:
        cache.store(_stamp(), DIGEST)
    with HashCache(tmp_path) as cache:
        assert cache.lookup(_stamp()) == DIGEST
        assert cache.lookup(_stamp(size=11)) is None
        assert cache.lookup(_stamp(mtime_ns=1_001)) is None
        assert cache.lookup(_stamp(ctime_ns=2_001)) is None
        assert cache.lookup(_stamp(inode=7)) is None


def test_a_new_state_of_the_same_file_replaces_the_old_one(tmp_path: Path) -> None:
    with HashCache(tmp_path) as cache:
        cache.store(_stamp(), DIGEST)
    with HashCache(tmp_path) as cache:
        cache.store(_stamp(ctime_ns=3_000), OTHER)
        assert cache.lookup(_stamp(ctime_ns=3_000)) == OTHER  # seen before it is written
    with HashCache(tmp_path) as cache:
        assert cache.lookup(_stamp()) is None
        assert cache.lookup(_stamp(ctime_ns=3_000)) == OTHER
    rows = sqlite3.connect(tmp_path / CACHE_FILE).execute("SELECT count(*) FROM file_hashes").fetchone()
    assert rows == (1,)


def test_rewritten_content_with_its_old_mtime_put_back_has_a_new_stamp(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"original content")
    before = os.stat(path)
    time.sleep(0.05)  # past a clock tick of the file system's time stamps
    path.write_bytes(b"replaced content")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert FileStamp.of(after) != FileStamp.of(before)


def test_only_regular_files_have_a_stamp(tmp_path: Path) -> None:
    assert FileStamp.of(os.stat(tmp_path)) is None


def test_content_changed_too_recently_to_tell_is_not_settled() -> None:
    now = 10_000_000_000_000
    assert _stamp(mtime_ns=now - 3_000_000_000, ctime_ns=now - 3_000_000_000).settled_before(now)
    assert not _stamp(mtime_ns=now - 3_000_000_000, ctime_ns=now - 1_000_000_000).settled_before(now)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "modelshield.engine.hash_cache"]


def test_a_corrupt_cache_warns_once_and_then_acts_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / CACHE_FILE).write_bytes(b"this is not a database" * 100)
    cache = HashCache(tmp_path)
    assert cache.lookup(_stamp()) is None
    cache.store(_stamp(), DIGEST)
    assert cache.lookup(_stamp()) is None
    cache.close()
    assert _warnings(caplog) == [
        "modelshield: warning: hash cache disabled for this scan (DatabaseError: file is not a database); "
        "files are hashed in full"
    ]


def test_an_unusable_cache_directory_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cache = HashCache(blocker / "cache")
    assert cache.lookup(_stamp()) is None
    assert cache.lookup(_stamp()) is None
    assert _warnings(caplog) == [
        "modelshield: warning: hash cache disabled for this scan (NotADirectoryError: [Errno 20] Not a "
        f"directory: '{blocker / 'cache'}'); files are hashed in full"
    ]


def test_a_locked_cache_drops_the_writes_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sqlite_cache, "BUSY_TIMEOUT_SECONDS", 0.05)
    with HashCache(tmp_path) as cache:
        cache.store(_stamp(), DIGEST)
    holder = sqlite3.connect(tmp_path / CACHE_FILE, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        cache = HashCache(tmp_path)
        cache.store(_stamp(ctime_ns=5_000), OTHER)
        cache.close()
        assert _warnings(caplog) == [
            "modelshield: warning: hash cache disabled for this scan (OperationalError: database is locked); "
            "files are hashed in full"
        ]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with HashCache(tmp_path) as cache:
        assert cache.lookup(_stamp()) == DIGEST


def test_a_malformed_digest_in_the_cache_is_a_miss(tmp_path: Path) -> None:
    with HashCache(tmp_path) as cache:
        cache.store(_stamp(), DIGEST)
    with sqlite3.connect(tmp_path / CACHE_FILE) as db:
        db.execute("UPDATE file_hashes SET sha256 = 'not-a-digest'")
    with HashCache(tmp_path) as cache:
        assert cache.lookup(_stamp()) is None


def test_storing_something_that_is_not_a_digest_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a lowercase hex SHA-256"):
        HashCache(tmp_path).store(_stamp(), DIGEST.upper())


def test_cache_directory_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSHIELD_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "modelshield"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "modelshield"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "modelshield"
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
