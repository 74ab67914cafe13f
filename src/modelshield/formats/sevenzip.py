"""7z archives through the optional py7zr package: member names, links and sizes are checked, and
contents are decompressed into memory only (never to disk) within the scan's limits."""

from __future__ import annotations

import io
import stat
from collections import Counter
from collections.abc import Iterator
from typing import Any

from modelshield.engine.blob import Blob, BufferBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.formats.base import ScanEvent
from modelshield.formats.compressed import BOMB_SIZE_FLOOR
from modelshield.formats.signatures import SEVENZIP_MAGIC
from modelshield.formats.zip_reader import (
    is_absolute_member_path,
    is_traversal_member_path,
    link_finding,
    path_findings,
)
from modelshield.rules import archive as rules

name = "7z"
version = "1"

SIGNATURE = SEVENZIP_MAGIC
_SPECIAL_MODES = (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO)


def sniff(blob: Blob) -> bool:
    return blob.head(len(SIGNATURE)) == SIGNATURE


def _element(filename: str, copy_number: int) -> str:
    return filename if copy_number == 1 else f"{filename} (duplicate #{copy_number})"


def _header_events(blob: Blob, ctx: ScanContext, files: list[Any]) -> Iterator[ScanEvent]:
    totals = Counter(f.filename for f in files)
    seen: Counter[str] = Counter()
    for entry in files:
        seen[entry.filename] += 1
        where = Location(blob.child_chain(_element(entry.filename, seen[entry.filename])))
        yield from path_findings(entry.filename, where)
        mode = entry.posix_mode or 0
        if entry.is_symlink:
            yield link_finding(entry.filename, "(target stored as content)", "symbolic link", where)
        elif stat.S_IFMT(mode) in _SPECIAL_MODES:
            yield rules.SPECIAL_FILE.at(where, f"member {entry.filename!r} is a device or FIFO")
        if seen[entry.filename] > 1:
            yield rules.DUPLICATE_MEMBER.at(
                where,
                f"{totals[entry.filename]} members are named {entry.filename!r}; py7zr keeps the last",
                evidence=entry.filename,
            )


def _refusal(blob: Blob, ctx: ScanContext, files: list[Any]) -> Iterator[ScanEvent]:
    """Findings and issues when the declared sizes are too large to decompress; empty when fine."""
    limits = ctx.limits
    declared = sum(int(f.uncompressed or 0) for f in files if not f.is_directory)
    largest = max((int(f.uncompressed or 0) for f in files), default=0)
    if declared > BOMB_SIZE_FLOOR and declared > max(blob.size, 1) * limits.max_expansion_ratio:
        yield rules.BOMB.at(
            ctx.where(blob),
            f"members declare {declared} bytes in a {blob.size}-byte 7z archive",
            evidence=f"ratio {declared // max(blob.size, 1)} > {limits.max_expansion_ratio:g}",
        )
    too_big = min(limits.max_materialized_bytes, limits.max_member_bytes)
    if (
        declared > limits.max_materialized_bytes
        or largest > too_big
        or declared > limits.max_expanded_bytes_per_file
    ):
        yield ScanIssue(
            "limit",
            f"7z members declare {declared} bytes; not decompressed "
            f"(in-memory limit {limits.max_materialized_bytes})",
            ctx.where(blob, detail="max_materialized_bytes"),
        )


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    try:
        import py7zr
        from py7zr.io import BytesIOFactory
    except ImportError:
        yield ScanIssue("unsupported", "7z archive not analysed; install modelshield[7z]", ctx.where(blob))
        return
    if blob.size > ctx.limits.max_materialized_bytes:
        yield ScanIssue("limit", "7z archive larger than the in-memory limit; not analysed", ctx.where(blob))
        return
    # py7zr only accepts real io objects; the archive is copied once, within the limit checked above.
    try:
        opened = py7zr.SevenZipFile(io.BytesIO(blob.view()), mode="r")
    except Exception as exc:  # noqa: BLE001 - py7zr raises many exception types on hostile headers
        yield ScanIssue("corrupt", f"7z headers could not be read: {exc!r}", ctx.where(blob))
        return
    with opened as archive:
        if archive.needs_password():
            yield ScanIssue(
                "encrypted", "7z archive is encrypted; its content is not analysed", ctx.where(blob)
            )
            return
        files = list(archive.files)
        if len(files) > ctx.limits.max_members_per_archive:
            yield rules.TOO_MANY_MEMBERS.at(ctx.where(blob), f"7z archive holds {len(files)} members")
            yield ScanIssue("limit", "7z members not decompressed: too many", ctx.where(blob))
            return
        yield from _header_events(blob, ctx, files)
        refusal = list(_refusal(blob, ctx, files))
        yield from refusal
        if refusal:
            return
        ctx.count_expanded(sum(int(f.uncompressed or 0) for f in files if not f.is_directory))
        # A writer factory keeps every member in memory: py7zr then creates no file or directory.
        factory = BytesIOFactory(ctx.limits.max_member_bytes)
        # py7zr refuses the whole extraction on one unsafe name, so those are left out and reported.
        unsafe = {f.filename for f in files if is_absolute_member_path(f.filename)}
        unsafe |= {f.filename for f in files if is_traversal_member_path(f.filename)}
        for filename in sorted(unsafe):
            yield ScanIssue(
                "unsupported", f"7z member {filename!r} not decompressed (unsafe name)", ctx.where(blob)
            )
        try:
            archive.extract(targets=[f.filename for f in files if f.filename not in unsafe], factory=factory)
        except Exception as exc:  # noqa: BLE001 - py7zr refuses unsafe names and corrupt data alike
            yield ScanIssue("corrupt", f"7z members could not be decompressed: {exc!r}", ctx.where(blob))
            return
    seen: Counter[str] = Counter()
    for filename, product in factory.products.items():
        seen[filename] += 1
        product.seek(0)
        yield BufferBlob(product.read(), blob.child_chain(_element(filename, seen[filename])))
