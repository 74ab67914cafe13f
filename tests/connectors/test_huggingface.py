"""The Hugging Face connector against a hub-compatible server: pinning, listing, bounded downloads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.connectors.hub_server import (
    CONFIG_JSON,
    MALICIOUS_PICKLE,
    HubServer,
    hub_fixture,  # noqa: F401 - provides the `hub` fixture
    tiny_safetensors,
)

from modelshield.connectors import ConnectorSettings, DownloadBudget, RemoteFile, VersionRef, connector_for
from modelshield.connectors.base import DownloadTooLarge, SourceError
from modelshield.connectors.huggingface import HubAddress, HuggingFaceConnector, parse_address


def connector(server: HubServer) -> HuggingFaceConnector:
    made = connector_for("hf://acme", ConnectorSettings(hf_endpoint=server.url))
    assert isinstance(made, HuggingFaceConnector)
    return made


def head(server: HubServer, repo_id: str) -> str:
    return server.repos[repo_id].commits[-1].sha


def test_resolve_pins_a_branch_to_its_commit(hub: HubServer) -> None:
    sha = head(hub, "acme/benign")
    assert connector(hub).resolve("hf://acme/benign@main") == VersionRef(
        source="hf://",
        model="acme/benign",
        version=sha,
        address=f"hf://acme/benign@{sha}",
        origin=f"{hub.url}/acme/benign",
        labels=("main",),
    )


def test_resolve_without_revision_means_main(hub: HubServer) -> None:
    version = connector(hub).resolve("hf://acme/evolving")
    assert (version.version, version.labels) == (head(hub, "acme/evolving"), ("main",))


def test_resolve_pins_a_tag_to_the_older_commit(hub: HubServer) -> None:
    first = hub.repos["acme/evolving"].commits[0].sha
    version = connector(hub).resolve("hf://acme/evolving@v1")
    assert (version.version, version.labels) == (first, ("v1",))
    assert version.address == f"hf://acme/evolving@{first}"


def test_resolve_of_a_commit_sha_keeps_it_and_adds_no_label(hub: HubServer) -> None:
    first = hub.repos["acme/evolving"].commits[0].sha
    version = connector(hub).resolve(f"hf://acme/evolving@{first}")
    assert (version.version, version.labels) == (first, ())


def test_unknown_repository_and_revision_are_source_errors(hub: HubServer) -> None:
    with pytest.raises(SourceError, match="Repository Not Found"):
        connector(hub).resolve("hf://acme/absent")
    with pytest.raises(SourceError, match="Revision Not Found"):
        connector(hub).resolve("hf://acme/benign@no-such-branch")


def test_list_versions_is_every_commit_of_main_oldest_first(hub: HubServer) -> None:
    first, second = (c.sha for c in hub.repos["acme/evolving"].commits)
    versions = list(connector(hub).list_versions("acme/evolving"))
    assert [(v.version, v.labels, v.created_at) for v in versions] == [
        (first, (), "2026-01-01T12:00:00+00:00"),
        (second, ("main",), "2026-01-02T12:00:00+00:00"),
    ]
    assert versions[1].address == f"hf://acme/evolving@{second}"


def test_list_models_lists_the_namespace(hub: HubServer) -> None:
    assert list(connector(hub).list_models()) == [
        "acme/benign",
        "acme/climber",
        "acme/evil",
        "acme/evolving",
        "acme/liar",
        "acme/swapped",
        "acme/tampered",
    ]


def test_list_models_without_a_namespace_is_refused(hub: HubServer) -> None:
    with pytest.raises(SourceError, match="needs a namespace"):
        list(connector_for("hf://", ConnectorSettings(hf_endpoint=hub.url)).list_models())


def test_list_files_has_sizes_and_lfs_hashes(hub: HubServer) -> None:
    hub_connector = connector(hub)
    files = hub_connector.list_files(hub_connector.resolve("hf://acme/evil"))
    assert files == [
        RemoteFile("config.json", len(CONFIG_JSON), None),
        RemoteFile("weights/model.pkl", len(MALICIOUS_PICKLE), hashlib.sha256(MALICIOUS_PICKLE).hexdigest()),
    ]


def test_list_files_refuses_a_path_that_climbs(hub: HubServer) -> None:
    hub_connector = connector(hub)
    with pytest.raises(SourceError, match=r"'\.\./outside\.pkl'"):
        hub_connector.list_files(hub_connector.resolve("hf://acme/climber"))


def test_download_writes_the_pinned_files(hub: HubServer, tmp_path: Path) -> None:
    hub_connector = connector(hub)
    version = hub_connector.resolve("hf://acme/benign")
    root = hub_connector.download(version, tmp_path / "out", DownloadBudget())
    assert root == (tmp_path / "out").resolve()
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert written == ["config.json", "model.safetensors"]
    assert (root / "model.safetensors").read_bytes() == tiny_safetensors()
    assert (root / "config.json").read_bytes() == CONFIG_JSON
    sha = version.version
    assert hub.downloads() == [
        f"/acme/benign/resolve/{sha}/config.json",
        f"/acme/benign/resolve/{sha}/model.safetensors",
        f"/lfs-objects/acme/benign/{sha}/model.safetensors",
    ]


def test_download_of_a_climbing_path_writes_and_fetches_nothing(hub: HubServer, tmp_path: Path) -> None:
    hub_connector = connector(hub)
    version = hub_connector.resolve("hf://acme/climber")
    with pytest.raises(SourceError, match="could leave the download"):
        hub_connector.download(version, tmp_path / "out", DownloadBudget())
    assert hub.downloads() == []
    assert not (tmp_path / "outside.pkl").exists()
    assert list(tmp_path.rglob("*.pkl")) == []


def test_download_over_the_listed_budget_is_refused_before_any_byte(hub: HubServer, tmp_path: Path) -> None:
    hub_connector = connector(hub)
    version = hub_connector.resolve("hf://acme/benign")
    with pytest.raises(DownloadTooLarge, match="exceeds the download budget of 64 bytes"):
        hub_connector.download(version, tmp_path / "out", DownloadBudget(max_bytes=64))
    with pytest.raises(DownloadTooLarge, match="2 files exceed the budget of 1 files"):
        hub_connector.download(version, tmp_path / "out", DownloadBudget(max_files=1))
    assert hub.downloads() == []
    assert list((tmp_path / "out").iterdir()) == []


def test_a_server_sending_more_than_it_listed_stops_at_the_budget(hub: HubServer, tmp_path: Path) -> None:
    hub_connector = connector(hub)
    version = hub_connector.resolve("hf://acme/liar")  # lists 10 bytes, sends 1 MiB
    with pytest.raises(DownloadTooLarge, match="big.bin crosses the download budget of 65536 bytes"):
        hub_connector.download(version, tmp_path / "out", DownloadBudget(max_bytes=64 * 1024))
    assert list((tmp_path / "out").iterdir()) == []


def test_a_server_sending_more_than_it_listed_within_budget_is_a_size_mismatch(
    hub: HubServer, tmp_path: Path
) -> None:
    hub_connector = connector(hub)
    version = hub_connector.resolve("hf://acme/liar")
    with pytest.raises(SourceError, match="big.bin is 1048576 bytes, but the registry declared 10 bytes"):
        hub_connector.download(version, tmp_path / "out", DownloadBudget())
    assert list((tmp_path / "out").iterdir()) == []


def test_lfs_content_that_differs_from_its_sha256_is_refused(hub: HubServer, tmp_path: Path) -> None:
    hub_connector = connector(hub)
    version = hub_connector.resolve("hf://acme/tampered")
    listed = hashlib.sha256(tiny_safetensors()).hexdigest()
    with pytest.raises(SourceError, match=f"the hub lists {listed}"):
        hub_connector.download(version, tmp_path / "out", DownloadBudget())
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_a_regular_file_that_differs_from_its_git_object_id_is_refused(
    hub: HubServer, tmp_path: Path
) -> None:
    hub_connector = connector(hub)
    version = hub_connector.resolve("hf://acme/swapped")  # same length, one byte changed
    listed = hub.repos["acme/swapped"].commits[0].files[0].blob_id
    with pytest.raises(
        SourceError, match=f"config.json has git object id [0-9a-f]{{40}}, the hub lists {listed}"
    ):
        hub_connector.download(version, tmp_path / "out", DownloadBudget())
    assert list((tmp_path / "out").iterdir()) == []


def test_download_refuses_a_destination_that_is_not_empty(hub: HubServer, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    hub_connector = connector(hub)
    with pytest.raises(SourceError, match="not empty"):
        hub_connector.download(hub_connector.resolve("hf://acme/benign"), tmp_path / "out", DownloadBudget())
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_write_verdict_has_nowhere_to_go(hub: HubServer) -> None:
    hub_connector = connector(hub)
    version = hub_connector.resolve("hf://acme/benign")
    assert hub_connector.write_verdict(version, {"verdict": "clean"}) is False


def test_endpoint_comes_from_hf_endpoint_when_settings_have_none(hub: HubServer) -> None:
    made = connector_for("hf://acme/benign", ConnectorSettings.from_environment())
    assert isinstance(made, HuggingFaceConnector)
    assert (made.endpoint, made.namespace) == (hub.url, "acme")


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("hf://acme/benign", HubAddress("acme", "benign", None)),
        ("hf://acme/benign@v1.0", HubAddress("acme", "benign", "v1.0")),
        ("hf://acme/benign@refs/pr/1", HubAddress("acme", "benign", "refs/pr/1")),
        ("hf://acme", HubAddress("acme")),
        ("hf://", HubAddress(None)),
    ],
)
def test_parse_address(address: str, parsed: HubAddress) -> None:
    assert parse_address(address) == parsed


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("hf://acme/benign/extra", "expected hf://org/name"),
        ("hf://../benign", "expected hf://org/name"),
        ("hf://acme/be nign", "expected hf://org/name"),
        ("hf://datasets/acme/data", "only model repositories"),
        ("hf://acme@main", "a revision needs a repository"),
        ("hf://acme/benign@", "invalid revision"),
        ("hf://acme/benign@a..b", "invalid revision"),
        ("s3://bucket/x", "not a Hugging Face address"),
    ],
)
def test_parse_address_refuses(address: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_address(address)


def test_the_fixture_serves_what_hf_hub_download_expects(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download("acme/benign", "model.safetensors", endpoint=hub.url, cache_dir=tmp_path / "c")
    assert Path(path).read_bytes() == tiny_safetensors()
    assert f"/snapshots/{head(hub, 'acme/benign')}/" in Path(path).as_posix()


def test_the_token_goes_to_the_hub_but_not_to_its_storage_host(hub: HubServer, tmp_path: Path) -> None:
    made = connector_for("hf://acme", ConnectorSettings(hf_endpoint=hub.url, hf_token="hf_secret"))
    version = made.resolve("hf://acme/benign")
    made.download(version, tmp_path / "out", DownloadBudget())
    sha = version.version
    assert hub.authorization["/api/models/acme/benign/revision/main"] == "Bearer hf_secret"
    assert hub.authorization[f"/acme/benign/resolve/{sha}/model.safetensors"] == "Bearer hf_secret"
    assert hub.authorization[f"/lfs-objects/acme/benign/{sha}/model.safetensors"] is None
