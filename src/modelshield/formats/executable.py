"""Native executables and scripts (ELF, PE, Mach-O, shebang): found by content wherever a blob starts."""

from __future__ import annotations

from collections.abc import Iterator

from modelshield.analysis.payloads import ExecutableSignature, identify_executable
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Severity
from modelshield.formats.base import ScanEvent
from modelshield.rules import payload as rules

name = "executable"
version = "1"

_HEAD = 4096


def _signature(blob: Blob) -> ExecutableSignature | None:
    return identify_executable(blob.head(_HEAD), blob.read_at)


def sniff(blob: Blob) -> bool:
    return _signature(blob) is not None


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    signature = _signature(blob)
    if signature is None:
        return
    nested = len(blob.chain) > 1
    where = f"embedded in {blob.chain[0]}" if nested else "as a stand-alone file"
    yield rules.EMBEDDED_EXECUTABLE.at(
        ctx.where(blob, offset=0, detail=signature.kind),
        f"{signature.description} ({blob.size} bytes) {where}",
        evidence=blob.head(64).hex(" ") if signature.kind != "script" else repr(blob.head(120)),
        severity=_grade(signature.kind, nested),
    )


def _grade(kind: str, nested: bool) -> Severity:
    """Inside a model or after a format's end: high. A file of its own is no loader's input: a
    native binary is noted (low), a script is ordinary in a repository (info)."""
    if nested:
        return Severity.HIGH
    return Severity.INFO if kind == "script" else Severity.LOW
