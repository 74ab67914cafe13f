"""Model formats this version recognises but does not analyse yet: reported as not scanned, never clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.formats.base import ScanEvent


def _is_xml_model(blob: Blob) -> bool:
    head = blob.head(2048).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") and (b"<PMML" in head or b"<net " in head)


@dataclass(frozen=True)
class UnanalysedFormat:
    """A recognised format whose analysis is not in this version."""

    name: str
    label: str
    detect: Callable[[Blob], bool]
    version: str = "1"

    def sniff(self, blob: Blob) -> bool:
        detected: bool = self.detect(blob)
        return detected

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        yield ScanIssue(
            "unsupported",
            f"{self.label} recognised, but this version of modelshield does not analyse its contents; "
            "the file is not reported clean",
            Location(blob.chain),
        )


HANDLERS = (
    UnanalysedFormat("xml-model", "PMML or OpenVINO IR model", _is_xml_model),
)
