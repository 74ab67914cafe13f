"""Deep analysis of float weights for payloads hidden in their low mantissa bits (EvilModel, MaleficNet).

Opt-in (`--deep`). This module is what handlers import: it needs nothing beyond the base install. The
statistics themselves use numpy (`weight_stats`, the `deep` extra) and are imported only when a tensor is
actually analysed; without numpy the file gets an issue saying the deep analysis did not run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Confidence, Finding, Location, ScanIssue
from modelshield.rules import weights as rules

FLOAT_WIDTHS = {"F32": 4, "F16": 2, "BF16": 2}
"""Dtypes analysed (safetensors spelling), with their width in bytes."""

ReadAt = Callable[[int, int], bytes]
"""`read_at(offset, n)`: up to `n` bytes at `offset` of a tensor's data."""


@dataclass(frozen=True)
class FloatTensor:
    """A float tensor's bytes inside a blob, as a handler that parsed the layout knows them."""

    name: str
    dtype: str
    """F32, F16 or BF16 (little-endian)."""
    offset: int
    nbytes: int
    read_at: ReadAt | None = None
    """Where the bytes are read when they are not the blob's own (an external data file, a decompressed
    storage, an HDF5 dataset's chunks): `offset` then counts from the start of that data."""
    chain: tuple[str, ...] | None = None
    """Where those bytes are, for the findings' location (the blob's chain when None)."""


class SequentialReads:
    """A `ReadAt` over a sequential reader (a decompressing stream), for the analysis, which reads a
    tensor front to back: it never seeks, so nothing beyond one read is held."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._position = 0

    def __call__(self, offset: int, n: int) -> bytes:
        if offset != self._position:
            raise ValueError(f"sequential tensor data read at {offset}, expected {self._position}")
        parts: list[bytes] = []
        wanted = n
        while wanted > 0 and (part := self._read(wanted)):
            parts.append(part)
            wanted -= len(part)
        data = b"".join(parts)
        self._position += len(data)
        return data


def scan_tensors(
    blob: Blob, ctx: ScanContext, tensors: Iterator[FloatTensor] | list[FloatTensor]
) -> Iterator[Finding | ScanIssue]:
    """Findings for every tensor whose low bits hold a payload or look like they do."""
    try:
        import numpy  # noqa: F401 - the statistics need it; fail here, as an issue, not mid-tensor

        from modelshield.analysis.weight_stats import analyse_tensor
    except ImportError:
        if ctx.shared.get(f"{__name__}.unavailable"):
            return  # said once per file
        ctx.shared[f"{__name__}.unavailable"] = True
        yield ScanIssue(
            "deep-unavailable",
            "--deep needs numpy for the weight statistics: pip install 'modelshield[deep]'",
            Location(blob.chain),
        )
        return
    for tensor in tensors:
        if tensor.dtype not in FLOAT_WIDTHS or tensor.nbytes < 2 * FLOAT_WIDTHS[tensor.dtype]:
            continue
        read_at = tensor.read_at or blob.read_at
        report = analyse_tensor(read_at, tensor.offset, tensor.nbytes, tensor.dtype, check=ctx.check_time)
        width = FLOAT_WIDTHS[tensor.dtype]
        chain = tensor.chain or blob.chain
        for hit in report.hits:
            yield rules.EMBEDDED_PAYLOAD.at(
                Location(
                    chain,
                    offset=tensor.offset + hit.element * width,
                    detail=f"tensor {tensor.name!r:.80}, weight {hit.element}",
                ),
                f"the {hit.extraction} of each weight spells a {hit.what}",
                evidence=hit.preview.hex(" "),
            )
        stats = report.stats
        if not report.hits and stats.suspicious:
            yield rules.LOW_BIT_ANOMALY.at(
                Location(
                    chain,
                    offset=tensor.offset + stats.window_element * width,
                    detail=f"tensor {tensor.name!r:.80}, weights from {stats.window_element}",
                ),
                "low mantissa bits are structured while the bits above them are uniform",
                evidence=stats.describe(),
                confidence=Confidence.MEDIUM if stats.repeats and stats.text else Confidence.LOW,
            )
