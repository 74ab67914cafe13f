"""What a format handler is: a name, a content sniffer and a scan generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, ScanIssue

ScanEvent = Finding | ScanIssue | Blob
"""A handler yields findings, issues (parts it could not scan) and child blobs to scan in turn."""


class FormatHandler(Protocol):
    """One module per format. `sniff` looks at content only, never at a name or extension."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def sniff(self, blob: Blob) -> bool: ...

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]: ...


def starts_at_head(handler: FormatHandler, blob: Blob) -> bool:
    """Whether the handler's format begins at byte 0 of the blob.

    A handler that also recognises its format elsewhere (a zip found by its end record behind other
    data) defines `anchored(blob)`. When it returns False, a format that does start at byte 0 takes
    precedence and the handler reads the same bytes a second time: the file is a polyglot, and each
    loader sees its own file.
    """
    anchored = getattr(handler, "anchored", None)
    return True if anchored is None else bool(anchored(blob))
