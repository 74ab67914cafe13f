"""The result cache: a re-scan of unchanged content under the same settings parses nothing and reports
what the first scan did; anything that could change the result (content, side files, scanner build,
policy, limits, options) makes it scan again; results a second scan might not repeat are never kept."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.samples import xml_model_samples
from tests.samples.pickles import os_system

from modelshield import FileResult, Verdict
from modelshield.cli import cli
from modelshield.engine import hash_cache, scan_settings, workers
from modelshield.engine.dispatch import Dispatcher
from modelshield.engine.limits import DEFAULT_LIMITS
from modelshield.engine.result_cache import CACHE_FILE, ResultCache, StoredScan, repeatable
from modelshield.engine.scanner import ScanOptions, scan_paths
from modelshield.policy.model import Policy


@pytest.fixture
def settled_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled at once (the real margin is seconds)."""
    monkeypatch.setattr(hash_cache, "SETTLE_NS", 0)


@pytest.fixture
def no_parsing(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Call to make any later parse in this process fail the test."""

    def forbid() -> None:
        def refuse(self: Dispatcher, *args: object) -> object:
            raise AssertionError("a file was parsed again")

        monkeypatch.setattr(Dispatcher, "scan", refuse)

    return forbid


def _scan(*paths: Path, policy: Policy | None = None, **options: Any) -> tuple[FileResult, ...]:
    return scan_paths(list(paths), policy=policy, options=ScanOptions(**options)).files


def _same_verdict(a: FileResult, b: FileResult) -> None:
    assert (a.path, a.size, a.sha256, a.tree, a.findings, a.issues) == (
        b.path,
        b.size,
        b.sha256,
        b.tree,
        b.findings,
        b.issues,
    )


def test_an_unchanged_malicious_file_is_reported_again_without_parsing(
    tmp_path: Path, settled_now: None, no_parsing: Any
) -> None:
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(os_system(str(tmp_path / "marker")))
    [first] = _scan(evil)
    assert first.verdict is Verdict.MALICIOUS and not first.from_cache
    no_parsing()
    [again] = _scan(evil)
    assert again.from_cache and again.verdict is Verdict.MALICIOUS
    _same_verdict(again, first)
    assert not (tmp_path / "marker").exists()


def test_changed_content_is_scanned_again(tmp_path: Path, settled_now: None) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80\x04K\x01.")
    [first] = _scan(model)
    assert first.verdict is Verdict.CLEAN
    model.write_bytes(os_system(str(tmp_path / "marker")))
    [second] = _scan(model)
    assert not second.from_cache and second.verdict is Verdict.MALICIOUS


def test_content_changed_too_recently_to_tell_is_not_kept(tmp_path: Path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80\x04K\x01.")
    _scan(model)
    [second] = _scan(model)  # written a moment ago: its stamp might not tell a same-tick change
    assert not second.from_cache


def test_a_copy_elsewhere_is_reported_under_its_own_path(
    tmp_path: Path, settled_now: None, no_parsing: Any
) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    (first_dir / "evil.pkl").write_bytes(os_system(str(tmp_path / "marker")))
    _scan(first_dir / "evil.pkl")
    shutil.copy(first_dir / "evil.pkl", second_dir / "copy.bin")
    _scan(second_dir / "copy.bin")  # hashed now: its hash is not in the hash cache yet
    no_parsing()
    [copy] = _scan(second_dir / "copy.bin")
    assert copy.from_cache and copy.path == str(second_dir / "copy.bin")
    assert copy.verdict is Verdict.MALICIOUS
    assert all(f.location.chain[0] == copy.path for f in copy.findings)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({}, {"deep": True}),
        ({}, {"limits": DEFAULT_LIMITS.with_overrides({"max_pickle_opcodes": 12_345})}),
    ],
    ids=["deep", "limits"],
)
def test_other_options_scan_again(
    tmp_path: Path, settled_now: None, first: dict[str, Any], second: dict[str, Any]
) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80\x04K\x01.")
    _scan(model, **first)
    [again] = _scan(model, **second)
    assert not again.from_cache
    [third] = _scan(model, **second)
    assert third.from_cache


def test_another_policy_scans_again_and_a_result_is_kept_once_per_content(
    tmp_path: Path, settled_now: None
) -> None:
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(os_system(str(tmp_path / "marker")))
    [strict] = _scan(evil)
    allowing = Policy(allowed_callables=frozenset({"posix.system", "os.system"}))
    [allowed] = _scan(evil, policy=allowing)
    assert not allowed.from_cache
    assert {f.rule_id for f in allowed.findings} != {f.rule_id for f in strict.findings}
    [again] = _scan(evil, policy=allowing)
    assert again.from_cache
    rows = sqlite3.connect(Path(os.environ["MODELSHIELD_CACHE_DIR"]) / CACHE_FILE).execute(
        "SELECT count(*) FROM file_results"
    )
    assert rows.fetchone() == (1,)


def test_another_scanner_build_scans_again(
    tmp_path: Path, settled_now: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80\x04K\x01.")
    _scan(model)
    monkeypatch.setattr(scan_settings, "scanner_fingerprint", lambda: "another build")
    [again] = _scan(model)
    assert not again.from_cache


def test_the_scanner_fingerprint_follows_source_files_and_libraries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "package"
    (package / "formats").mkdir(parents=True)
    (package / "formats" / "pickle.py").write_text("A = 1\n")
    before = scan_settings._installed_files(package)
    (package / "formats" / "pickle.py").write_text("A = 22\n")
    assert scan_settings._installed_files(package) != before

    library = tmp_path / "site"
    library.mkdir()
    (library / "fake_parser_lib.py").write_text("VERSION = 1\n")
    monkeypatch.syspath_prepend(str(library))
    assert scan_settings._library_stamp("fake_parser_lib")[0] == str(library / "fake_parser_lib.py")
    installed = scan_settings._library_stamp("fake_parser_lib")
    (library / "fake_parser_lib.py").write_text("VERSION = 22\n")
    assert scan_settings._library_stamp("fake_parser_lib") != installed
    assert scan_settings._library_stamp("no_such_parser_lib") == [None]


def test_a_result_cut_short_by_a_limit_is_never_kept(tmp_path: Path, settled_now: None) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(os_system(str(tmp_path / "marker")))
    limits = DEFAULT_LIMITS.with_overrides({"max_pickle_opcodes": 3})
    [first] = _scan(model, limits=limits)
    assert [issue.kind for issue in first.issues] == ["limit"]
    assert not repeatable(first)
    [again] = _scan(model, limits=limits)
    assert not again.from_cache


def test_side_files_are_part_of_the_result(tmp_path: Path, settled_now: None) -> None:
    model = xml_model_samples.openvino_with_weights(tmp_path, consts=(("0", "12"), ("12", "12")))
    [first] = _scan(tmp_path)[1:]
    assert first.path == str(model) and first.verdict is Verdict.CLEAN
    [again] = _scan(tmp_path)[1:]
    assert again.from_cache
    (tmp_path / "model.bin").write_bytes(bytes(16))  # the second constant now ends past the weights
    [shrunk] = _scan(tmp_path)[1:]
    assert not shrunk.from_cache
    assert [f.rule_id for f in shrunk.findings] == ["OPENVINO-WEIGHTS-RANGE"]
    (tmp_path / "model.bin").unlink()
    [alone] = _scan(model)
    assert not alone.from_cache


def test_a_result_with_side_files_is_not_lent_to_a_copy_in_another_folder(
    tmp_path: Path, settled_now: None
) -> None:
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    model = xml_model_samples.openvino_with_weights(first_dir, consts=(("0", "12"), ("12", "12")))
    shutil.copy(model, second_dir / "model.xml")
    (second_dir / "model.bin").write_bytes(bytes(8))
    _scan(second_dir / "model.xml")  # its hash is kept
    _scan(model)  # the same content's result, now as scanned beside a.bin
    [copy] = _scan(second_dir / "model.xml")
    assert not copy.from_cache
    assert [f.rule_id for f in copy.findings] == ["OPENVINO-WEIGHTS-RANGE"] * 2


def test_workers_report_what_the_cache_needs(tmp_path: Path, settled_now: None, no_parsing: Any) -> None:
    xml_model_samples.openvino_with_weights(tmp_path, consts=(("0", "12"), ("12", "12")))
    (tmp_path / "evil.pkl").write_bytes(os_system(str(tmp_path / "marker")))
    first = _scan(tmp_path, jobs=2)
    assert not any(f.from_cache for f in first)
    no_parsing()

    def no_workers(*args: object) -> None:
        raise AssertionError("workers started for files the result cache answers")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workers, "WorkerPool", no_workers)
        again = _scan(tmp_path, jobs=2)
        assert all(f.from_cache for f in _scan(tmp_path, jobs=2, isolate=True))
    assert all(f.from_cache for f in again)
    assert [f.verdict for f in again] == [f.verdict for f in first]
    (tmp_path / "model.bin").write_bytes(bytes(16))
    changed = _scan(tmp_path, jobs=2)  # scanned by a worker: the parse ban above holds in this process only
    assert [(Path(f.path).name, f.from_cache) for f in changed] == [
        ("evil.pkl", True),
        ("model.bin", False),
        ("model.xml", False),  # its side file changed
    ]


def test_a_corrupt_result_cache_warns_and_the_scan_goes_on(
    tmp_path: Path, settled_now: None, caplog: pytest.LogCaptureFixture
) -> None:
    cache_dir = Path(os.environ["MODELSHIELD_CACHE_DIR"])
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / CACHE_FILE).write_bytes(b"not a database" * 100)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(os_system(str(tmp_path / "marker")))
    [first] = _scan(evil)
    [again] = _scan(evil)
    assert first.verdict is again.verdict is Verdict.MALICIOUS and not again.from_cache
    assert (
        "modelshield: warning: result cache disabled for this scan (DatabaseError: file is not a database); "
        "files are scanned in full"
    ) in [r.getMessage() for r in caplog.records]


def test_a_tampered_row_is_a_miss(tmp_path: Path, settled_now: None) -> None:
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(os_system(str(tmp_path / "marker")))
    _scan(evil)
    database = Path(os.environ["MODELSHIELD_CACHE_DIR"]) / CACHE_FILE
    with sqlite3.connect(database) as db:
        (text,) = db.execute("SELECT result FROM file_results").fetchone()
        document = json.loads(text)
        document["findings"] = "none"
        db.execute("UPDATE file_results SET result = ?", (json.dumps(document),))
    [again] = _scan(evil)
    assert not again.from_cache and again.verdict is Verdict.MALICIOUS


def test_storing_needs_the_content_hash(tmp_path: Path) -> None:
    cache = ResultCache("settings", tmp_path)
    result = FileResult("x", 0, None, _scan_tree(), (), ())
    with pytest.raises(ValueError, match="SHA-256"):
        cache.store(StoredScan(result))


def _scan_tree() -> Any:
    from modelshield.engine.result import FormatNode

    return FormatNode("x", "data", 0)


def test_cli_no_cache_and_no_hash_always_parse(tmp_path: Path, settled_now: None) -> None:
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(os_system(str(tmp_path / "marker")))
    runner = CliRunner()

    def from_cache(*flags: str) -> bool:
        outcome = runner.invoke(cli, ["scan", str(evil), "--format", "json", *flags])
        assert outcome.exit_code == 1, outcome.output
        [file] = json.loads(outcome.output)["files"]
        assert file["verdict"] == "malicious"
        return bool(file["from_cache"])

    assert not from_cache()
    assert from_cache()
    assert not from_cache("--no-cache")
    assert not from_cache("--no-hash")


@pytest.mark.parametrize("loose", ["directory", "database"])
def test_a_cache_other_users_could_write_is_not_trusted(
    tmp_path: Path, settled_now: None, caplog: pytest.LogCaptureFixture, loose: str
) -> None:
    cache_dir = tmp_path / "cache"
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80\x04K\x01.")
    _scan(model, cache_dir=cache_dir)
    (cache_dir if loose == "directory" else cache_dir / CACHE_FILE).chmod(
        0o777 if loose == "directory" else 0o666
    )
    [again] = _scan(model, cache_dir=cache_dir)
    assert not again.from_cache
    assert any("writable by other users" in r.getMessage() for r in caplog.records)


def test_a_new_cache_is_private_whatever_the_umask(tmp_path: Path, settled_now: None) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"\x80\x04K\x01.")
    old = os.umask(0o002)
    try:
        _scan(model, cache_dir=tmp_path / "cache")
        [again] = _scan(model, cache_dir=tmp_path / "cache")
    finally:
        os.umask(old)
    assert again.from_cache
    assert (tmp_path / "cache" / CACHE_FILE).stat().st_mode & 0o777 == 0o600
