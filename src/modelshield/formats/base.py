"""What a format handler is: a name, a content sniffer and a scan generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, Union

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, ScanIssue

ScanEvent = Union[Finding, ScanIssue, Blob]
"""A handler yields findings, issues (parts it could not scan) and child blobs to scan in turn."""


class FormatHandler(Protocol):
    """One module per format. `sniff` looks at content only, never at a name or extension."""

    name: str
    version: str

    def sniff(self, blob: Blob) -> bool: ...

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]: ...
