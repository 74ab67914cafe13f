"""Model formats this version recognises but does not analyse yet: reported as not scanned, never clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.formats.base import ScanEvent

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(blob: Blob) -> bool:
    # The superblock sits at 0 or after a user block of 512, 1024, 2048… bytes.
    if blob.head(8) == _HDF5_MAGIC:
        return True
    return any(
        blob.read_at(offset, 8) == _HDF5_MAGIC
        for offset in (512, 1024, 2048, 4096)
        if offset + 8 <= blob.size
    )


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
    UnanalysedFormat("hdf5", "HDF5 file (Keras H5 or other)", _is_hdf5),
    UnanalysedFormat("xml-model", "PMML or OpenVINO IR model", _is_xml_model),
)
