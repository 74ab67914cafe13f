"""Generic zip handler: any zip that no more specific zip layout claimed (PyTorch, npz, Keras, …)."""

from __future__ import annotations

from collections.abc import Iterator

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.formats.base import ScanEvent
from modelshield.formats.zip_reader import looks_like_zip, scan_zip, starts_with_zip_header

name = "zip"
version = "1"


def sniff(blob: Blob) -> bool:
    return looks_like_zip(blob)


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    yield from scan_zip(blob, ctx)


anchored = starts_with_zip_header
