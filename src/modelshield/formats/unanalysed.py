"""Model formats this version recognises but does not analyse yet: reported as not scanned, never clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.formats.base import ScanEvent


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


HANDLERS: tuple[UnanalysedFormat, ...] = ()
"""Empty since OpenVINO IR and PMML are analysed (formats/xml_models.py); kept for formats to come."""
