"""The `file` connector: a local folder of models, each version named by a digest of its file set.

Each immediate subdirectory of the folder is a model; when the folder directly holds files it is one
model itself. A version is the sha256 of the sorted (relative path, file sha256) pairs, so changing any
file makes a new version. Links that leave a model's folder are never followed: such a version cannot
be listed or copied and is reported as a source error.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from modelshield.connectors import ConnectorSettings
from modelshield.connectors.base import (
    DownloadBudget,
    DownloadTooLarge,
    RemoteFile,
    SourceError,
    VersionRef,
    safe_relative_path,
)
from modelshield.engine.hash_cache import FileStamp, HashCache

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class _Entry:
    """One file found under a model's folder: a readable regular file, or why it cannot be used."""

    relative: str
    path: Path
    size: int = 0
    sha256: str | None = None
    refusal: str | None = None


def folder_path(address: str) -> Path:
    """The local path an address names: `file:///srv/models` or a plain path."""
    if address.lower().startswith("file:"):
        parsed = urlparse(address)
        if parsed.netloc not in ("", "localhost"):
            raise SourceError(f"a file address must name a local path: {address!r}")
        return Path(unquote(parsed.path))
    return Path(address).expanduser()


class LocalFolderConnector:
    """Models in a local folder; nothing is ever written back (`write_verdict` returns False)."""

    scheme = "file"

    def __init__(self, root: Path, hash_cache: HashCache | None = None) -> None:
        if not root.is_dir():
            raise SourceError(f"not a folder of models: {root}")
        self._root = root.resolve()
        self._cache = hash_cache
        self._hashes: dict[FileStamp, str] = {}

    @property
    def source(self) -> str:
        return self._root.as_uri()

    @property
    def root(self) -> Path:
        return self._root

    def _is_single_model(self) -> bool:
        return any(
            not child.name.startswith(".") and child.is_file() and not child.is_symlink()
            for child in self._root.iterdir()
        )

    def list_models(self) -> Iterator[str]:
        if self._is_single_model():
            yield self._root.name
            return
        for child in sorted(self._root.iterdir(), key=lambda p: p.name):
            if not child.name.startswith(".") and child.is_dir() and not child.is_symlink():
                yield child.name

    def _model_folder(self, model: str) -> Path:
        if self._is_single_model():
            if model != self._root.name:
                raise SourceError(f"no model {model!r} in {self.source}")
            return self._root
        folder = self._root / model
        if "/" in model or "\\" in model or model in ("", ".", "..") or folder.is_symlink():
            raise SourceError(f"no model {model!r} in {self.source}")
        if not folder.is_dir():
            raise SourceError(f"no model {model!r} in {self.source}")
        return folder

    def list_versions(self, model: str) -> Iterator[VersionRef]:
        # A folder holds one state at a time; earlier versions are the ones the inventory remembers.
        yield self._current_version(model)

    def _current_version(self, model: str) -> VersionRef:
        folder = self._model_folder(model)
        digest = _digest(self._entries(folder))
        if self._cache is not None:
            self._cache.flush()
        return VersionRef(
            source=self.source, model=model, version=digest, address=str(folder), origin=str(folder)
        )

    def resolve(self, address: str) -> VersionRef:
        path = folder_path(address).resolve()
        if path == self._root:
            models = list(self.list_models())
            if len(models) != 1:
                raise SourceError(f"{address!r} holds {len(models)} models; name one of its folders")
            return self._current_version(models[0])
        if not path.is_relative_to(self._root):
            raise SourceError(f"{address!r} is not inside {self.source}")
        return self._current_version(path.relative_to(self._root).parts[0])

    def list_files(self, version: VersionRef) -> list[RemoteFile]:
        entries = self._checked_entries(version)
        return [RemoteFile(entry.relative, entry.size, entry.sha256) for entry in entries]

    def download(self, version: VersionRef, dest: Path, budget: DownloadBudget) -> Path:
        entries = self._checked_entries(version)
        if len(entries) > budget.max_files:
            raise DownloadTooLarge(
                f"{version.model} has {len(entries)} files; the budget is {budget.max_files}"
            )
        total = sum(entry.size for entry in entries)
        if total > budget.max_bytes:
            raise DownloadTooLarge(f"{version.model} holds {total} bytes; the budget is {budget.max_bytes}")
        dest.mkdir(parents=True, exist_ok=True)
        if any(dest.iterdir()):
            raise SourceError(f"download destination is not empty: {dest}")
        copied = []
        for entry in entries:
            target = safe_relative_path(dest, entry.relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            digest, size = _copy_and_hash(entry.path, target, limit=entry.size)
            copied.append(_Entry(entry.relative, target, size, digest))
        if _digest(copied) != version.version:
            raise SourceError(f"{version.model} changed while it was copied; sync again")
        return dest

    def write_verdict(self, version: VersionRef, tags: Mapping[str, str]) -> bool:
        return False

    def _checked_entries(self, version: VersionRef) -> list[_Entry]:
        if version.source != self.source:
            raise SourceError(f"{version.source} is not {self.source}")
        entries = self._entries(self._model_folder(version.model))
        refused = [entry for entry in entries if entry.refusal is not None]
        if refused:
            raise SourceError(f"{version.model}: {refused[0].relative}: {refused[0].refusal}")
        if _digest(entries) != version.version:
            raise SourceError(f"{version.model} no longer holds version {version.version[:12]}; sync again")
        return entries

    def _entries(self, folder: Path) -> list[_Entry]:
        real_folder = folder.resolve()
        entries = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            here = Path(dirpath)
            dirnames.sort()
            for name in list(dirnames):
                link = here / name
                if link.is_symlink():
                    dirnames.remove(name)  # inside the folder it is reached by its real path
                    if not link.resolve().is_relative_to(real_folder):
                        entries.append(
                            _Entry(_relative(link, folder), link, refusal="link leaves the folder")
                        )
            entries.extend(self._entry(here / name, folder, real_folder) for name in sorted(filenames))
        return sorted(entries, key=lambda entry: entry.relative)

    def _entry(self, path: Path, folder: Path, real_folder: Path) -> _Entry:
        relative = _relative(path, folder)
        target = path.resolve() if path.is_symlink() else path
        if not target.is_relative_to(real_folder):
            return _Entry(relative, path, refusal="link leaves the folder")
        try:
            info = target.stat()
        except OSError as exc:
            return _Entry(relative, path, refusal=f"cannot stat: {exc.strerror or exc}")
        if not stat.S_ISREG(info.st_mode):
            return _Entry(relative, path, refusal="not a regular file")
        try:
            digest = self._sha256(target, info)
        except OSError as exc:
            return _Entry(relative, path, refusal=f"cannot read: {exc.strerror or exc}")
        return _Entry(relative, target, info.st_size, digest)

    def _sha256(self, target: Path, info: os.stat_result) -> str:
        """The file's SHA-256, from the hash cache when this exact state of the file was hashed before."""
        stamp = FileStamp.of(info)
        if stamp is None:  # pragma: no cover - only regular files get here
            raise OSError(f"not a regular file: {target}")
        cached = self._hashes.get(stamp) or (self._cache.lookup(stamp) if self._cache is not None else None)
        if cached is not None:
            self._hashes[stamp] = cached
            return cached
        began = time.time_ns()
        digest, _ = _copy_and_hash(target, None, limit=info.st_size)
        self._hashes[stamp] = digest
        # Kept only for content that had settled before hashing began and did not change while it ran.
        if self._cache is not None and stamp.settled_before(began) and FileStamp.of(target.stat()) == stamp:
            self._cache.store(stamp, digest)
        return digest


def _relative(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _digest(entries: list[_Entry]) -> str:
    """The version id: sha256 over each file's relative path and content hash (or refusal), in order."""
    h = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.relative):
        mark = entry.sha256 if entry.refusal is None else f"!{entry.refusal}"
        h.update(f"{entry.relative}\0{mark}\n".encode("utf-8", errors="surrogateescape"))
    return h.hexdigest()


def _copy_and_hash(source: Path, target: Path | None, *, limit: int) -> tuple[str, int]:
    """SHA-256 and size of `source` (also copied to `target` when given); never more than `limit`
    bytes are read, so a file that grows while it is read is caught by the digest, not copied on."""
    h = hashlib.sha256()
    size = 0
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    with open(os.open(source, flags), "rb") as reader:
        out = open(target, "xb") if target is not None else None  # noqa: SIM115 - closed below
        try:
            while size <= limit and (chunk := reader.read(min(_CHUNK, limit + 1 - size))):
                h.update(chunk)
                size += len(chunk)
                if out is not None:
                    out.write(chunk)
        finally:
            if out is not None:
                out.close()
    return h.hexdigest(), size


def connector_for(address: str, settings: ConnectorSettings) -> LocalFolderConnector:
    """The connector for a local folder address (`file:///srv/models` or a plain path); files are hashed
    through the scanner's hash cache, so an unchanged folder is listed without reading it again."""
    return LocalFolderConnector(folder_path(address), HashCache())
