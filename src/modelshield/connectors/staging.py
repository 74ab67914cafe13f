"""Directories the tool owns for downloads: private temporary directories and the download cache."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from modelshield.connectors.base import VersionRef

CACHE_DIR_VARIABLE = "MODELSHIELD_CACHE_DIR"


@contextmanager
def private_directory(parent: Path | None = None, prefix: str = "modelshield-") -> Iterator[Path]:
    """A fresh directory only this user can enter (0700), removed with everything in it afterwards."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def download_cache_dir() -> Path:
    """Where scanned downloads are kept: `downloads` under the same root as the hash cache
    (`$MODELSHIELD_CACHE_DIR`, else the XDG cache dir), whatever extras are installed."""
    from modelshield.engine.hash_cache import default_cache_dir

    return default_cache_dir() / "downloads"


def cached_version_dir(cache: Path, version: VersionRef) -> Path:
    """`<cache>/hf/<org>/<name>/<sha>` for Hugging Face; other schemes add a digest of their source, since
    two MLflow servers (or buckets) may both hold a `model/3`. Every part is one safe path segment."""
    scheme = version.address.split(":", 1)[0].split("+", 1)[0].lower() or "unknown"
    parts = [scheme]
    if scheme != "hf":
        parts.append(hashlib.sha256(version.source.encode("utf-8")).hexdigest()[:16])
    parts += version.model.split("/")
    parts.append(version.version)
    return cache.joinpath(*(_path_segment(part) for part in parts))


def _path_segment(text: str) -> str:
    if text in ("", ".", ".."):
        return "%2E" * len(text) or "%00"
    return quote(text, safe="-_.@+=,")
