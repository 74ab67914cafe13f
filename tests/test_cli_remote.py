"""Remote addresses on the command line: `modelshield scan hf://...` and `modelshield download`."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tests.connectors import moto_server
from tests.connectors.hub_server import (
    MALICIOUS_PICKLE,
    HubServer,
    hub_fixture,  # noqa: F401 - provides the `hub` fixture
)

from modelshield.cli import EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_ERROR, EXIT_USAGE, cli

s3_store = moto_server.s3_store


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "downloads"


@pytest.fixture
def temp_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The process's temporary directory, watched: a remote scan must leave nothing in it."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="modelshield")


def report(result: Result) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def head(server: HubServer, repo_id: str) -> str:
    return server.repos[repo_id].commits[-1].sha


def test_scan_reports_the_malicious_pickle_by_its_pinned_address(hub: HubServer, temp_root: Path) -> None:
    sha = head(hub, "acme/evil")
    result = invoke("scan", "hf://acme/evil@main", "--format", "json")
    assert result.exit_code == EXIT_FINDINGS, result.stderr
    files = report(result)["files"]
    assert [f["path"] for f in files] == [
        f"hf://acme/evil@{sha}/config.json",
        f"hf://acme/evil@{sha}/weights/model.pkl",
    ]
    finding = files[1]["findings"][0]
    assert (finding["rule_id"], finding["location"]["chain"]) == (
        "PICKLE-DANGEROUS-CALL",
        [f"hf://acme/evil@{sha}/weights/model.pkl"],
    )
    assert list(temp_root.iterdir()) == []


def test_scan_of_a_benign_repo_passes(hub: HubServer, temp_root: Path) -> None:
    result = invoke("scan", "hf://acme/benign", "--format", "json")
    assert result.exit_code == EXIT_OK, result.stderr
    assert report(result)["verdict"] == "clean"


def test_scan_mixes_local_paths_and_remote_addresses_in_order(hub: HubServer, tmp_path: Path) -> None:
    local = tmp_path / "local.pkl"
    local.write_bytes(MALICIOUS_PICKLE)
    sha = head(hub, "acme/benign")
    result = invoke("scan", str(local), "hf://acme/benign", "--format", "json")
    assert result.exit_code == EXIT_FINDINGS
    assert [f["path"] for f in report(result)["files"]] == [
        str(local),
        f"hf://acme/benign@{sha}/config.json",
        f"hf://acme/benign@{sha}/model.safetensors",
    ]


def test_scan_over_the_download_budget_is_an_error_not_a_clean_result(
    hub: HubServer, temp_root: Path
) -> None:
    result = invoke("scan", "hf://acme/liar", "--max-download-size", "64KiB")
    assert result.exit_code == EXIT_SCAN_ERROR
    assert result.stdout == ""
    assert "big.bin crosses the download budget of 65536 bytes" in result.stderr
    assert list(temp_root.iterdir()) == []


def test_the_download_budget_covers_all_remote_inputs_together(hub: HubServer) -> None:
    # acme/benign is 129 bytes: alone it fits in 150, but not twice.
    assert invoke("scan", "hf://acme/benign", "--max-download-size", "150").exit_code == EXIT_OK
    result = invoke("scan", "hf://acme/benign", "hf://acme/benign@main", "--max-download-size", "150")
    assert result.exit_code == EXIT_SCAN_ERROR
    assert "exceeds the download budget of 21 bytes" in result.stderr


def test_scan_reads_an_s3_model_and_names_its_objects(
    s3_store: moto_server.S3Store, monkeypatch: pytest.MonkeyPatch, temp_root: Path
) -> None:
    s3_store.put("scanned/evil/sub/model.pkl", MALICIOUS_PICKLE)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_store.endpoint_url)
    result = invoke("scan", f"s3://{s3_store.bucket}/scanned/evil", "--format", "json")
    assert result.exit_code == EXIT_FINDINGS, result.stderr
    files = report(result)["files"]
    assert [(f["path"], f["findings"][0]["rule_id"]) for f in files] == [
        (f"s3://{s3_store.bucket}/scanned/evil/sub/model.pkl", "PICKLE-DANGEROUS-CALL")
    ]
    assert list(temp_root.iterdir()) == []


def test_scan_of_an_unknown_repo_says_so(hub: HubServer) -> None:
    result = invoke("scan", "hf://acme/absent")
    assert result.exit_code == EXIT_SCAN_ERROR
    assert "resolving hf://acme/absent: 404 Client Error. Repository Not Found" in result.stderr


def test_a_bad_download_size_is_a_usage_error() -> None:
    result = invoke("scan", "hf://acme/benign", "--max-download-size", "lots")
    assert result.exit_code == EXIT_USAGE
    assert "not a size: 'lots'" in result.stderr


def test_download_prints_only_the_pinned_path(hub: HubServer, cache: Path) -> None:
    sha = head(hub, "acme/benign")
    result = invoke("download", "hf://acme/benign@main")
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout == f"{cache / 'hf' / 'acme' / 'benign' / sha}\n"
    assert f"hf://acme/benign@{sha}: 2 files downloaded and scanned (clean)" in result.stderr


def test_download_refuses_a_malicious_repo_and_leaves_nothing(hub: HubServer, cache: Path) -> None:
    result = invoke("download", "hf://acme/evil")
    assert result.exit_code == EXIT_FINDINGS
    assert result.stdout == ""
    assert "critical PICKLE-DANGEROUS-CALL" in result.stderr
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_download_to_a_directory_with_a_json_report(hub: HubServer, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = invoke(
        "download", "hf://acme/benign", "--to", str(tmp_path / "m"), "--format", "json", "-o", str(out)
    )
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout == f"{tmp_path / 'm'}\n"
    assert json.loads(out.read_text())["verdict"] == "clean"


def test_download_writes_the_refusal_report_too(hub: HubServer, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = invoke("download", "hf://acme/evil", "--format", "json", "--output", str(out))
    assert result.exit_code == EXIT_FINDINGS
    assert json.loads(out.read_text())["verdict"] == "malicious"


def test_download_of_a_climbing_path_is_a_scan_error(hub: HubServer, cache: Path) -> None:
    result = invoke("download", "hf://acme/climber")
    assert result.exit_code == EXIT_SCAN_ERROR
    assert "refusing a registry file path that could leave the download: '../outside.pkl'" in result.stderr


def test_download_of_a_local_path_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("download", str(tmp_path))
    assert result.exit_code == EXIT_USAGE
    assert "not a remote model address" in result.stderr


def test_the_cli_does_not_import_client_libraries() -> None:
    heavy = [
        "huggingface_hub",
        "httpx2",
        "mlflow",
        "boto3",
        "modelshield.remote",
        "modelshield.safe_download",
    ]
    code = f"import sys, modelshield.cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
