"""Sync over a local folder of models, on SQLite and PostgreSQL: what is scanned, reused and stored."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.inventory.folders import benign_pickle, config, malicious_pickle, sha256_of
from tests.samples import pickles as pk

from modelshield import __version__
from modelshield.connectors import DownloadBudget, SourceError, VersionRef
from modelshield.connectors.local import LocalFolderConnector
from modelshield.engine.findings import Severity
from modelshield.inventory import sync as sync_module
from modelshield.inventory.fingerprints import finding_fingerprint
from modelshield.inventory.gate import GateOutcome, run_gate
from modelshield.inventory.schema import Blob, Scan, Source, StoredFinding
from modelshield.inventory.store import Inventory, find_model, find_version, last_known_safe, utcnow
from modelshield.inventory.sync import (
    STATUS_ERROR,
    STATUS_REUSED,
    STATUS_SCANNED,
    STATUS_UNCHANGED,
    SyncOptions,
    SyncReport,
    sync_inventory,
)
from modelshield.policy.model import Policy


def register(inventory: Inventory, folder: Path) -> str:
    address = folder.resolve().as_uri()
    with inventory.session() as session:
        session.add(Source(kind="file", address=address, added_at=utcnow()))
        session.commit()
    return address


def sync(inventory: Inventory, policy: Policy | None = None) -> SyncReport:
    return sync_inventory(inventory, SyncOptions(policy=policy or Policy()))


def statuses(report: SyncReport) -> dict[str, str]:
    return {outcome.model: outcome.status for outcome in report.outcomes}


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    benign_pickle(root / "good" / "model.pkl")
    config(root / "good" / "config.json")
    malicious_pickle(root / "bad" / "model.pkl", tmp_path / "marker")
    return root


def test_first_sync_scans_every_file_and_a_second_scans_nothing(inventory: Inventory, models: Path) -> None:
    register(inventory, models)
    files = [models / "good" / "model.pkl", models / "good" / "config.json", models / "bad" / "model.pkl"]

    first = sync(inventory)

    assert statuses(first) == {"bad": STATUS_SCANNED, "good": STATUS_SCANNED}
    assert sorted(first.scanned_blobs) == sorted(sha256_of(path) for path in files)
    assert first.reused_blobs == ()
    assert {o.model: o.verdict for o in first.outcomes} == {"bad": "malicious", "good": "clean"}
    assert not first.failed

    second = sync(inventory)

    assert statuses(second) == {"bad": STATUS_UNCHANGED, "good": STATUS_UNCHANGED}
    assert second.scanned_blobs == ()
    with inventory.session() as session:
        assert (
            session.scalar(select(func.count()).select_from(Scan).where(Scan.blob_sha256.is_not(None))) == 3
        )


def test_a_changed_file_makes_a_new_version_and_only_its_blob_is_scanned(
    inventory: Inventory, models: Path
) -> None:
    register(inventory, models)
    sync(inventory)
    changed = benign_pickle(models / "good" / "model.pkl", epoch=4)

    report = sync(inventory)

    assert statuses(report) == {"bad": STATUS_UNCHANGED, "good": STATUS_SCANNED}
    good = next(o for o in report.outcomes if o.model == "good")
    assert good.scanned_blobs == (sha256_of(changed),)
    assert good.reused_blobs == (sha256_of(models / "good" / "config.json"),)
    with inventory.session() as session:
        model = find_model(session, "good")
        assert [v.version for v in model.versions][1] == good.version
        assert len(model.versions) == 2
        assert {f.path: f.blob_sha256 for f in model.versions[1].files} == {
            "config.json": sha256_of(models / "good" / "config.json"),
            "model.pkl": sha256_of(changed),
        }


def test_identical_files_in_two_models_are_one_blob_scanned_once(
    inventory: Inventory, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    shared_a = benign_pickle(root / "a" / "weights.pkl")
    benign_pickle(root / "b" / "nested" / "same-bytes-other-name.pkl")
    config(root / "b" / "config.json")
    register(inventory, root)

    report = sync(inventory)

    shared = sha256_of(shared_a)
    by_model = {o.model: o for o in report.outcomes}
    assert by_model["a"].scanned_blobs == (shared,)
    assert by_model["b"].scanned_blobs == (sha256_of(root / "b" / "config.json"),)
    assert by_model["b"].reused_blobs == (shared,)
    assert by_model["b"].status == STATUS_SCANNED
    with inventory.session() as session:
        assert session.scalar(select(func.count()).select_from(Blob).where(Blob.sha256 == shared)) == 1
        scans = session.scalars(select(Scan).where(Scan.blob_sha256 == shared)).all()
        assert [(s.tool_version, s.policy_hash) for s in scans] == [(__version__, Policy().fingerprint())]


def test_a_version_whose_blobs_are_all_known_is_judged_without_download(
    inventory: Inventory, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    benign_pickle(root / "a" / "weights.pkl")
    register(inventory, root)
    sync(inventory)
    benign_pickle(root / "b" / "weights.pkl")

    report = sync(inventory)

    assert statuses(report) == {"a": STATUS_UNCHANGED, "b": STATUS_REUSED}
    assert report.scanned_blobs == ()
    assert {o.model: o.verdict for o in report.outcomes} == {"a": None, "b": "clean"}


def test_another_policy_rescans_and_is_stored_beside_the_first(inventory: Inventory, models: Path) -> None:
    register(inventory, models)
    sync(inventory)
    lenient = Policy(disabled_rules=frozenset({"PICKLE-DANGEROUS-CALL"}))

    report = sync(inventory, lenient)

    assert statuses(report) == {"bad": STATUS_SCANNED, "good": STATUS_SCANNED}
    assert {o.model: o.verdict for o in report.outcomes} == {"bad": "clean", "good": "clean"}
    with inventory.session() as session:
        hashes = session.scalars(select(Scan.policy_hash).where(Scan.blob_sha256.is_not(None))).all()
        assert sorted(set(hashes)) == sorted({Policy().fingerprint(), lenient.fingerprint()})


def test_the_same_problem_in_two_blobs_has_one_fingerprint(inventory: Inventory, tmp_path: Path) -> None:
    root = tmp_path / "models"
    marker = str(tmp_path / "marker")
    (root / "one").mkdir(parents=True)
    (root / "two").mkdir(parents=True)
    (root / "one" / "model.pkl").write_bytes(pk.os_system(marker, proto=2))
    (root / "two" / "renamed.bin").write_bytes(pk.os_system(marker, proto=4))  # other bytes, other offsets
    register(inventory, root)

    sync(inventory)

    evidence = f"os.system(\"touch '{marker}'\")"
    with inventory.session() as session:
        stored = session.scalars(select(StoredFinding).order_by(StoredFinding.location)).all()
        assert [(f.rule_id, f.severity, f.category, f.evidence, f.suppressed) for f in stored] == [
            ("PICKLE-DANGEROUS-CALL", "critical", "code-execution", evidence, False)
        ] * 2
        assert {f.fingerprint for f in stored} == {finding_fingerprint("PICKLE-DANGEROUS-CALL", "", evidence)}
        assert sorted(f.location for f in stored) == sorted(
            f"opcode #{index} REDUCE, offset {len(pk.os_system(marker, proto=proto)) - 2}"
            for index, proto in ((4, 2), (6, 4))
        )


def test_a_version_that_cannot_be_read_is_an_error_and_sync_goes_on(
    inventory: Inventory, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    benign_pickle(root / "good" / "model.pkl")
    outside = benign_pickle(tmp_path / "outside" / "secret.pkl")
    (root / "linked").mkdir()
    (root / "linked" / "model.pkl").symlink_to(outside)
    register(inventory, root)

    report = sync(inventory)

    assert statuses(report) == {"good": STATUS_SCANNED, "linked": STATUS_ERROR}
    linked = next(o for o in report.outcomes if o.model == "linked")
    assert linked.verdict == "error"
    assert linked.error == "linked: model.pkl: link leaves the folder"
    assert report.failed
    with inventory.session() as session:
        model = find_model(session, "linked")
        result = run_gate(session, model.versions[0], Severity.MEDIUM, None)
        assert result.outcome is GateOutcome.INCOMPLETE
        assert result.reason == "the version could not be scanned: linked: model.pkl: link leaves the folder"
    (root / "linked" / "model.pkl").unlink()
    benign_pickle(root / "linked" / "model.pkl")

    assert statuses(sync(inventory)) == {"good": STATUS_UNCHANGED, "linked": STATUS_REUSED}


def test_gate_passes_benign_records_known_safe_and_fails_malicious(
    inventory: Inventory, models: Path
) -> None:
    register(inventory, models)
    sync(inventory)

    with inventory.session() as session:
        good = find_model(session, "good")
        passed = run_gate(session, good.versions[0], Severity.MEDIUM, None)
        bad = find_model(session, "bad")
        failed = run_gate(session, find_version(bad, "latest"), Severity.MEDIUM, None)

        assert passed.outcome is GateOutcome.PASSED
        assert last_known_safe(good) is good.versions[0]
        assert good.versions[0].gate_status == "pass"
        assert failed.outcome is GateOutcome.FINDINGS
        assert failed.reason == "findings at or above medium: 1 critical"
        assert failed.counts == {"critical": 1, "high": 0, "medium": 0, "low": 0, "info": 0}
        assert last_known_safe(bad) is None
        assert bad.versions[0].gate_status == "fail"


def test_gate_under_a_policy_never_used_for_a_scan_does_not_pass(inventory: Inventory, models: Path) -> None:
    register(inventory, models)
    sync(inventory)
    other = Policy(denied_callables=frozenset({"collections.OrderedDict"}))

    with inventory.session() as session:
        good = find_model(session, "good")
        result = run_gate(session, good.versions[0], Severity.MEDIUM, other.fingerprint())

    assert result.outcome is GateOutcome.INCOMPLETE
    assert "never scanned under this policy" in result.reason


def test_version_labels_are_stored_as_json(inventory: Inventory, models: Path) -> None:
    register(inventory, models)
    sync(inventory)
    with inventory.session() as session:
        assert [json.loads(v.labels) for v in find_model(session, "good").versions] == [[]]


def test_a_version_over_the_download_budget_is_an_error_verdict(inventory: Inventory, tmp_path: Path) -> None:
    root = tmp_path / "models"
    big = benign_pickle(root / "big" / "model.pkl")
    register(inventory, root)

    report = sync_inventory(inventory, SyncOptions(budget=DownloadBudget(max_bytes=big.stat().st_size - 1)))

    (outcome,) = report.outcomes
    assert (outcome.status, outcome.verdict) == (STATUS_ERROR, "error")
    assert outcome.error == f"big holds {big.stat().st_size} bytes; the budget is {big.stat().st_size - 1}"


class _RecordingConnector(LocalFolderConnector):
    """The local connector, keeping the tags sync hands it (a folder has nowhere to store them)."""

    written: list[tuple[str, dict[str, str]]] = []

    def write_verdict(self, version: VersionRef, tags: Mapping[str, str]) -> bool:
        self.written.append((version.model, dict(tags)))
        return True


def test_the_verdict_goes_back_to_the_registry_as_tags(
    inventory: Inventory, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_RecordingConnector, "written", [])
    monkeypatch.setattr(sync_module, "connector_for", lambda address, settings: _RecordingConnector(models))
    register(inventory, models)

    report = sync(inventory)

    scan_ids = {o.model: o.scan_id for o in report.outcomes}
    assert [o.verdict_written for o in report.outcomes] == [True, True]
    assert _RecordingConnector.written == [
        (
            "bad",
            {
                "modelshield.verdict": "malicious",
                "modelshield.scan_id": str(scan_ids["bad"]),
                "modelshield.tool_version": __version__,
                "modelshield.gate": "fail",
                "modelshield.findings.critical": "1",
                "modelshield.findings.high": "0",
                "modelshield.findings.medium": "0",
                "modelshield.findings.low": "0",
                "modelshield.findings.info": "0",
            },
        ),
        (
            "good",
            {
                "modelshield.verdict": "clean",
                "modelshield.scan_id": str(scan_ids["good"]),
                "modelshield.tool_version": __version__,
                "modelshield.gate": "pass",
                "modelshield.findings.critical": "0",
                "modelshield.findings.high": "0",
                "modelshield.findings.medium": "0",
                "modelshield.findings.low": "0",
                "modelshield.findings.info": "0",
            },
        ),
    ]
    assert sync(inventory).outcomes[0].verdict_written is None  # nothing new: nothing written again


class _UnlistableConnector(LocalFolderConnector):
    """The local connector, failing to list the versions of one model as a registry might."""

    def list_versions(self, model: str) -> Iterator[VersionRef]:
        if model == "bad":
            raise SourceError("permission denied listing versions")
        return super().list_versions(model)


def test_a_model_whose_versions_cannot_be_listed_does_not_stop_the_others(
    inventory: Inventory, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_module, "connector_for", lambda address, settings: _UnlistableConnector(models))
    source = register(inventory, models)

    report = sync(inventory)

    assert statuses(report) == {"good": STATUS_SCANNED}
    assert report.source_errors == (f"{source}: bad: permission denied listing versions",)
    assert report.failed


def test_a_model_without_files_is_never_clean(inventory: Inventory, tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "empty" / "nothing-here").mkdir(parents=True)
    register(inventory, root)

    (outcome,) = sync(inventory).outcomes

    assert (outcome.model, outcome.status, outcome.verdict) == ("empty", STATUS_REUSED, "error")
    with inventory.session() as session:
        version = find_model(session, "empty").versions[0]
        result = run_gate(session, version, Severity.LOW, None)
        assert (result.outcome, result.reason) == (
            GateOutcome.INCOMPLETE,
            "not fully scanned: the version has no files",
        )


def test_a_source_that_cannot_be_reached_is_reported_and_the_others_are_synced(
    inventory: Inventory, models: Path, tmp_path: Path
) -> None:
    gone = tmp_path / "gone"
    benign_pickle(gone / "m" / "model.pkl")
    missing = register(inventory, gone)
    register(inventory, models)
    for path in sorted(gone.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    gone.rmdir()

    report = sync(inventory)

    assert statuses(report) == {"bad": STATUS_SCANNED, "good": STATUS_SCANNED}
    assert report.source_errors == (f"{missing}: not a folder of models: {gone}",)


def test_a_version_the_database_refuses_is_an_error_and_sync_goes_on(
    inventory: Inventory, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    deep = root / "deep" / "/".join(["d" * 250] * 5)
    benign_pickle(deep / "model.pkl")
    benign_pickle(root / "plain" / "model.pkl", epoch=5)
    register(inventory, root)

    report = sync(inventory)

    by_model = {o.model: o for o in report.outcomes}
    assert by_model["plain"].verdict == "clean"
    if inventory.engine.dialect.name == "postgresql":  # a 1279-character path does not fit String(1024)
        assert (by_model["deep"].status, by_model["deep"].verdict) == (STATUS_ERROR, "error")
        assert "value too long" in str(by_model["deep"].error)
    else:  # SQLite does not enforce string lengths
        assert (by_model["deep"].status, by_model["deep"].verdict) == (STATUS_SCANNED, "clean")
