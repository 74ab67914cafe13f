"""The `file` connector: models in a local folder, versions named by the digest of their file set."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from modelshield.connectors import (
    Connector,
    DownloadBudget,
    DownloadTooLarge,
    RemoteFile,
    SourceError,
    connector_for,
)
from modelshield.connectors.local import LocalFolderConnector
from modelshield.engine.hash_cache import FileStamp, HashCache


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for relative in sorted(files):
        h.update(f"{relative}\0{hashlib.sha256(files[relative]).hexdigest()}\n".encode())
    return h.hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "models"
    write(base / "alpha" / "model.bin", b"alpha weights")
    write(base / "alpha" / "sub" / "config.json", b"{}")
    write(base / "beta" / "model.bin", b"beta weights")
    (base / ".cache").mkdir()
    return base


def test_connector_for_picks_the_local_connector_for_paths_and_file_uris(root: Path) -> None:
    by_path = connector_for(str(root))
    by_uri = connector_for(root.as_uri())

    assert isinstance(by_path, LocalFolderConnector) and isinstance(by_uri, LocalFolderConnector)
    assert isinstance(by_path, Connector)
    assert by_path.source == by_uri.source == root.resolve().as_uri()
    assert by_path.scheme == "file"


def test_each_subfolder_is_a_model_and_its_version_is_the_file_set_digest(root: Path) -> None:
    connector = connector_for(str(root))

    models = list(connector.list_models())
    versions = list(connector.list_versions("alpha"))

    assert models == ["alpha", "beta"]
    assert [v.version for v in versions] == [
        digest({"model.bin": b"alpha weights", "sub/config.json": b"{}"})
    ]
    assert versions[0].address == str(root.resolve() / "alpha")
    assert versions[0].source == root.resolve().as_uri()
    assert connector.list_files(versions[0]) == [
        RemoteFile("model.bin", 13, hashlib.sha256(b"alpha weights").hexdigest()),
        RemoteFile("sub/config.json", 2, hashlib.sha256(b"{}").hexdigest()),
    ]


def test_a_folder_holding_files_is_one_model(tmp_path: Path) -> None:
    folder = tmp_path / "single"
    write(folder / "model.bin", b"x")
    write(folder / "tokenizer" / "vocab.txt", b"a b")

    connector = connector_for(str(folder))

    assert list(connector.list_models()) == ["single"]
    (version,) = connector.list_versions("single")
    assert version.version == digest({"model.bin": b"x", "tokenizer/vocab.txt": b"a b"})
    assert connector.resolve(str(folder)) == version


def test_a_changed_file_changes_the_version(root: Path) -> None:
    connector = connector_for(str(root))
    (before,) = connector.list_versions("alpha")
    write(root / "alpha" / "model.bin", b"alpha weights, retrained")

    (after,) = connector.list_versions("alpha")

    assert after.version != before.version
    with pytest.raises(SourceError, match="no longer holds version"):
        connector.list_files(before)


def test_download_copies_the_files_and_checks_the_budget(root: Path, tmp_path: Path) -> None:
    connector = connector_for(str(root))
    (version,) = connector.list_versions("alpha")

    out = connector.download(version, tmp_path / "copy", DownloadBudget())

    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "model.bin",
        "sub/config.json",
    ]
    assert (out / "model.bin").read_bytes() == b"alpha weights"
    with pytest.raises(DownloadTooLarge, match="holds 15 bytes; the budget is 14"):
        connector.download(version, tmp_path / "small", DownloadBudget(max_bytes=14))
    with pytest.raises(DownloadTooLarge, match="has 2 files; the budget is 1"):
        connector.download(version, tmp_path / "few", DownloadBudget(max_files=1))
    assert not (tmp_path / "small").exists() and not (tmp_path / "few").exists()
    with pytest.raises(SourceError, match="not empty"):
        connector.download(version, out, DownloadBudget())


def test_links_out_of_the_folder_are_never_followed(root: Path, tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.txt", b"not a model")
    os.symlink(secret, root / "alpha" / "leak.bin")
    os.symlink(tmp_path, root / "beta" / "escape")
    os.symlink(root / "beta", root / "gamma")
    connector = connector_for(str(root))

    (alpha,) = connector.list_versions("alpha")
    (beta,) = connector.list_versions("beta")

    assert list(connector.list_models()) == ["alpha", "beta"]
    with pytest.raises(SourceError, match="alpha: leak.bin: link leaves the folder"):
        connector.list_files(alpha)
    with pytest.raises(SourceError, match="beta: escape: link leaves the folder"):
        connector.download(beta, tmp_path / "out", DownloadBudget())
    with pytest.raises(SourceError, match="no model 'gamma'"):
        list(connector.list_versions("gamma"))


def test_a_link_inside_the_model_is_read_as_the_file_it_names(root: Path) -> None:
    os.symlink(root / "alpha" / "model.bin", root / "alpha" / "alias.bin")
    connector = connector_for(str(root))

    (version,) = connector.list_versions("alpha")

    assert [(f.path, f.sha256) for f in connector.list_files(version)] == [
        ("alias.bin", hashlib.sha256(b"alpha weights").hexdigest()),
        ("model.bin", hashlib.sha256(b"alpha weights").hexdigest()),
        ("sub/config.json", hashlib.sha256(b"{}").hexdigest()),
    ]


def test_names_that_climb_out_are_not_models(root: Path) -> None:
    connector = connector_for(str(root))

    for name in ("..", "alpha/sub", "", "missing"):
        with pytest.raises(SourceError, match="no model"):
            list(connector.list_versions(name))


def test_resolve_pins_a_model_folder_and_refuses_other_places(root: Path, tmp_path: Path) -> None:
    connector = connector_for(str(root))

    assert connector.resolve(str(root / "beta")).version == digest({"model.bin": b"beta weights"})
    assert connector.resolve((root / "alpha" / "sub").as_uri()).model == "alpha"
    with pytest.raises(SourceError, match="is not inside"):
        connector.resolve(str(tmp_path))
    with pytest.raises(SourceError, match="holds 2 models"):
        connector.resolve(str(root))


def test_the_registry_has_nowhere_for_a_verdict(root: Path) -> None:
    connector = connector_for(str(root))
    (version,) = connector.list_versions("beta")

    assert connector.write_verdict(version, {"modelshield.verdict": "clean"}) is False


def test_a_missing_folder_or_a_remote_file_uri_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a folder of models"):
        connector_for(str(tmp_path / "absent"))
    with pytest.raises(SourceError, match="must name a local path"):
        connector_for("file://fileserver/share/models")


def test_hashes_come_from_the_hash_cache_and_a_copy_is_still_checked(root: Path, tmp_path: Path) -> None:
    cache = HashCache(tmp_path / "cache")
    model = root / "beta" / "model.bin"
    stamp = FileStamp.of(model.stat())
    assert stamp is not None
    cache.store(stamp, "0" * 64)  # a record that does not match the bytes: only a cache could say so
    cache.flush()
    connector = LocalFolderConnector(root, cache)

    (version,) = connector.list_versions("beta")

    assert connector.list_files(version) == [RemoteFile("model.bin", 12, "0" * 64)]
    with pytest.raises(SourceError, match="beta changed while it was copied"):
        connector.download(version, tmp_path / "out", DownloadBudget())


def test_a_file_hashed_once_settled_is_kept_in_the_hash_cache(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "old"
    model = write(folder / "model.bin", b"settled bytes")
    stamp = FileStamp.of(model.stat())
    assert stamp is not None
    cache = HashCache(tmp_path / "cache")
    fresh = LocalFolderConnector(tmp_path / "models", cache)

    list(fresh.list_versions("old"))  # just written: too recent to be trusted to a stamp

    assert HashCache(tmp_path / "cache").lookup(stamp) is None
    time.sleep(2.1)
    list(LocalFolderConnector(tmp_path / "models", cache).list_versions("old"))
    assert HashCache(tmp_path / "cache").lookup(stamp) == hashlib.sha256(b"settled bytes").hexdigest()
