"""With the default job count, worker processes start only when the work pays for their start-up."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from modelshield.engine import scanner, workers
from modelshield.engine.scanner import ScanOptions, scan_paths


def small_tree(directory: Path, count: int) -> Path:
    directory.mkdir()
    for i in range(count):
        (directory / f"m{i}.pkl").write_bytes(pickle.dumps({"w": [float(i)]}))
    return directory


class PoolStarted(Exception):
    pass


@pytest.fixture
def no_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PoolStarted

    monkeypatch.setattr(workers, "WorkerPool", refuse)


@pytest.mark.usefixtures("no_pool")
def test_a_few_small_files_are_scanned_in_process(tmp_path: Path) -> None:
    tree = small_tree(tmp_path / "t", 3)
    result = scan_paths([tree], options=ScanOptions(jobs=2, jobs_are_a_ceiling=True))
    assert [f.verdict.value for f in result.files] == ["clean"] * 3


@pytest.mark.usefixtures("no_pool")
def test_many_files_or_an_explicit_job_count_start_workers(tmp_path: Path) -> None:
    many = small_tree(tmp_path / "many", scanner.WORKERS_MIN_FILES)
    with pytest.raises(PoolStarted):
        scan_paths([many], options=ScanOptions(jobs=2, jobs_are_a_ceiling=True, compute_hash=False))
    few = small_tree(tmp_path / "few", 2)
    with pytest.raises(PoolStarted):
        scan_paths([few], options=ScanOptions(jobs=2, compute_hash=False))


def test_bytes_to_hash_start_workers_unless_the_cache_holds_their_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    tree = small_tree(tmp_path / "t", 3)
    monkeypatch.setattr(scanner, "WORKERS_MIN_HASHED_BYTES", 20)  # three small pickles are "many bytes"
    options = ScanOptions(jobs=2, jobs_are_a_ceiling=True, cache_dir=tmp_path / "cache")
    time.sleep(2.1)  # the cache keeps only hashes of files settled for two seconds (hash_cache.SETTLE_NS)
    first = scan_paths([tree], options=options)  # workers: nothing is in the cache yet
    assert [f.verdict.value for f in first.files] == ["clean"] * 3
    started: list[int] = []
    real = workers.WorkerPool

    def counted(*args: object, **kwargs: object) -> object:
        started.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(workers, "WorkerPool", counted)
    again = scan_paths([tree], options=options)
    assert [f.sha256 for f in again.files] == [f.sha256 for f in first.files]
    assert started == []  # a re-scan hashes nothing: no worker pays for its start-up
