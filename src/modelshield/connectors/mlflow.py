"""MLflow model registry: registered models and their versions, artifacts downloaded under the budget,
verdicts written back as model-version tags."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from modelshield.connectors._download import (
    DownloadTally,
    check_listed_path,
    empty_destination,
    only_expected_files,
)
from modelshield.connectors.base import DownloadBudget, RemoteFile, SourceError, VersionRef

if TYPE_CHECKING:
    from modelshield.connectors import ConnectorSettings

SOURCE_PREFIX = "mlflow+"
MODELS_PREFIX = "models:/"
_PAGE_SIZE = 500
_MAX_LISTED_FILES = 100_000
_MAX_ARTIFACT_DEPTH = 64
_CHUNK_BYTES = 1024 * 1024
_CONNECT_TIMEOUT_SECONDS = 10.0


def connector_for(address: str, settings: ConnectorSettings) -> MlflowConnector:
    """`mlflow+http://host:5000` names the tracking server itself; `models:/name/3` and
    `models:/name@alias` use the tracking URI from the settings (`--mlflow-uri`, MLFLOW_TRACKING_URI)."""
    if address.startswith(SOURCE_PREFIX):
        return MlflowConnector(address[len(SOURCE_PREFIX) :])
    if address.startswith(MODELS_PREFIX):
        if not settings.mlflow_tracking_uri:
            raise SourceError(
                f"{address} needs an MLflow tracking server: pass --mlflow-uri or set MLFLOW_TRACKING_URI"
            )
        return MlflowConnector(settings.mlflow_tracking_uri)
    raise SourceError(f"not an MLflow address: {address!r} (expected models:/NAME/VERSION or mlflow+URI)")


def parse_models_address(address: str) -> tuple[str, str | None, str | None]:
    """`models:/name/3` -> (name, "3", None); `models:/name@champion` -> (name, None, "champion");
    `models:/name/latest` -> (name, "latest", None)."""
    if not address.startswith(MODELS_PREFIX) or address.startswith(MODELS_PREFIX + "/"):
        raise SourceError(f"expected models:/NAME/VERSION or models:/NAME@ALIAS, got {address!r}")
    rest = address[len(MODELS_PREFIX) :].rstrip("/")
    name, at, alias = rest.rpartition("@")
    if at and name and alias and "/" not in alias:
        return name, None, alias
    name, slash, version = rest.rpartition("/")
    if not slash or not name or not (version.isdigit() or version == "latest"):
        raise SourceError(
            f"expected models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest, got {address!r}"
        )
    return name, version, None


@contextmanager
def _registry_errors(what: str) -> Iterator[None]:
    """MLflow and HTTP failures become SourceError with what we were doing."""
    from mlflow.exceptions import MlflowException
    from requests import RequestException

    try:
        yield
    except (MlflowException, RequestException, OSError) as error:
        raise SourceError(f"MLflow: {what} failed: {error}") from error


def _iso_utc(milliseconds: int | None) -> str | None:
    if milliseconds is None:
        return None
    return datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def _name_filter(name: str) -> str:
    if "'" not in name:
        return f"name = '{name}'"
    if '"' not in name:
        return f'name = "{name}"'
    raise SourceError(f"MLflow: cannot search the versions of a name holding both quote kinds: {name!r}")


class MlflowConnector:
    """One MLflow tracking server (or any tracking URI) and its model registry."""

    scheme = "models"

    def __init__(self, tracking_uri: str) -> None:
        if not tracking_uri:
            raise SourceError("MLflow: empty tracking URI")
        self.tracking_uri = tracking_uri.rstrip("/")
        self._client_instance: Any = None

    @property
    def source(self) -> str:
        return SOURCE_PREFIX + self.tracking_uri

    @property
    def _client(self) -> Any:
        if self._client_instance is None:
            from mlflow.tracking import MlflowClient

            self._check_reachable()
            uri = self.tracking_uri
            self._client_instance = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return self._client_instance

    def _check_reachable(self) -> None:
        """MLflow's client retries a refused connection for about four minutes; a tracking server that
        cannot even be connected to is reported at once instead."""
        parts = urlsplit(self.tracking_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=_CONNECT_TIMEOUT_SECONDS).close()
        except OSError as error:
            raise SourceError(
                f"MLflow: cannot reach the tracking server {self.tracking_uri}: {error}"
            ) from None

    def list_models(self) -> Iterator[str]:
        names: list[str] = []
        token: str | None = None
        with _registry_errors("listing registered models"):
            while True:
                page = self._client.search_registered_models(max_results=_PAGE_SIZE, page_token=token)
                names.extend(model.name for model in page)
                token = page.token
                if not token:
                    break
        yield from sorted(names)

    def list_versions(self, model: str) -> Iterator[VersionRef]:
        found: list[Any] = []
        token: str | None = None
        with _registry_errors(f"listing the versions of {model}"):
            aliases = self._aliases(model)
            while True:
                page = self._client.search_model_versions(
                    filter_string=_name_filter(model), max_results=_PAGE_SIZE, page_token=token
                )
                found.extend(mv for mv in page if mv.name == model)
                token = page.token
                if not token:
                    break
        for mv in sorted(found, key=lambda mv: int(mv.version)):
            yield self._version_ref(mv, aliases)

    def resolve(self, address: str) -> VersionRef:
        name, version, alias = parse_models_address(address)
        with _registry_errors(f"resolving {address}"):
            aliases = self._aliases(name)
            if alias is not None:
                return self._version_ref(self._client.get_model_version_by_alias(name, alias), aliases)
        if version == "latest":
            versions = list(self.list_versions(name))
            if not versions:
                raise SourceError(f"MLflow: {name} has no versions")
            return versions[-1]
        with _registry_errors(f"resolving {address}"):
            return self._version_ref(self._client.get_model_version(name, version), aliases)

    def list_files(self, version: VersionRef) -> list[RemoteFile]:
        repo = self._artifact_repository(version)
        files: list[RemoteFile] = []
        pending: list[tuple[str, int]] = [("", 0)]
        with _registry_errors(f"listing the artifacts of {version.address}"):
            while pending:
                folder, depth = pending.pop()
                for info in repo.list_artifacts(folder or None):
                    path = check_listed_path(str(info.path))
                    if folder and not path.startswith(folder + "/"):
                        raise SourceError(f"MLflow: listing {folder!r} returned a path outside it: {path!r}")
                    if info.is_dir:
                        if depth >= _MAX_ARTIFACT_DEPTH:
                            raise SourceError(f"MLflow: {version.address} nests too deep at {path}")
                        pending.append((path, depth + 1))
                    else:
                        files.append(RemoteFile(path=path, size=info.file_size))
                    if len(files) + len(pending) > _MAX_LISTED_FILES:
                        raise SourceError(f"MLflow: {version.address} lists over {_MAX_LISTED_FILES} files")
        return sorted(files, key=lambda f: f.path)

    def download(self, version: VersionRef, dest: Path, budget: DownloadBudget) -> Path:
        files = self.list_files(version)
        root = empty_destination(dest)
        tally = DownloadTally(root, budget)
        tally.check_declared(files)
        repo = self._artifact_repository(version)
        from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

        with _registry_errors(f"downloading {version.address}"):
            for remote in files:
                if isinstance(repo, HttpArtifactRepository):
                    self._stream_file(repo, remote, tally)
                else:
                    # Other stores (local folders, cloud buckets) are written by MLflow itself; the
                    # budget and the file's declared size are checked right after each file.
                    tally.target(remote.path)
                    repo.download_artifacts(remote.path, dst_path=str(root))
                    tally.account(remote.path, remote.size)
        only_expected_files(root, [remote.path for remote in files])
        return root

    def write_verdict(self, version: VersionRef, tags: Mapping[str, str]) -> bool:
        with _registry_errors(f"tagging {version.address}"):
            for key, value in tags.items():
                self._client.set_model_version_tag(version.model, version.version, key, value)
        return True

    def _aliases(self, name: str) -> dict[str, list[str]]:
        """version -> its aliases (the registered model holds them; version listings may not)."""
        by_version: dict[str, list[str]] = {}
        for alias, version in (self._client.get_registered_model(name).aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        return by_version

    def _version_ref(self, mv: Any, aliases: Mapping[str, list[str]]) -> VersionRef:
        version = str(mv.version)
        return VersionRef(
            source=self.source,
            model=mv.name,
            version=version,
            address=f"{MODELS_PREFIX}{mv.name}/{version}",
            origin=mv.source or "",
            created_at=_iso_utc(mv.creation_timestamp),
            labels=tuple(sorted(set(aliases.get(version, [])) | set(mv.aliases or []))),
        )

    def _artifact_repository(self, version: VersionRef) -> Any:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        with _registry_errors(f"locating the artifacts of {version.address}"):
            uri = self._client.get_model_version_download_uri(version.model, version.version)
            return get_artifact_repository(uri, tracking_uri=self.tracking_uri)

    @staticmethod
    def _stream_file(repo: Any, remote: RemoteFile, tally: DownloadTally) -> None:
        """GET one artifact through the tracking server, counting bytes as they arrive."""
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.request_utils import augmented_raise_for_status
        from mlflow.utils.rest_utils import http_request

        credentials = get_default_host_creds(repo.artifact_uri)  # type: ignore[no-untyped-call]
        response = http_request(credentials, "/" + quote(remote.path), "GET", stream=True)  # type: ignore[no-untyped-call]
        with closing(response):
            augmented_raise_for_status(response)  # type: ignore[no-untyped-call]
            tally.write(remote.path, response.iter_content(chunk_size=_CHUNK_BYTES), remote.size)
