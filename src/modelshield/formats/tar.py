"""Tar archives (ustar, GNU, pax and old v7), read header by header the way Python's tarfile reads them;
members become child blobs and nothing is ever extracted."""

from __future__ import annotations

import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from modelshield.engine.blob import Blob, StreamBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, Location, ScanIssue
from modelshield.formats.base import ScanEvent
from modelshield.formats.zip_reader import link_finding, path_findings
from modelshield.rules import archive as rules

name = "tar"
version = "1"

BLOCK = 512
_SKIP_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class TarMember:
    """What one tar header declares; `data_offset` is where its content starts in the tar stream."""

    name: str
    kind: bytes
    size: int
    data_offset: int
    linkname: str
    header_offset: int

    @property
    def is_file(self) -> bool:
        return self.kind in tarfile.REGULAR_TYPES

    @property
    def is_symlink(self) -> bool:
        return self.kind == tarfile.SYMTYPE

    @property
    def is_hardlink(self) -> bool:
        return self.kind == tarfile.LNKTYPE

    @property
    def is_special(self) -> bool:
        return self.kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE)


def _checksum_ok(header: bytes) -> bool:
    field = header[148:156].replace(b"\0", b" ").strip()
    if not field or any(c not in b"01234567" for c in field):
        return False
    declared = int(field, 8)
    unsigned = sum(header[:148]) + 8 * 0x20 + sum(header[156:512])
    return declared in (unsigned, _signed_sum(header))


def _signed_sum(header: bytes) -> int:
    def signed(b: int) -> int:
        return b - 256 if b > 127 else b

    return sum(signed(b) for b in header[:148]) + 8 * 0x20 + sum(signed(b) for b in header[156:512])


def sniff(blob: Blob) -> bool:
    header = blob.head(BLOCK)
    if len(header) < BLOCK or header[0] == 0:
        return False
    if not _checksum_ok(header):
        return False
    if header[257:262] == b"ustar":
        return True
    # A v7 header has no magic: also require a NUL-terminated name and an octal size field.
    size_field = header[124:136].replace(b"\0", b" ").strip()
    return b"\0" in header[:100] and all(c in b"01234567" for c in size_field)


def _members(blob: Blob, ctx: ScanContext) -> tuple[list[TarMember], bool, str | None]:
    """Headers in archive order, whether the member limit stopped the listing, and any read error."""
    seekable = blob.random_access
    members: list[TarMember] = []
    try:
        with tarfile.open(fileobj=cast(BinaryIO, blob.stream()), mode="r:" if seekable else "r|") as archive:
            for info in archive:
                if len(members) >= ctx.limits.max_members_per_archive:
                    return members, True, None
                members.append(
                    TarMember(
                        name=info.name,
                        kind=info.type,
                        size=info.size,
                        data_offset=info.offset_data,
                        linkname=info.linkname,
                        header_offset=info.offset,
                    )
                )
                if len(members) % 1024 == 0:
                    ctx.check_time()
    except tarfile.TarError as exc:
        return members, False, str(exc)
    return members, False, None


def _element(member: TarMember, copy_number: int) -> str:
    return member.name if copy_number == 1 else f"{member.name} (duplicate #{copy_number})"


def _member_findings(
    blob: Blob, member: TarMember, where: Location, copies: int
) -> Iterator[Finding | ScanIssue]:
    yield from path_findings(member.name, where)
    if member.is_symlink:
        yield link_finding(member.name, member.linkname, "symbolic link", where)
    elif member.is_hardlink:
        yield link_finding(member.name, member.linkname, "hard link", where, from_root=True)
    elif member.is_special:
        kind = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device"}.get(member.kind, "FIFO")
        yield rules.SPECIAL_FILE.at(where, f"member {member.name!r} is a {kind}", evidence=member.name)
    if copies > 1:
        yield rules.DUPLICATE_MEMBER.at(
            where,
            f"{copies} members are named {member.name!r}; tarfile's getmember and extraction use the "
            "last one",
            evidence=member.name,
        )
    if member.is_file and blob.random_access and member.data_offset + member.size > blob.size:
        yield rules.TRUNCATED.at(
            where,
            f"member {member.name!r} declares {member.size} bytes but the archive ends first",
            evidence=f"data @{member.data_offset}, archive size {blob.size}",
        )


class _SkippingReader:
    """Reads one member out of a non-seekable tar stream by skipping everything before it."""

    def __init__(self, parent: Blob, member: TarMember) -> None:
        self._source = parent.stream()
        self._left = member.size
        skip = member.data_offset
        while skip > 0:
            got = len(self._source.read(min(skip, _SKIP_CHUNK)))
            if got == 0:
                break
            skip -= got

    def read(self, n: int | None = -1) -> bytes:
        wanted = self._left if n is None or n < 0 else min(n, self._left)
        data = self._source.read(wanted)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> _SkippingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _child(blob: Blob, ctx: ScanContext, member: TarMember, element: str) -> Blob:
    if blob.random_access:
        available = max(0, min(member.size, blob.size - member.data_offset))
        return blob.slice(member.data_offset, available, element)
    return StreamBlob(
        lambda: _SkippingReader(blob, member),
        member.size,
        blob.child_chain(element),
        ctx.limits.max_materialized_bytes,
    )


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    members, truncated_listing, error = _members(blob, ctx)
    if truncated_listing:
        yield rules.TOO_MANY_MEMBERS.at(
            ctx.where(blob), f"tar holds more than {ctx.limits.max_members_per_archive} members"
        )
        yield ScanIssue(
            "limit",
            f"only the first {ctx.limits.max_members_per_archive} members were scanned",
            ctx.where(blob, detail="max_members_per_archive"),
        )
    if error is not None:
        yield ScanIssue("corrupt", f"tar could not be read to its end: {error}", ctx.where(blob))
    totals = Counter(m.name for m in members)
    seen: Counter[str] = Counter()
    for member in members:
        ctx.check_time()
        seen[member.name] += 1
        element = _element(member, seen[member.name])
        where = Location(blob.child_chain(element), detail=f"header @{member.header_offset}")
        copies = totals[member.name] if seen[member.name] > 1 else 1
        yield from _member_findings(blob, member, where, copies)
    seen.clear()
    for member in members:
        seen[member.name] += 1
        if member.is_file:
            yield _child(blob, ctx, member, _element(member, seen[member.name]))
