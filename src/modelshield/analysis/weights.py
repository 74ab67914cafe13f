"""Deep analysis of float weights for payloads hidden in their low mantissa bits (EvilModel, MaleficNet).

Opt-in (`--deep`). This module is what handlers import: it needs nothing beyond the base install. The
statistics themselves use numpy (`weight_stats`, the `deep` extra) and are imported only when a tensor is
actually analysed; without numpy the file gets an issue saying the deep analysis did not run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Confidence, Finding, Location, ScanIssue
from modelshield.rules import weights as rules

FLOAT_WIDTHS = {"F32": 4, "F16": 2, "BF16": 2}
"""Dtypes analysed (safetensors spelling), with their width in bytes."""


@dataclass(frozen=True)
class FloatTensor:
    """A float tensor's bytes inside a blob, as a handler that parsed the layout knows them."""

    name: str
    dtype: str
    """F32, F16 or BF16 (little-endian)."""
    offset: int
    nbytes: int


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
        report = analyse_tensor(
            blob.read_at, tensor.offset, tensor.nbytes, tensor.dtype, check=ctx.check_time
        )
        width = FLOAT_WIDTHS[tensor.dtype]
        for hit in report.hits:
            yield rules.EMBEDDED_PAYLOAD.at(
                Location(
                    blob.chain,
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
                    blob.chain,
                    offset=tensor.offset + stats.window_element * width,
                    detail=f"tensor {tensor.name!r:.80}, weights from {stats.window_element}",
                ),
                "low mantissa bits are structured while the bits above them are uniform",
                evidence=stats.describe(),
                confidence=Confidence.MEDIUM if stats.repeats and stats.text else Confidence.LOW,
            )
