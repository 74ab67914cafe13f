"""Issue #6's own check, end to end through the CLI: benign and malicious versions registered in a fresh
`mlflow server` are tagged correctly after one `inventory sync`, a second sync rescans nothing, a new
version scans only its new file, and `gate` passes benign and fails malicious versions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.connectors.mlflow_server import MlflowServer, benign_files, malicious_files, running_mlflow_server
from tests.samples import pickles, torch_samples

from modelshield import __version__
from modelshield.cli import EXIT_FINDINGS, EXIT_OK, cli

CHANGED_CONFIG = b'{"model_type": "tiny", "layers": 2}\n'


@dataclass(frozen=True)
class Deployment:
    server: MlflowServer
    db: str
    work: Path
    expected: dict[tuple[str, str], str]
    """(model, version) -> the verdict the scan must tag it with."""
    files: dict[tuple[str, str], dict[str, bytes]]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """`fraud-detector`: v1 benign (champion), v2 malicious pickle, v3 benign with a new config (challenger);
    `churn`: v1 malicious torch checkpoint, v2 benign and byte-identical to fraud-detector v1."""
    work = tmp_path_factory.mktemp("e2e")
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-e2e")) as server:
        plan: list[tuple[str, dict[str, bytes], tuple[str, ...], str]] = [
            ("fraud-detector", benign_files(work), ("champion",), "clean"),
            ("fraud-detector", malicious_files(work), (), "malicious"),
            ("fraud-detector", benign_files(work, CHANGED_CONFIG), ("challenger",), "clean"),
            (
                "churn",
                {"model.pt": torch_samples.malicious_zip_pt(work, work / "m").read_bytes()},
                (),
                "malicious",
            ),
            ("churn", benign_files(work), (), "clean"),
        ]
        expected: dict[tuple[str, str], str] = {}
        files: dict[tuple[str, str], dict[str, bytes]] = {}
        for name, model_files, aliases, verdict in plan:
            version = server.register(name, model_files, aliases).version
            expected[(name, version)] = verdict
            files[(name, version)] = model_files
        yield Deployment(server, f"sqlite:///{work / 'inventory.db'}", work, expected, files)


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def sync(deployment: Deployment) -> dict[str, Any]:
    result = run("inventory", "--db", deployment.db, "sync", "--format", "json")
    assert result.exit_code == EXIT_OK, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def modelshield_tags(deployment: Deployment, name: str, version: str) -> dict[str, str]:
    stored = deployment.server.client().get_model_version(name, version).tags
    return {key: value for key, value in stored.items() if key.startswith("modelshield.")}


def sha256s(files: dict[str, bytes]) -> set[str]:
    return {hashlib.sha256(body).hexdigest() for body in files.values()}


@pytest.fixture(scope="module")
def first_sync(deployment: Deployment) -> dict[str, Any]:
    added = run("inventory", "--db", deployment.db, "add", f"mlflow+{deployment.server.url}")
    assert added.exit_code == EXIT_OK, added.output
    assert added.output == f"added source mlflow+{deployment.server.url} (models)\n"
    return sync(deployment)


def test_one_sync_tags_every_version_with_its_verdict(
    deployment: Deployment, first_sync: dict[str, Any]
) -> None:
    outcomes = {(o["model"], o["version"]): o for o in first_sync["versions"]}
    assert sorted(outcomes) == sorted(deployment.expected)
    for key, verdict in deployment.expected.items():
        outcome = outcomes[key]
        assert (outcome["verdict"], outcome["verdict_written"], outcome["error"]) == (verdict, True, None), (
            key
        )
        assert modelshield_tags(deployment, *key) == {
            "modelshield.verdict": verdict,
            "modelshield.scan_id": outcome["scan_id"],
            "modelshield.tool_version": __version__,
            "modelshield.gate": "pass" if verdict == "clean" else "fail",
            "modelshield.findings.critical": "1" if verdict == "malicious" else "0",
            "modelshield.findings.high": "0",
            "modelshield.findings.medium": "0",
            "modelshield.findings.low": "0",
            "modelshield.findings.info": "0",
        }, key


def test_each_distinct_file_is_scanned_once(deployment: Deployment, first_sync: dict[str, Any]) -> None:
    every_blob = set().union(*(sha256s(files) for files in deployment.files.values()))
    assert sorted(first_sync["scanned_blobs"]) == sorted(every_blob)
    # Models sync in name order: churn v2 is scanned first, fraud-detector v1 (the same bytes) reuses it.
    twin = {(o["model"], o["version"]): o for o in first_sync["versions"]}[("fraud-detector", "1")]
    assert (twin["status"], twin["scanned_blobs"]) == ("reused", [])
    assert sorted(twin["reused_blobs"]) == sorted(sha256s(deployment.files[("fraud-detector", "1")]))


def test_a_second_sync_rescans_nothing(deployment: Deployment, first_sync: dict[str, Any]) -> None:
    tags_before = {key: modelshield_tags(deployment, *key) for key in deployment.expected}
    second = sync(deployment)
    assert second["scanned_blobs"] == []
    statuses = {(o["model"], o["version"]): o["status"] for o in second["versions"]}
    assert statuses == dict.fromkeys(deployment.expected, "unchanged")
    assert {key: modelshield_tags(deployment, *key) for key in deployment.expected} == tags_before


@pytest.mark.parametrize(
    ("target", "exit_code"),
    [
        ("fraud-detector@1", EXIT_OK),
        ("fraud-detector@champion", EXIT_OK),
        ("fraud-detector@2", EXIT_FINDINGS),
        ("fraud-detector@challenger", EXIT_OK),
        ("churn@1", EXIT_FINDINGS),
        ("churn@2", EXIT_OK),
    ],
)
def test_gate_passes_benign_and_fails_malicious_versions(
    deployment: Deployment, first_sync: dict[str, Any], target: str, exit_code: int
) -> None:
    result = run("gate", target, "--db", deployment.db)
    assert result.exit_code == exit_code, result.output
    word = "passes" if exit_code == EXIT_OK else "fails"
    assert f"{target.split('@')[0]}@" in result.output and f" {word} the gate: " in result.output


def test_a_new_version_scans_only_its_new_file(deployment: Deployment, first_sync: dict[str, Any]) -> None:
    payload = pickles.SAMPLES["indirect_stack_global_memo"].build(str(deployment.work / "marker-v4"))
    files = {"data/model.pkl": payload, "config.json": CHANGED_CONFIG}
    version = deployment.server.register("fraud-detector", files).version
    third = sync(deployment)
    assert third["scanned_blobs"] == [hashlib.sha256(payload).hexdigest()]
    outcome = {(o["model"], o["version"]): o for o in third["versions"]}[("fraud-detector", version)]
    assert (outcome["status"], outcome["verdict"]) == ("scanned", "malicious")
    assert modelshield_tags(deployment, "fraud-detector", version)["modelshield.verdict"] == "malicious"
    assert run("gate", f"fraud-detector@{version}", "--db", deployment.db).exit_code == EXIT_FINDINGS


def test_scan_reads_a_registered_version_by_its_models_address(deployment: Deployment) -> None:
    benign = run("scan", "models:/fraud-detector@champion", "--mlflow-uri", deployment.server.url)
    assert benign.exit_code == EXIT_OK, benign.output
    malicious = run(
        "scan", "models:/fraud-detector/2", "--mlflow-uri", deployment.server.url, "--format", "json"
    )
    assert malicious.exit_code == EXIT_FINDINGS, malicious.output
    report = json.loads(malicious.output)
    files = {f["path"]: f["verdict"] for f in report["files"]}
    assert files == {
        "models:/fraud-detector/2/config.json": "clean",
        "models:/fraud-detector/2/data/model.pkl": "malicious",
    }
