"""S3 (and S3-compatible stores): the first-level folders under `s3://bucket/prefix` are models, and a
version is the digest of a model's object listing, so any changed, added or removed object is a new one."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelshield.connectors._download import DownloadTally, check_listed_path, empty_destination
from modelshield.connectors.base import DownloadBudget, RemoteFile, SourceError, VersionRef

if TYPE_CHECKING:
    from modelshield.connectors import ConnectorSettings

ADDRESS_PREFIX = "s3://"
_MAX_OBJECTS = 100_000
_CHUNK_BYTES = 1024 * 1024
_DIGEST_CHARS = 24


def connector_for(address: str, settings: ConnectorSettings) -> S3Connector:
    bucket, prefix = parse_s3_address(address)
    return S3Connector(bucket, prefix, endpoint_url=settings.s3_endpoint_url)


def parse_s3_address(address: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> ("bucket", "some/prefix")."""
    if not address.startswith(ADDRESS_PREFIX):
        raise SourceError(f"not an S3 address: {address!r} (expected s3://BUCKET/PREFIX)")
    bucket, _, prefix = address[len(ADDRESS_PREFIX) :].partition("/")
    if not bucket:
        raise SourceError(f"no bucket in {address!r}")
    prefix = prefix.strip("/")
    if prefix:
        check_listed_path(prefix)
    return bucket, prefix


@dataclass(frozen=True)
class _Object:
    path: str
    """The key relative to the model's folder."""
    key: str
    etag: str
    size: int
    modified: datetime


@contextmanager
def _store_errors(what: str) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise SourceError(f"S3: {what} failed: {error}") from error


def _folder(prefix: str) -> str:
    return f"{prefix}/" if prefix else ""


class S3Connector:
    """Models stored as folders of objects under one bucket prefix."""

    scheme = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._client_instance: Any = None

    @property
    def source(self) -> str:
        return f"{ADDRESS_PREFIX}{self.bucket}/{self.prefix}".rstrip("/")

    @property
    def _client(self) -> Any:
        if self._client_instance is None:
            import boto3  # type: ignore[import-untyped]

            # A session of our own: nothing leaks into, or is taken from, boto3's default session.
            self._client_instance = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url)
        return self._client_instance

    @property
    def _own_name(self) -> str:
        """The model name of the prefix itself, when it holds a model's objects directly."""
        return self.prefix.rsplit("/", 1)[-1] or self.bucket

    def list_models(self) -> Iterator[str]:
        if self._holds_objects_directly():
            yield self._own_name
            return
        folder = _folder(self.prefix)
        names: list[str] = []
        with _store_errors(f"listing the folders of {self.source}"):
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
                common_prefixes = page.get("CommonPrefixes", [])
                names.extend(common["Prefix"][len(folder) :].rstrip("/") for common in common_prefixes)
        yield from sorted(name for name in names if name)

    def list_versions(self, model: str) -> Iterator[VersionRef]:
        """The one version an S3 folder has: its current content."""
        key_prefix = self._model_folder(model)
        objects = self._objects(key_prefix)
        if objects:
            yield self._version(model, key_prefix, objects)

    def resolve(self, address: str) -> VersionRef:
        """`s3://bucket/prefix/model`: the model's current content, wherever under this source it is."""
        bucket, prefix = parse_s3_address(address)
        folder = _folder(self.prefix)
        if bucket != self.bucket or not (prefix == self.prefix or prefix.startswith(folder)):
            raise SourceError(f"{address} is not under {self.source}")
        model = self._own_name if prefix == self.prefix else prefix[len(folder) :]
        objects = self._objects(_folder(prefix))
        if not objects:
            raise SourceError(f"S3: no objects under {address}")
        return self._version(model, _folder(prefix), objects)

    def list_files(self, version: VersionRef) -> list[RemoteFile]:
        return [RemoteFile(path=o.path, size=o.size) for o in self._pinned_objects(version)]

    def download(self, version: VersionRef, dest: Path, budget: DownloadBudget) -> Path:
        """Stream each object into `dest`; every GET is conditional on the listed ETag, so the bytes are
        the ones the version's digest names."""
        objects = self._pinned_objects(version)
        root = empty_destination(dest)
        tally = DownloadTally(root, budget)
        tally.check_declared([RemoteFile(path=o.path, size=o.size) for o in objects])
        with _store_errors(f"downloading {version.address}"):
            for obj in objects:
                response = self._client.get_object(Bucket=self.bucket, Key=obj.key, IfMatch=f'"{obj.etag}"')
                body = response["Body"]
                try:
                    tally.write(obj.path, body.iter_chunks(_CHUNK_BYTES), obj.size)
                finally:
                    body.close()
        return root

    def write_verdict(self, version: VersionRef, tags: Mapping[str, str]) -> bool:
        """A version is a set of objects and S3 has no place for one verdict about a set (object tags are
        per object, at most ten, and need write rights on every object); the inventory keeps it."""
        return False

    def _holds_objects_directly(self) -> bool:
        folder = _folder(self.prefix)
        with _store_errors(f"listing {self.source}"):
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder, Delimiter="/"):
                if any(not item["Key"].endswith("/") for item in page.get("Contents", [])):
                    return True
        return False

    def _model_folder(self, model: str) -> str:
        if model == self._own_name and self._holds_objects_directly():
            return _folder(self.prefix)
        return _folder(self.prefix) + _folder(check_listed_path(model))

    def _objects(self, key_prefix: str) -> list[_Object]:
        """Every object under a model's folder, sorted by path; folder markers (`name/`) are skipped."""
        objects: list[_Object] = []
        with _store_errors(f"listing s3://{self.bucket}/{key_prefix}"):
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key_prefix):
                for item in page.get("Contents", []):
                    key: str = item["Key"]
                    if key.endswith("/"):
                        continue
                    path = check_listed_path(key[len(key_prefix) :])
                    etag = str(item["ETag"]).strip('"')
                    objects.append(_Object(path, key, etag, int(item["Size"]), item["LastModified"]))
                if len(objects) > _MAX_OBJECTS:
                    raise SourceError(
                        f"S3: more than {_MAX_OBJECTS} objects under s3://{self.bucket}/{key_prefix}"
                    )
        return sorted(objects, key=lambda o: o.path)

    def _pinned_objects(self, version: VersionRef) -> list[_Object]:
        """The objects of a version as listed now, refused when the listing no longer matches its digest."""
        _, prefix = parse_s3_address(version.address)
        objects = self._objects(_folder(prefix))
        if _listing_digest(objects) != version.version:
            raise SourceError(f"S3: {version.address} changed since version {version.version} was listed")
        return objects

    def _version(self, model: str, key_prefix: str, objects: list[_Object]) -> VersionRef:
        address = f"{ADDRESS_PREFIX}{self.bucket}/{key_prefix.rstrip('/')}".rstrip("/")
        newest = max(o.modified for o in objects)
        return VersionRef(
            source=self.source,
            model=model,
            version=_listing_digest(objects),
            address=address,
            origin=address if self.endpoint_url is None else f"{address} at {self.endpoint_url}",
            created_at=newest.astimezone(timezone.utc).isoformat(timespec="seconds"),
        )


def _listing_digest(objects: list[_Object]) -> str:
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(f"{obj.path}\0{obj.etag}\0{obj.size}\n".encode())
    return digest.hexdigest()[:_DIGEST_CHARS]
