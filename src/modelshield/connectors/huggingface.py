"""Hugging Face Hub connector: `hf://org/name[@revision]` pinned to a commit sha, its files streamed within a
budget and checked against the hub's listing (sizes, LFS sha256)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from modelshield.connectors._download import DownloadTally, check_listed_path, empty_destination
from modelshield.connectors.base import (
    DownloadBudget,
    RemoteFile,
    SourceError,
    VersionRef,
)

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from modelshield.connectors import ConnectorSettings

SCHEME_PREFIX = "hf://"
SOURCE = "hf://"
DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
CHUNK = 1024 * 1024
TIMEOUT_SECONDS = 60.0
MAX_ERROR_DETAIL = 400

# The hub's own rule for a user, organisation or repository name.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_REVISION_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]|\.\.")
_OTHER_REPO_TYPES = frozenset({"datasets", "spaces", "buckets", "kernels"})


@dataclass(frozen=True)
class HubAddress:
    """A parsed `hf://` address: a repository (with an optional revision) or, for listing, a namespace."""

    namespace: str | None
    name: str | None = None
    revision: str | None = None

    @property
    def repo_id(self) -> str | None:
        return f"{self.namespace}/{self.name}" if self.name is not None else None


def parse_address(address: str) -> HubAddress:
    """`hf://org/name`, `hf://org/name@rev` (branch, tag or commit), `hf://org` (a namespace) or `hf://`."""
    if not address.lower().startswith(SCHEME_PREFIX):
        raise SourceError(f"not a Hugging Face address (expected hf://org/name[@revision]): {address!r}")
    rest = address[len(SCHEME_PREFIX) :]
    repo_part, at, revision = rest.partition("@")
    if at and not _valid_revision(revision):
        raise SourceError(f"invalid revision {revision!r} in {address!r}")
    segments = repo_part.rstrip("/").split("/") if repo_part.strip("/") else []
    if segments and segments[0] in _OTHER_REPO_TYPES:
        raise SourceError(f"only model repositories are supported, not {segments[0]}: {address!r}")
    if any(not _NAME.fullmatch(segment) for segment in segments) or len(segments) > 2:
        raise SourceError(f"invalid Hugging Face address (expected hf://org/name[@revision]): {address!r}")
    if at and len(segments) != 2:
        raise SourceError(f"a revision needs a repository (hf://org/name@revision): {address!r}")
    if len(segments) == 2:
        return HubAddress(segments[0], segments[1], revision if at else None)
    return HubAddress(segments[0] if segments else None)


def _valid_revision(revision: str) -> bool:
    too_long = not 0 < len(revision) <= 255
    return not too_long and not _REVISION_FORBIDDEN.search(revision) and not revision.startswith("/")


class HuggingFaceConnector:
    """Models of one Hugging Face endpoint (the public hub or a compatible server), read through
    `huggingface_hub` for metadata and streamed by plain GETs for file content."""

    scheme = "hf"

    def __init__(self, endpoint: str, token: str | None = None, namespace: str | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.namespace = namespace
        self._client: HfApi | None = None

    @property
    def source(self) -> str:
        return SOURCE

    def list_models(self) -> Iterator[str]:
        """The model repositories of the namespace this connector was made for (`hf://org`): the whole
        hub is never walked."""
        if self.namespace is None:
            raise SourceError("listing models needs a namespace: use hf://<org or user>")
        with _hub_errors(f"listing the models of {self.namespace}"):
            names = sorted(model.id for model in self._api().list_models(author=self.namespace))
        yield from names

    def list_versions(self, model: str) -> Iterator[VersionRef]:
        """Every commit of the model's `main` branch, oldest first; the newest carries the label `main`."""
        _checked_repo_id(model)
        with _hub_errors(f"listing the commits of {model}"):
            commits = self._api().list_repo_commits(model, revision=DEFAULT_REVISION)
        newest_first = [commit for commit in commits if _COMMIT_SHA.fullmatch(commit.commit_id)]
        for index, commit in enumerate(reversed(newest_first)):
            is_head = index == len(newest_first) - 1
            yield self._version(
                model,
                commit.commit_id,
                labels=(DEFAULT_REVISION,) if is_head else (),
                created_at=commit.created_at.isoformat() if commit.created_at else None,
            )

    def resolve(self, address: str) -> VersionRef:
        parsed = parse_address(address)
        if parsed.repo_id is None:
            raise SourceError(f"not a model address (expected hf://org/name[@revision]): {address!r}")
        requested = parsed.revision or DEFAULT_REVISION
        with _hub_errors(f"resolving {address}"):
            info = self._api().model_info(parsed.repo_id, revision=requested)
        sha = (info.sha or "").lower()
        if not _COMMIT_SHA.fullmatch(sha):
            raise SourceError(f"the hub gave no commit sha for {address} (got {info.sha!r})")
        if _COMMIT_SHA.fullmatch(requested.lower()) and sha != requested.lower():
            raise SourceError(f"asked for commit {requested} of {parsed.repo_id}, the hub answered {sha}")
        labels = (requested,) if requested.lower() != sha else ()
        return self._version(parsed.repo_id, sha, labels=labels)

    def list_files(self, version: VersionRef) -> list[RemoteFile]:
        """The repository's files at the pinned commit, with sizes and, for LFS files, their sha256. A path
        that could leave a download directory is refused here already."""
        return [remote for remote, _ in self._listing(version)]

    def download(self, version: VersionRef, dest: Path, budget: DownloadBudget) -> Path:
        """Stream each file at the pinned commit into `dest`, counting every byte against the budget as it
        is written; each file's size and content hash (LFS sha256, else git object id) must match the
        commit's listing, so the files are exactly that commit's."""
        listing = self._listing(version)
        dest = empty_destination(dest)
        tally = DownloadTally(dest, budget)
        tally.check_declared([remote for remote, _ in listing])
        with _hub_errors(f"downloading {version.address}"):
            headers = self._headers()
            for remote, blob_id in listing:
                self._fetch(version, remote, blob_id, tally, headers)
        return dest

    def _listing(self, version: VersionRef) -> list[tuple[RemoteFile, str]]:
        """Each file of the commit with its git object id."""
        _checked_repo_id(version.model)
        with _hub_errors(f"listing the files of {version.address}"):
            entries = list(
                self._api().list_repo_tree(version.model, revision=version.version, recursive=True)
            )
        from huggingface_hub.hf_api import RepoFile

        files: list[tuple[RemoteFile, str]] = []
        for entry in entries:
            if not isinstance(entry, RepoFile):  # a folder
                continue
            check_listed_path(entry.path)
            sha256 = entry.lfs.sha256.lower() if entry.lfs is not None else None
            files.append((RemoteFile(entry.path, entry.size, sha256), entry.blob_id.lower()))
        return sorted(files, key=lambda listed: listed[0].path)

    def _fetch(
        self,
        version: VersionRef,
        remote: RemoteFile,
        blob_id: str,
        tally: DownloadTally,
        headers: dict[str, str],
    ) -> None:
        from huggingface_hub import get_session

        url = self._file_url(version, remote.path)
        digest, expected, kind = _expected_digest(remote, blob_id)
        with get_session().stream("GET", url, headers=headers, timeout=TIMEOUT_SECONDS) as response:
            if response.status_code != 200:
                raise SourceError(f"{version.address}: GET {remote.path} answered {response.status_code}")
            target = tally.write(remote.path, _hashed(response.iter_bytes(CHUNK), digest), remote.size)
        if digest.hexdigest() != expected:
            target.unlink()
            raise SourceError(
                f"{version.address}: {remote.path} has {kind} {digest.hexdigest()}, the hub lists {expected}"
            )

    def write_verdict(self, version: VersionRef, tags: Mapping[str, str]) -> bool:
        """The hub has no place for a third party's verdict on someone else's repository."""
        return False

    def _version(
        self, repo_id: str, sha: str, *, labels: tuple[str, ...] = (), created_at: str | None = None
    ) -> VersionRef:
        return VersionRef(
            source=SOURCE,
            model=repo_id,
            version=sha,
            address=f"{SCHEME_PREFIX}{repo_id}@{sha}",
            origin=f"{self.endpoint}/{repo_id}",
            created_at=created_at,
            labels=labels,
        )

    def _file_url(self, version: VersionRef, path: str) -> str:
        repo, file = quote(version.model, safe="/"), quote(path, safe="/")
        return f"{self.endpoint}/{repo}/resolve/{version.version}/{file}"

    def _headers(self) -> dict[str, str]:
        from huggingface_hub.utils._headers import build_hf_headers

        headers = build_hf_headers(
            token=self.token, library_name="modelshield", library_version=_tool_version()
        )
        # The listed size is the size on the hub; a transparently decompressed body would not match it.
        headers["Accept-Encoding"] = "identity"
        return headers

    def _api(self) -> HfApi:
        if self._client is None:
            from huggingface_hub import HfApi

            self._client = HfApi(
                endpoint=self.endpoint,
                token=self.token,
                library_name="modelshield",
                library_version=_tool_version(),
            )
        return self._client


def _expected_digest(remote: RemoteFile, blob_id: str) -> tuple[hashlib._Hash, str, str]:
    """The hash the hub's listing fixes for a file: the LFS sha256, else git's object id of the content
    (sha1 over `blob <size>\\0` and the bytes)."""
    if remote.sha256 is not None:
        return hashlib.sha256(), remote.sha256, "sha256"
    header = b"blob %d\0" % (remote.size or 0)
    return hashlib.sha1(header, usedforsecurity=False), blob_id, "git object id"


def _hashed(chunks: Iterator[bytes], digest: hashlib._Hash) -> Iterator[bytes]:
    for chunk in chunks:
        digest.update(chunk)
        yield chunk


def _tool_version() -> str:
    from modelshield import __version__

    return __version__


def _checked_repo_id(model: str) -> str:
    parts = model.split("/")
    if len(parts) != 2 or not all(_NAME.fullmatch(part) for part in parts):
        raise SourceError(f"invalid Hugging Face repository id {model!r} (expected org/name)")
    return model


@contextmanager
def _hub_errors(doing: str) -> Iterator[None]:
    """Turn the hub client's and the HTTP layer's failures into a SourceError that says what failed."""
    try:
        import httpx2
        from huggingface_hub.errors import HFValidationError
    except ImportError:
        raise SourceError("hf:// addresses need huggingface_hub: pip install 'modelshield[hf]'") from None
    try:
        yield
    except (OSError, HFValidationError, httpx2.HTTPError) as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise SourceError(f"{doing}: {detail[:MAX_ERROR_DETAIL] or type(exc).__name__}") from exc


def connector_for(address: str, settings: ConnectorSettings) -> HuggingFaceConnector:
    """A connector for an `hf://` address (a repository or a namespace); the endpoint is the settings',
    else HF_ENDPOINT, else the public hub."""
    parsed = parse_address(address)
    endpoint = settings.hf_endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    return HuggingFaceConnector(endpoint, token=settings.hf_token, namespace=parsed.namespace)
