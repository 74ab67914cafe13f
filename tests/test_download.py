"""Scan on download (`modelshield.download`): a version is handed over only after its scan passed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.connectors import moto_server
from tests.connectors.hub_server import (
    CONFIG_JSON,
    MALICIOUS_PICKLE,
    HubServer,
    hub_fixture,  # noqa: F401 - provides the `hub` fixture
    tiny_safetensors,
)
from tests.connectors.moto_server import S3Store

import modelshield
from modelshield import UnsafeModelError
from modelshield.connectors import ConnectorSettings, DownloadBudget
from modelshield.connectors.base import DownloadTooLarge, SourceError
from modelshield.errors import UsageError
from modelshield.policy.model import Policy
from modelshield.safe_download import download_scanned

s3_store = moto_server.s3_store


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "downloads"


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def head(server: HubServer, repo_id: str) -> str:
    return server.repos[repo_id].commits[-1].sha


def test_a_benign_version_lands_in_the_cache_under_its_commit(hub: HubServer, cache: Path) -> None:
    sha = head(hub, "acme/benign")
    path = modelshield.download("hf://acme/benign@main")
    assert path == cache / "hf" / "acme" / "benign" / sha
    assert (path / "model.safetensors").read_bytes() == tiny_safetensors()
    assert (path / "config.json").read_bytes() == CONFIG_JSON
    assert files_under(cache) == [
        f"hf/acme/benign/{sha}/config.json",
        f"hf/acme/benign/{sha}/model.safetensors",
    ]


def test_the_result_names_each_file_by_the_pinned_address(hub: HubServer, cache: Path) -> None:
    sha = head(hub, "acme/benign")
    scanned = download_scanned("hf://acme/benign", Policy())
    assert [f.path for f in scanned.result.files] == [
        f"hf://acme/benign@{sha}/config.json",
        f"hf://acme/benign@{sha}/model.safetensors",
    ]
    assert scanned.version.address == f"hf://acme/benign@{sha}"
    assert scanned.result.fully_scanned
    assert scanned.reused is False


def test_a_malicious_version_is_refused_and_nothing_is_left(hub: HubServer, cache: Path) -> None:
    sha = head(hub, "acme/evil")
    with pytest.raises(UnsafeModelError) as refused:
        modelshield.download("hf://acme/evil")
    found = [(f.rule_id, f.location.chain[0]) for f in refused.value.findings]
    assert ("PICKLE-DANGEROUS-CALL", f"hf://acme/evil@{sha}/weights/model.pkl") in found
    assert files_under(cache) == []
    assert not (cache / "hf" / "acme" / "evil").exists()


def test_a_tag_is_pinned_to_its_commit_and_the_newer_malicious_commit_is_refused(
    hub: HubServer, cache: Path
) -> None:
    first, second = (c.sha for c in hub.repos["acme/evolving"].commits)
    assert modelshield.download("hf://acme/evolving@v1") == cache / "hf" / "acme" / "evolving" / first
    with pytest.raises(UnsafeModelError):
        modelshield.download("hf://acme/evolving@main")
    assert files_under(cache) == [f"hf/acme/evolving/{first}/config.json"]
    assert not (cache / "hf" / "acme" / "evolving" / second).exists()


def test_dest_receives_the_version(hub: HubServer, cache: Path, tmp_path: Path) -> None:
    path = modelshield.download("hf://acme/benign", dest=tmp_path / "models" / "benign")
    assert path == tmp_path / "models" / "benign"
    assert files_under(path) == ["config.json", "model.safetensors"]
    assert files_under(cache) == []


def test_a_refused_version_leaves_dest_absent(hub: HubServer, cache: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsafeModelError):
        modelshield.download("hf://acme/evil", dest=tmp_path / "models" / "evil")
    assert not (tmp_path / "models" / "evil").exists()
    assert files_under(tmp_path / "models") == []


def test_a_dest_that_holds_files_is_refused_before_downloading(
    hub: HubServer, cache: Path, tmp_path: Path
) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep")
    with pytest.raises(UsageError, match="not an empty directory"):
        modelshield.download("hf://acme/benign", dest=tmp_path / "busy")
    assert hub.downloads() == []
    assert files_under(tmp_path / "busy") == ["mine.txt"]


def test_over_budget_is_refused_and_nothing_is_left(hub: HubServer, cache: Path) -> None:
    with pytest.raises(DownloadTooLarge, match="65536 bytes"):
        modelshield.download("hf://acme/liar", budget=DownloadBudget(max_bytes=64 * 1024))
    assert files_under(cache) == []


def test_a_path_with_dot_dot_is_refused_and_nothing_is_fetched(hub: HubServer, cache: Path) -> None:
    with pytest.raises(SourceError, match="could leave the download"):
        modelshield.download("hf://acme/climber")
    assert hub.downloads() == []
    assert files_under(cache) == []


def test_a_cached_version_is_scanned_again_not_downloaded(hub: HubServer, cache: Path) -> None:
    first = download_scanned("hf://acme/benign", Policy())
    fetched = len(hub.downloads())
    again = download_scanned("hf://acme/benign", Policy())
    assert (again.path, again.reused) == (first.path, True)
    assert len(hub.downloads()) == fetched


def test_a_cached_version_that_no_longer_passes_is_removed(hub: HubServer, cache: Path) -> None:
    path = modelshield.download("hf://acme/benign")
    (path / "model.safetensors").write_bytes(MALICIOUS_PICKLE)  # the cache was tampered with
    with pytest.raises(UnsafeModelError):
        modelshield.download("hf://acme/benign")
    assert not path.exists()


def test_fail_on_and_settings_are_honoured(hub: HubServer, cache: Path, tmp_path: Path) -> None:
    settings = ConnectorSettings(hf_endpoint=hub.url)
    with pytest.raises(UnsafeModelError, match="findings at or above critical"):
        modelshield.download("hf://acme/evil", fail_on="critical", settings=settings)


def test_a_local_path_is_not_a_download(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a remote model address"):
        modelshield.download(str(tmp_path))


def test_an_s3_model_is_downloaded_or_refused_the_same_way(s3_store: S3Store, cache: Path) -> None:
    store = s3_store
    store.put("downloads/benign/config.json", CONFIG_JSON)
    store.put("downloads/evil/model.pkl", MALICIOUS_PICKLE)
    settings = ConnectorSettings(s3_endpoint_url=store.endpoint_url)
    scanned = download_scanned(f"s3://{store.bucket}/downloads/benign", Policy(), settings=settings)
    assert files_under(scanned.path) == ["config.json"]
    assert scanned.path.parent.name == "benign"
    assert scanned.path.name == scanned.version.version
    with pytest.raises(UnsafeModelError) as refused:
        modelshield.download(f"s3://{store.bucket}/downloads/evil", settings=settings)
    found = [(f.rule_id, f.location.chain[0]) for f in refused.value.findings]
    assert ("PICKLE-DANGEROUS-CALL", f"s3://{store.bucket}/downloads/evil/model.pkl") in found
    assert [p.name for p in cache.rglob("*") if p.is_file()] == ["config.json"]


def test_a_cache_entry_that_is_a_link_is_not_followed(hub: HubServer, cache: Path, tmp_path: Path) -> None:
    path = modelshield.download("hf://acme/benign")
    elsewhere = tmp_path / "elsewhere"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    with pytest.raises(UsageError, match="is a symbolic link"):
        modelshield.download("hf://acme/benign")


def test_without_huggingface_hub_the_extra_is_named(
    hub: HubServer, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    monkeypatch.setitem(sys.modules, "huggingface_hub.errors", None)
    with pytest.raises(SourceError, match=r"pip install 'modelshield\[hf\]'"):
        modelshield.download("hf://acme/benign")
