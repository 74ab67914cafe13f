"""Worker processes: a crash, hang, limit hit or lying reply costs one file an error result, never a
clean verdict, and the scan goes on with a fresh worker."""

from __future__ import annotations

import pickle
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from modelshield import FileResult, Policy, Verdict
from modelshield.engine.limits import Limits, MiB
from modelshield.engine.scanner import ScanOptions, scan_paths
from modelshield.engine.workers import POST_SCAN_POLICY_FIELDS, policy_scan_data
from modelshield.errors import ModelShieldError

MISBEHAVING = "tests.engine.misbehaving_handlers"


def _tree(tmp_path: Path, middle: bytes) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.pkl").write_bytes(pickle.dumps({"a": 1}))
    (tree / "b.bin").write_bytes(middle)
    (tree / "c.pkl").write_bytes(pickle.dumps({"c": [1, 2]}))
    (tree / "d.pkl").write_bytes(pickle.dumps({"d": 3.5}))
    return tree


def _scan(
    tree: Path, *, jobs: int = 2, isolate: bool = False, limits: Limits | None = None
) -> list[FileResult]:
    options = ScanOptions(
        jobs=jobs, isolate=isolate, hash_cache=False, handlers_module=MISBEHAVING, limits=limits or Limits()
    )
    return list(scan_paths([tree], options=options).files)


def _only_issue(file: FileResult) -> tuple[str, str]:
    assert file.verdict is Verdict.ERROR
    assert len(file.issues) == 1
    return file.issues[0].kind, file.issues[0].message


def _assert_others_scanned(files: list[FileResult], tree: Path) -> None:
    assert [Path(f.path).name for f in files] == ["a.pkl", "b.bin", "c.pkl", "d.pkl"]
    for file in (files[0], files[2], files[3]):
        assert (file.tree.format, file.verdict, file.issues) == ("pickle", Verdict.CLEAN, ())


@pytest.mark.parametrize(
    ("action", "what"),
    [
        (b"segv", "was killed by signal 11 (SIGSEGV)"),
        (b"exit", "exited with status 3"),
        (b"garbage", "sent a malformed result (Expecting value: line 1 column 1 (char 0))"),
    ],
)
def test_a_worker_that_dies_or_lies_costs_one_file_an_error_and_the_scan_goes_on(
    tmp_path: Path, action: bytes, what: str
) -> None:
    tree = _tree(tmp_path, b"MISBEHAVE:" + action)
    files = _scan(tree)
    _assert_others_scanned(files, tree)
    kind, message = _only_issue(files[1])
    assert kind == "crash"
    assert message == (
        f"the worker process scanning this file {what}; the file may be crafted to crash or exhaust the "
        "scanner and was not fully scanned"
    )
    assert files[1].tree.format == "not-scanned"
    assert files[1].size == len(b"MISBEHAVE:" + action)


@pytest.mark.parametrize(
    ("action", "jobs", "limits", "what"),
    [
        (b"hang", 1, Limits(child_wall_seconds=1.5), "gave no result within 1.5 s (child_wall_seconds)"),
        (
            b"spin",
            2,
            Limits(child_cpu_seconds=1, child_wall_seconds=30),
            "used its 1 s of CPU time (child_cpu_seconds)",
        ),
    ],
)
def test_isolation_holds_a_file_to_its_wall_clock_and_cpu_time(
    tmp_path: Path, action: bytes, jobs: int, limits: Limits, what: str
) -> None:
    files = _scan(_tree(tmp_path, b"MISBEHAVE:" + action), jobs=jobs, isolate=True, limits=limits)
    _assert_others_scanned(files, tmp_path / "tree")
    kind, message = _only_issue(files[1])
    assert kind == "isolation"
    assert message.startswith(f"the worker process scanning this file {what};")


def test_isolation_holds_a_file_to_its_memory_and_the_next_file_gets_a_fresh_worker(tmp_path: Path) -> None:
    limits = Limits(child_memory_bytes=400 * MiB)
    files = _scan(_tree(tmp_path, b"MISBEHAVE:allocate"), jobs=1, isolate=True, limits=limits)
    _assert_others_scanned(files, tmp_path / "tree")
    assert files[1].verdict is Verdict.ERROR
    assert [issue.kind for issue in files[1].issues] == ["error", "isolation"]
    assert files[1].issues[0].message == "misbehaving handler failed: MemoryError()"
    assert (
        files[1]
        .issues[1]
        .message.startswith(
            f"the worker process scanning this file ran out of its {400 * MiB} bytes of memory "
            "(child_memory_bytes);"
        )
    )


def test_isolate_scans_even_a_single_file_in_a_child(tmp_path: Path) -> None:
    path = tmp_path / "one.bin"
    path.write_bytes(b"MISBEHAVE:segv")
    (file,) = _scan(path, jobs=1, isolate=True)
    assert _only_issue(file)[0] == "crash"


def test_workers_judge_by_the_callers_policy(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("a.pkl", "b.pkl"):
        (tree / name).write_bytes(pickle.dumps({name: 1}, protocol=2))
    (tree / "c.pkl").write_bytes(pickle.dumps(range(3), protocol=2))
    policy = Policy(denied_callables=frozenset({"builtins.range"}))
    serial = scan_paths([tree], policy, ScanOptions(jobs=1, hash_cache=False))
    parallel = scan_paths([tree], policy, ScanOptions(jobs=2, hash_cache=False))
    assert [f.rule_id for f in parallel.files[2].findings] == ["PICKLE-DANGEROUS-CALL"]
    assert [(f.path, f.findings, f.issues, f.tree) for f in parallel.files] == [
        (f.path, f.findings, f.issues, f.tree) for f in serial.files
    ]


def test_every_policy_field_is_either_sent_to_workers_or_applied_after_the_scan() -> None:
    names: dict[str, Any] = {
        "allowed_callables": frozenset({"pkg.Good"}),
        "denied_callables": frozenset({"pkg.Bad", "evil.*"}),
        "disabled_rules": frozenset({"PICKLE-UNKNOWN-CALLABLE"}),
        "allowed_tensorflow_ops": frozenset({"MatMul"}),
        "denied_tensorflow_ops": frozenset({"ReadFile"}),
        "allowed_hydra_targets": frozenset({"pkg.Model"}),
        "denied_hydra_targets": frozenset({"os.system"}),
    }
    assert {f.name for f in fields(Policy)} == set(names) | POST_SCAN_POLICY_FIELDS
    assert policy_scan_data(Policy(**names)) == {name: sorted(value) for name, value in names.items()}


def test_workers_that_cannot_start_stop_the_scan_instead_of_blaming_files(tmp_path: Path) -> None:
    tree = _tree(tmp_path, b"plain bytes")
    options = ScanOptions(jobs=2, hash_cache=False, handlers_module="tests.engine.no_such_handlers")
    with pytest.raises(
        ModelShieldError, match=r"worker processes cannot start: the last one exited with status 1"
    ):
        scan_paths([tree], options=options)


@pytest.mark.parametrize("ceiling", [True, False])
def test_this_process_helps_only_when_the_job_count_was_not_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ceiling: bool
) -> None:
    from modelshield.engine import scanner

    tree = tmp_path / "tree"
    tree.mkdir()
    for n in range(120):
        (tree / f"f{n:03}.pkl").write_bytes(pickle.dumps({"n": n, "w": [float(n)] * 50}))
    here: list[str] = []
    real = scanner.scan_target

    def counted(target: Any, *args: Any, **kwargs: Any) -> Any:
        here.append(target.display)
        return real(target, *args, **kwargs)

    monkeypatch.setattr(scanner, "scan_target", counted)
    options = ScanOptions(jobs=2, jobs_are_a_ceiling=ceiling, hash_cache=False)
    files = scan_paths([tree], options=options).files
    assert [Path(f.path).name for f in files] == [f"f{n:03}.pkl" for n in range(120)]
    assert all(f.verdict is Verdict.CLEAN and f.tree.format == "pickle" for f in files)
    if ceiling:
        assert 0 < len(here) < 120  # shared: this process scanned some, the one worker the rest
    else:
        assert here == []  # a chosen --jobs keeps every file in a worker


def test_a_worker_whose_memory_grew_retires_and_hands_its_queued_files_to_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "pids"
    monkeypatch.setenv("MISBEHAVE_PID_LOG", str(log))
    tree = _tree(tmp_path, b"MISBEHAVE:bloat")
    (tree / "c.pkl").write_bytes(b"MISBEHAVE:pid")  # queued behind b.bin on the same worker
    files = _scan(tree, jobs=1, isolate=True)
    assert [(Path(f.path).name, f.tree.format, f.verdict, f.issues) for f in files] == [
        ("a.pkl", "pickle", Verdict.CLEAN, ()),
        ("b.bin", "misbehaving", Verdict.CLEAN, ()),
        ("c.pkl", "misbehaving", Verdict.CLEAN, ()),
        ("d.pkl", "pickle", Verdict.CLEAN, ()),
    ]
    bloated, fresh = log.read_text().split()
    assert bloated != fresh
