"""The MLflow connector against a real `mlflow server`: registered models and versions, aliases, artifact
listings, bounded downloads and verdict tags."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from tests.connectors.mlflow_server import MlflowServer, benign_files, free_port, malicious_files
from tests.connectors.mlflow_server import mlflow_server as mlflow_server  # noqa: F401 - the fixture

from modelshield.connectors import ConnectorSettings, DownloadBudget, RemoteFile, VersionRef, connector_for
from modelshield.connectors.base import DownloadTooLarge, SourceError
from modelshield.connectors.mlflow import MlflowConnector, parse_models_address


@dataclass(frozen=True)
class Registry:
    """What the module registered: name -> version number -> (files, the ModelVersion MLflow returned)."""

    server: MlflowServer
    files: dict[str, dict[str, dict[str, bytes]]]
    versions: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def registry(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """`classifier`: v1 benign (alias champion), v2 malicious, v3 benign with a new config (alias
    challenger); `detector`: v1 malicious."""
    work = tmp_path_factory.mktemp("mlflow-samples")
    plan = [
        ("classifier", benign_files(work), ("champion",)),
        ("classifier", malicious_files(work), ()),
        ("classifier", benign_files(work, b'{"model_type": "tiny", "layers": 2}\n'), ("challenger",)),
        ("detector", malicious_files(work), ()),
    ]
    files: dict[str, dict[str, dict[str, bytes]]] = {}
    versions: dict[str, dict[str, Any]] = {}
    for name, model_files, aliases in plan:
        version = mlflow_server.register(name, model_files, aliases)
        files.setdefault(name, {})[version.version] = model_files
        versions.setdefault(name, {})[version.version] = version
    return Registry(mlflow_server, files, versions)


def connector(registry: Registry) -> MlflowConnector:
    made = connector_for(f"mlflow+{registry.server.url}", ConnectorSettings())
    assert isinstance(made, MlflowConnector)
    return made


def expected_ref(registry: Registry, name: str, number: str, labels: tuple[str, ...] = ()) -> VersionRef:
    mv = registry.versions[name][number]
    created = datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=timezone.utc)
    return VersionRef(
        source=f"mlflow+{registry.server.url}",
        model=name,
        version=number,
        address=f"models:/{name}/{number}",
        origin=mv.source,
        created_at=created.isoformat(timespec="seconds"),
        labels=labels,
    )


def test_models_addresses_parse() -> None:
    assert parse_models_address("models:/classifier/3") == ("classifier", "3", None)
    assert parse_models_address("models:/classifier@champion") == ("classifier", None, "champion")
    assert parse_models_address("models:/classifier/latest") == ("classifier", "latest", None)
    for bad in ("models:/classifier", "models:/classifier/Production", "models://profile@databricks/a/1"):
        with pytest.raises(SourceError, match="expected models:/NAME/VERSION"):
            parse_models_address(bad)


def test_a_models_address_needs_a_tracking_uri() -> None:
    with pytest.raises(SourceError, match="--mlflow-uri or set MLFLOW_TRACKING_URI"):
        connector_for("models:/classifier/1", ConnectorSettings())
    made = connector_for("models:/classifier/1", ConnectorSettings(mlflow_tracking_uri="http://127.0.0.1:9/"))
    assert made.source == "mlflow+http://127.0.0.1:9"


def test_an_unreachable_tracking_server_is_reported_at_once() -> None:
    started = time.monotonic()
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SourceError, match=f"cannot reach the tracking server {url}"):
        list(connector_for(f"mlflow+{url}", ConnectorSettings()).list_models())
    assert time.monotonic() - started < 15


def test_registered_models_are_listed_by_name(registry: Registry) -> None:
    assert list(connector(registry).list_models()) == ["classifier", "detector"]


def test_every_version_is_listed_oldest_first_with_its_aliases(registry: Registry) -> None:
    assert list(connector(registry).list_versions("classifier")) == [
        expected_ref(registry, "classifier", "1", ("champion",)),
        expected_ref(registry, "classifier", "2"),
        expected_ref(registry, "classifier", "3", ("challenger",)),
    ]
    assert list(connector(registry).list_versions("detector")) == [expected_ref(registry, "detector", "1")]


def test_versions_resolve_by_number_alias_and_latest(registry: Registry) -> None:
    mlflow = connector(registry)
    assert mlflow.resolve("models:/classifier/2") == expected_ref(registry, "classifier", "2")
    assert mlflow.resolve("models:/classifier@champion") == expected_ref(
        registry, "classifier", "1", ("champion",)
    )
    assert mlflow.resolve("models:/classifier/latest") == expected_ref(
        registry, "classifier", "3", ("challenger",)
    )
    with pytest.raises(SourceError, match="resolving models:/classifier/9 failed"):
        mlflow.resolve("models:/classifier/9")
    with pytest.raises(SourceError, match="resolving models:/classifier@nobody failed"):
        mlflow.resolve("models:/classifier@nobody")


def test_artifacts_are_listed_recursively_with_sizes(registry: Registry) -> None:
    files = registry.files["classifier"]["2"]
    version = connector(registry).resolve("models:/classifier/2")
    assert connector(registry).list_files(version) == [
        RemoteFile(path="config.json", size=len(files["config.json"])),
        RemoteFile(path="data/model.pkl", size=len(files["data/model.pkl"])),
    ]


def test_download_writes_every_artifact_byte_for_byte(registry: Registry, tmp_path: Path) -> None:
    version = connector(registry).resolve("models:/classifier@challenger")
    root = connector(registry).download(version, tmp_path / "v3", DownloadBudget())
    assert root == (tmp_path / "v3").resolve()
    written = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert written == registry.files["classifier"]["3"]


def test_download_over_the_budget_is_refused_before_writing(registry: Registry, tmp_path: Path) -> None:
    version = connector(registry).resolve("models:/classifier/1")
    total = sum(len(body) for body in registry.files["classifier"]["1"].values())
    with pytest.raises(DownloadTooLarge, match=f"declared size {total} bytes exceeds"):
        connector(registry).download(version, tmp_path / "dest", DownloadBudget(max_bytes=total - 1))
    with pytest.raises(DownloadTooLarge, match="2 files exceed the budget of 1 files"):
        connector(registry).download(version, tmp_path / "dest", DownloadBudget(max_files=1))
    assert list((tmp_path / "dest").iterdir()) == []


def test_download_refuses_a_destination_that_is_not_empty(registry: Registry, tmp_path: Path) -> None:
    version = connector(registry).resolve("models:/detector/1")
    (tmp_path / "leftover").write_bytes(b"x")
    with pytest.raises(SourceError, match="not empty"):
        connector(registry).download(version, tmp_path, DownloadBudget())


def test_verdict_tags_are_written_to_the_model_version(registry: Registry) -> None:
    version = connector(registry).resolve("models:/detector/1")
    tags = {"modelshield.verdict": "malicious", "modelshield.findings.critical": "1"}
    assert connector(registry).write_verdict(version, tags) is True
    stored = registry.server.client().get_model_version("detector", "1").tags
    assert {k: v for k, v in stored.items() if k.startswith("modelshield.")} == tags


def test_a_registry_without_a_server_downloads_through_the_mlflow_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite tracking URI with a local artifact folder: MLflow's client copies each file, and the
    connector holds every copied file to the listing and the budget."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("local", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    files = malicious_files(tmp_path)
    for path, body in files.items():
        (tmp_path / "model" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "model" / path).write_bytes(body)
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), artifact_path="model")
    client.create_registered_model("local-model")
    client.create_model_version("local-model", f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

    mlflow = connector_for(f"mlflow+{uri}", ConnectorSettings())
    [version] = mlflow.list_versions("local-model")
    assert (version.source, version.address) == (f"mlflow+{uri}", "models:/local-model/1")
    root = mlflow.download(version, tmp_path / "dest", DownloadBudget())
    written = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert written == files
    assert_budget_holds_while_writing(mlflow, version, tmp_path / "small", monkeypatch)


def assert_budget_holds_while_writing(
    mlflow: Any, version: VersionRef, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no sizes declared (a registry that does not list them), the budget still stops the download
    at the first file that crosses it, and that file is not left behind."""
    listed = mlflow.list_files(version)
    assert [f.path for f in listed] == ["config.json", "data/model.pkl"]
    monkeypatch.setattr(mlflow, "list_files", lambda _version: [RemoteFile(f.path) for f in listed])
    budget = DownloadBudget(max_bytes=listed[1].size)
    with pytest.raises(
        DownloadTooLarge, match=f"data/model.pkl crosses the download budget of {budget.max_bytes}"
    ):
        mlflow.download(version, dest, budget)
    assert [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()] == ["config.json"]


def test_the_budget_holds_while_streaming_from_the_server(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = connector(registry)
    assert_budget_holds_while_writing(mlflow, mlflow.resolve("models:/classifier/2"), tmp_path, monkeypatch)
