"""Parallel scans report what serial scans do, in listing order; identical files are scanned once; the
hash cache spares an unchanged file a second hashing and never vouches for changed content."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.samples.archives import zip_with
from tests.samples.pickles import os_system

import modelshield
from modelshield import FileResult, Verdict
from modelshield.cli import cli
from modelshield.engine import hash_cache, scanner
from modelshield.engine.hash_cache import CACHE_FILE, FileStamp, HashCache
from modelshield.engine.scanner import ScanOptions, scan_paths


def _mixed_tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "sub").mkdir(parents=True)
    marker = str(root / "marker")
    (tree / "evil.pkl").write_bytes(os_system(marker))
    (tree / "sub" / "evil-copy.bin").write_bytes(os_system(marker))
    (tree / "model.zip").write_bytes(zip_with({"archive/data.pkl": os_system(marker)}))
    (tree / "weights.pkl").write_bytes(pickle.dumps({"w": [0.5, 1.5]}, protocol=4))
    (tree / "README.md").write_text("# tiny\n")
    (tree / "sub" / "notes.txt").write_text("# tiny\n")
    return tree


def _recording(
    calls: list[str], real: Callable[..., Any], name_of: Callable[[Any], str]
) -> Callable[..., Any]:
    def record(first: Any, *rest: Any) -> Any:
        calls.append(name_of(first))
        return real(first, *rest)

    return record


def _comparable(files: tuple[FileResult, ...]) -> list[tuple[Any, ...]]:
    return [(f.path, f.size, f.sha256, f.tree, f.findings, f.issues) for f in files]


def test_two_jobs_report_exactly_what_one_job_does_in_listing_order(tmp_path: Path) -> None:
    tree = _mixed_tree(tmp_path)
    serial = scan_paths([tree], options=ScanOptions(jobs=1, hash_cache=False))
    seen: list[str] = []
    parallel = scan_paths(
        [tree], options=ScanOptions(jobs=2, hash_cache=False), on_file=lambda f: seen.append(f.path)
    )
    assert _comparable(parallel.files) == _comparable(serial.files)
    assert [Path(f.path).name for f in parallel.files] == [
        "README.md",
        "evil.pkl",
        "model.zip",
        "weights.pkl",
        "evil-copy.bin",
        "notes.txt",
    ]
    assert sorted(seen) == sorted(f.path for f in serial.files)
    assert not (tmp_path / "marker").exists()


def test_identical_files_are_scanned_once_and_reported_under_each_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _mixed_tree(tmp_path)
    scanned: list[str] = []
    real_scan_target = scanner.scan_target
    monkeypatch.setattr(scanner, "scan_target", _recording(scanned, real_scan_target, lambda t: t.display))
    result = scan_paths([tree], options=ScanOptions(hash_cache=False))
    names = sorted(Path(p).name for p in scanned)
    assert names == ["README.md", "evil.pkl", "model.zip", "weights.pkl"]
    by_name = {Path(f.path).name: f for f in result.files}
    original, copy = by_name["evil.pkl"], by_name["evil-copy.bin"]
    assert copy.path == str(tree / "sub" / "evil-copy.bin")
    assert (copy.sha256, copy.verdict, copy.tree.format) == (original.sha256, Verdict.MALICIOUS, "pickle")
    assert copy.tree.name == copy.path
    assert [f.location.chain for f in copy.findings] == [(copy.path,)] * len(original.findings)
    assert [f.rule_id for f in copy.findings] == [f.rule_id for f in original.findings]
    assert by_name["notes.txt"].path == str(tree / "sub" / "notes.txt")


def test_only_files_whose_size_another_file_shares_are_hashed_before_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _mixed_tree(tmp_path)
    hashed: list[str] = []
    real_hash_file = scanner.hash_file
    monkeypatch.setattr(scanner, "hash_file", _recording(hashed, real_hash_file, lambda path: path.name))
    scan_paths([tree], options=ScanOptions(hash_cache=False))
    assert sorted(hashed) == ["README.md", "evil-copy.bin", "evil.pkl", "notes.txt"]


def test_without_hashes_nothing_is_hashed_and_copies_are_scanned_on_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _mixed_tree(tmp_path)
    monkeypatch.setattr(scanner, "hash_file", lambda path: pytest.fail(f"hashed {path}"))
    result = scan_paths([tree], options=ScanOptions(compute_hash=False, jobs=2))
    assert [f.sha256 for f in result.files] == [None] * 6
    assert result.files[4].verdict is Verdict.MALICIOUS


class _CountingHash(scanner._BackgroundHash):
    started: list[int] = []

    def __init__(self, reader: Any, size: int) -> None:
        type(self).started.append(1)
        super().__init__(reader, size)


@pytest.fixture
def settled_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled at once (the real margin is seconds)."""
    monkeypatch.setattr(hash_cache, "SETTLE_NS", 0)


def test_an_unchanged_file_is_never_hashed_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled_now: None
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(os_system(str(tmp_path / "marker")))
    monkeypatch.setattr(scanner, "_BackgroundHash", _CountingHash)
    _CountingHash.started = []
    options = ScanOptions(cache_dir=tmp_path / "cache")
    time.sleep(0.01)
    first = scan_paths([path], options=options).files[0]
    second = scan_paths([path], options=options).files[0]
    assert len(_CountingHash.started) == 1
    assert second.sha256 == first.sha256
    assert second.verdict is Verdict.MALICIOUS

    before = os.stat(path)
    time.sleep(0.05)
    path.write_bytes(pickle.dumps({"now": "benign"}, protocol=2).ljust(before.st_size, b"."))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the mtime put back, as touch -d would
    third = scan_paths([path], options=options).files[0]
    assert len(_CountingHash.started) == 2
    assert third.sha256 != first.sha256


def test_a_file_changed_too_recently_to_tell_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    monkeypatch.setattr(scanner, "_BackgroundHash", _CountingHash)
    _CountingHash.started = []
    options = ScanOptions(cache_dir=tmp_path / "cache")
    scan_paths([path], options=options)
    scan_paths([path], options=options)
    assert len(_CountingHash.started) == 2


def test_hashes_from_workers_and_from_the_duplicate_check_are_cached(
    tmp_path: Path, settled_now: None
) -> None:
    tree = _mixed_tree(tmp_path)
    time.sleep(0.01)
    result = scan_paths([tree], options=ScanOptions(jobs=2, cache_dir=tmp_path / "cache"))
    with HashCache(tmp_path / "cache") as cache:
        cached = [cache.lookup(FileStamp.of(os.stat(f.path))) for f in result.files]  # type: ignore[arg-type]
    assert cached == [f.sha256 for f in result.files]


def test_no_cache_leaves_no_cache_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled_now: None
) -> None:
    tree = _mixed_tree(tmp_path)
    scan_paths([tree], options=ScanOptions(hash_cache=False, cache_dir=tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(tmp_path / "env-cache"))
    modelshield.scan(tree, hash_cache=False)
    assert not (tmp_path / "env-cache").exists()
    modelshield.scan(tree)
    assert (tmp_path / "env-cache" / CACHE_FILE).is_file()


def test_cli_options_for_jobs_isolation_and_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled_now: None
) -> None:
    tree = _mixed_tree(tmp_path)
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    plain = runner.invoke(cli, ["scan", "--no-cache", "--format", "json", str(tree)])
    isolated = runner.invoke(
        cli, ["scan", "-j", "2", "--isolate", "--no-cache", "--format", "json", str(tree)]
    )
    assert (plain.exit_code, isolated.exit_code) == (1, 1)
    assert not (tmp_path / "cache").exists()
    cached = runner.invoke(cli, ["scan", "--jobs", "1", "--format", "json", str(tree)])
    assert cached.exit_code == 1
    assert (tmp_path / "cache" / CACHE_FILE).is_file()
    refused = runner.invoke(cli, ["scan", "--jobs", "0", str(tree)])
    assert refused.exit_code == 3
    assert "0 is not in the range x>=1" in refused.output
