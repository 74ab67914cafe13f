"""The S3 connector against a moto server on loopback: folders as models, listing digests as versions,
downloads pinned to those digests and bounded by the budget."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.connectors.moto_server import S3Store
from tests.connectors.moto_server import s3_store as s3_store  # noqa: F401 - the `s3_store` fixture
from tests.samples import pickles, torch_samples

from modelshield.cli import EXIT_OK, cli
from modelshield.connectors import ConnectorSettings, DownloadBudget, RemoteFile, connector_for
from modelshield.connectors.base import DownloadTooLarge, SourceError
from modelshield.connectors.s3 import S3Connector, parse_s3_address

CONFIG = b'{"model_type": "tiny"}\n'


def listing_digest(files: dict[str, bytes]) -> str:
    """The version id the connector must compute: sha256 over sorted (path, MD5 ETag, size)."""
    lines = "".join(
        f"{path}\0{hashlib.md5(body).hexdigest()}\0{len(body)}\n"  # noqa: S324 - S3's ETag of a plain PUT
        for path, body in sorted(files.items())
    )
    return hashlib.sha256(lines.encode()).hexdigest()[:24]


def put_model(store: S3Store, folder: str, files: dict[str, bytes]) -> None:
    for path, body in files.items():
        store.put(f"{folder}/{path}", body)


@pytest.fixture(scope="module")
def zoo(s3_store: S3Store, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """`zoo/benign` (a torch state dict and a config), `zoo/evil` (a pickle that runs a shell command,
    one folder down) and `zoo/empty/` (only a folder marker)."""
    work = tmp_path_factory.mktemp("s3-samples")
    models = {
        "benign": {"model.pt": torch_samples.state_dict_pt(work).read_bytes(), "config.json": CONFIG},
        "evil": {"weights/model.pkl": pickles.os_system(str(work / "marker"))},
    }
    for name, files in models.items():
        put_model(s3_store, f"zoo/{name}", files)
    s3_store.put("zoo/empty/", b"")
    return models


def zoo_connector(store: S3Store, prefix: str = "zoo") -> S3Connector:
    made = connector_for(
        f"s3://{store.bucket}/{prefix}", ConnectorSettings(s3_endpoint_url=store.endpoint_url)
    )
    assert isinstance(made, S3Connector)
    return made


def test_addresses_split_into_bucket_and_prefix() -> None:
    assert parse_s3_address("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_s3_address("s3://bucket") == ("bucket", "")
    with pytest.raises(SourceError, match="no bucket"):
        parse_s3_address("s3:///a")
    with pytest.raises(SourceError, match="could leave"):
        parse_s3_address("s3://bucket/a/../b")


def test_first_level_folders_are_the_models(s3_store: S3Store, zoo: dict[str, dict[str, bytes]]) -> None:
    connector = zoo_connector(s3_store)
    assert connector.source == f"s3://{s3_store.bucket}/zoo"
    assert list(connector.list_models()) == ["benign", "empty", "evil"]
    assert list(connector.list_versions("empty")) == []


def test_a_version_is_the_digest_of_the_folder_listing(
    s3_store: S3Store, zoo: dict[str, dict[str, bytes]]
) -> None:
    connector = zoo_connector(s3_store)
    [version] = connector.list_versions("benign")
    address = f"s3://{s3_store.bucket}/zoo/benign"
    assert (version.source, version.model, version.version) == (
        connector.source,
        "benign",
        listing_digest(zoo["benign"]),
    )
    assert version.address == address
    assert version.origin == f"{address} at {s3_store.endpoint_url}"
    assert version.created_at is not None and version.created_at.endswith("+00:00")
    assert version.labels == ()
    assert connector.resolve(address) == version


def test_a_prefix_holding_objects_directly_is_one_model(
    s3_store: S3Store, zoo: dict[str, dict[str, bytes]]
) -> None:
    address = f"s3://{s3_store.bucket}/zoo/benign"
    connector = zoo_connector(s3_store, "zoo/benign")
    assert list(connector.list_models()) == ["benign"]
    version = connector.resolve(address)
    assert (version.source, version.model, version.address) == (address, "benign", address)
    assert version.version == listing_digest(zoo["benign"])
    assert list(connector.list_versions("benign")) == [version]


def test_an_address_given_to_scan_is_the_whole_folder(
    s3_store: S3Store, zoo: dict[str, dict[str, bytes]]
) -> None:
    """`modelshield scan s3://bucket/zoo/evil` names one model even though its files sit in a subfolder."""
    address = f"s3://{s3_store.bucket}/zoo/evil"
    connector = connector_for(address, ConnectorSettings(s3_endpoint_url=s3_store.endpoint_url))
    assert list(connector.list_models()) == ["weights"]
    version = connector.resolve(address)
    assert (version.model, version.version) == ("evil", listing_digest(zoo["evil"]))
    assert [f.path for f in connector.list_files(version)] == ["weights/model.pkl"]


def test_resolve_refuses_an_address_outside_the_source(
    s3_store: S3Store, zoo: dict[str, dict[str, bytes]]
) -> None:
    connector = zoo_connector(s3_store)
    with pytest.raises(SourceError, match="is not under"):
        connector.resolve(f"s3://{s3_store.bucket}/other/benign")
    with pytest.raises(SourceError, match="no objects under"):
        connector.resolve(f"s3://{s3_store.bucket}/zoo/missing")


def test_files_are_listed_with_sizes(s3_store: S3Store, zoo: dict[str, dict[str, bytes]]) -> None:
    connector = zoo_connector(s3_store)
    [version] = connector.list_versions("evil")
    body = zoo["evil"]["weights/model.pkl"]
    assert connector.list_files(version) == [RemoteFile(path="weights/model.pkl", size=len(body))]


def test_download_writes_the_version_byte_for_byte(
    s3_store: S3Store, zoo: dict[str, dict[str, bytes]], tmp_path: Path
) -> None:
    connector = zoo_connector(s3_store)
    [version] = connector.list_versions("benign")
    root = connector.download(version, tmp_path / "benign", DownloadBudget())
    written = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert written == zoo["benign"]


def test_download_over_the_byte_budget_writes_nothing(
    s3_store: S3Store, zoo: dict[str, dict[str, bytes]], tmp_path: Path
) -> None:
    connector = zoo_connector(s3_store)
    [version] = connector.list_versions("benign")
    total = sum(len(body) for body in zoo["benign"].values())
    with pytest.raises(DownloadTooLarge, match=f"declared size {total} bytes"):
        connector.download(version, tmp_path / "dest", DownloadBudget(max_bytes=total - 1))
    assert list((tmp_path / "dest").iterdir()) == []
    with pytest.raises(DownloadTooLarge, match="2 files exceed the budget of 1 files"):
        connector.download(version, tmp_path / "dest", DownloadBudget(max_files=1))


def test_download_refuses_a_destination_that_is_not_empty(
    s3_store: S3Store, zoo: dict[str, dict[str, bytes]], tmp_path: Path
) -> None:
    connector = zoo_connector(s3_store)
    [version] = connector.list_versions("evil")
    (tmp_path / "leftover").write_bytes(b"x")
    with pytest.raises(SourceError, match="not empty"):
        connector.download(version, tmp_path, DownloadBudget())


def test_a_changed_object_is_a_new_version_and_the_old_one_is_not_downloaded(
    s3_store: S3Store, tmp_path: Path
) -> None:
    files = {"model.pkl": pickles.benign_state()}
    put_model(s3_store, "mutable/m", files)
    connector = zoo_connector(s3_store, "mutable")
    [first] = connector.list_versions("m")
    changed = {"model.pkl": pickles.os_system(str(tmp_path / "marker"))}
    put_model(s3_store, "mutable/m", changed)
    [second] = connector.list_versions("m")
    assert (first.version, second.version) == (listing_digest(files), listing_digest(changed))
    with pytest.raises(SourceError, match=f"changed since version {first.version}"):
        connector.download(first, tmp_path / "old", DownloadBudget())
    root = connector.download(second, tmp_path / "new", DownloadBudget())
    assert (root / "model.pkl").read_bytes() == changed["model.pkl"]


def test_a_key_that_climbs_out_of_its_folder_is_refused(s3_store: S3Store, tmp_path: Path) -> None:
    s3_store.put("climb/m/../../escape.pkl", pickles.benign_state())
    connector = zoo_connector(s3_store, "climb")
    with pytest.raises(SourceError, match="could leave the download"):
        list(connector.list_versions("m"))


def test_no_verdict_is_written_to_s3(s3_store: S3Store, zoo: dict[str, dict[str, bytes]]) -> None:
    connector = zoo_connector(s3_store)
    [version] = connector.list_versions("evil")
    assert connector.write_verdict(version, {"modelshield.verdict": "malicious"}) is False
    assert (
        s3_store.client.get_object_tagging(Bucket=s3_store.bucket, Key="zoo/evil/weights/model.pkl")["TagSet"]
        == []
    )


def test_an_s3_prefix_syncs_into_the_inventory(
    s3_store: S3Store, zoo: dict[str, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`inventory add s3://…` then `sync`: one version per folder, judged, nothing written back to S3."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_store.endpoint_url)
    db, source = f"sqlite:///{tmp_path / 'inventory.db'}", f"s3://{s3_store.bucket}/zoo"
    assert (
        CliRunner().invoke(cli, ["inventory", "--db", db, "add", source]).output
        == f"added source {source} (s3)\n"
    )
    runs = [CliRunner().invoke(cli, ["inventory", "--db", db, "sync", "--format", "json"]) for _ in range(2)]
    assert [r.exit_code for r in runs] == [EXIT_OK, EXIT_OK], runs[0].output
    first, second = (json.loads(r.output)["versions"] for r in runs)
    assert [(o["model"], o["version"], o["status"], o["verdict"], o["verdict_written"]) for o in first] == [
        ("benign", listing_digest(zoo["benign"]), "scanned", "clean", False),
        ("evil", listing_digest(zoo["evil"]), "scanned", "malicious", False),
    ]
    assert [(o["model"], o["status"]) for o in second] == [("benign", "unchanged"), ("evil", "unchanged")]
