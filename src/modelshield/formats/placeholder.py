"""Placeholders that stand in for a model (Git LFS and git-annex pointers): not scanned, never clean."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.formats.base import ScanEvent
from modelshield.formats.signatures import ANNEX_PREFIX, LFS_VERSION_LINES

name = "placeholder"
version = "1"

# The Git LFS pointer spec caps pointers below 1024 bytes.
LFS_MAX_BYTES = 1024
# An unlocked git-annex file holds "/annex/objects/<key>" and a newline; keys stay well under a kilobyte.
ANNEX_MAX_BYTES = 4096
_ANNEX_KEY = re.compile(
    r"(?P<backend>[A-Z0-9]+)(?:-s(?P<size>\d+))?(?:-[a-zA-Z][0-9a-zA-Z_]*)*--(?P<digest>[^/\s]*)"
)
_LFS_OID = re.compile(r"(?P<algorithm>[a-z0-9]+):(?P<digest>[0-9a-f]+)")

# Empty files are deliberately not placeholders. An empty file is its own complete content: nothing in it
# can run, and every model loader fails loudly on it. Model folders hold empty files on purpose
# (`__init__.py`, `.gitkeep`, marker files), so calling them "not scanned" would fail honest scans.
# A pointer is different: the loader would one day read the real bytes that were never scanned here.


@dataclass(frozen=True)
class Pointer:
    """What a placeholder says about the content it stands for."""

    system: str
    oid: str | None
    size: int | None
    remedy: str


def sniff(blob: Blob) -> bool:
    return read_pointer(blob) is not None


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    pointer = read_pointer(blob)
    if pointer is None:
        return
    oid = pointer.oid or "an unreadable object id"
    size = f"{pointer.size} bytes" if pointer.size is not None else "an unknown size"
    yield ScanIssue(
        "placeholder",
        f"{pointer.system} pointer, not the model: the content ({oid}, {size}) was not scanned "
        f"and the file is not reported clean; {pointer.remedy} and scan again",
        Location(blob.chain),
    )


def read_pointer(blob: Blob) -> Pointer | None:
    """The pointer a blob holds, or None when the blob is not a placeholder."""
    if blob.size > max(LFS_MAX_BYTES, ANNEX_MAX_BYTES):
        return None
    head = blob.head(ANNEX_MAX_BYTES)
    if head.startswith(LFS_VERSION_LINES) and len(head) < LFS_MAX_BYTES:
        return _lfs_pointer(head)
    if head.startswith(ANNEX_PREFIX):
        return _annex_pointer(head)
    return None


def _lfs_pointer(data: bytes) -> Pointer | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        fields.setdefault(key, value)
    oid = _LFS_OID.fullmatch(fields.get("oid", ""))
    size = fields.get("size", "")
    return Pointer(
        system="Git LFS",
        oid=f"{oid['algorithm']}:{oid['digest']}" if oid else None,
        size=int(size) if size.isdigit() else None,
        remedy="fetch the real file (git lfs pull, or clone with Git LFS installed)",
    )


def _annex_pointer(data: bytes) -> Pointer | None:
    try:
        text = data.decode("ascii").rstrip("\n")
    except UnicodeDecodeError:
        return None
    if "\n" in text:
        return None
    key = _ANNEX_KEY.fullmatch(text.removeprefix(ANNEX_PREFIX.decode()))
    if key is None:
        return None
    digest = key["digest"].split(".", 1)[0]
    return Pointer(
        system="git-annex",
        oid=f"{key['backend']}:{digest}" if digest else key["backend"],
        size=int(key["size"]) if key["size"] else None,
        remedy="fetch the real file (git annex get)",
    )
