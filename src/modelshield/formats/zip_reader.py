"""Our own zip parser, modelled on the real loaders (PyTorch's miniz reader and Python's zipfile), with
the integrity and differential checks every zip-based handler (PyTorch, npz, Keras, .mar) reuses."""

from __future__ import annotations

import bz2
import lzma
import posixpath
import re
import stat
import struct
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from modelshield.engine.blob import Blob, ByteReader, StreamBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, Location, ScanIssue, Severity
from modelshield.engine.limits import LimitExceeded, MiB
from modelshield.formats.base import ScanEvent
from modelshield.formats.compressed import (
    BOMB_SIZE_FLOOR,
    INPUT_CHUNK,
    DecompressingReader,
    ExpansionRecord,
    ZlibDecoder,
    decode_chunks,
    zstd_chunks,
)
from modelshield.formats.signatures import ZIP_END_SIG, ZIP_LOCAL_SIG, ZIP_MAX_COMMENT
from modelshield.rules import archive as rules

LOCAL_SIG = ZIP_LOCAL_SIG
CENTRAL_SIG = b"PK\x01\x02"
EOCD_SIG = ZIP_END_SIG
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
ZIP64_EOCD_SIG = b"PK\x06\x06"

_EOCD = struct.Struct("<4s4H2LH")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_LOCAL_READ = 256
_MAX_COMMENT = ZIP_MAX_COMMENT
_ZIP64_EXTRA_ID = 0x0001
_U32_MAX = 0xFFFF_FFFF
_U16_MAX = 0xFFFF

STORED, DEFLATED, BZIP2, LZMA, ZSTD = 0, 8, 12, 14, 93
SUPPORTED_METHODS = frozenset({STORED, DEFLATED, BZIP2, LZMA, ZSTD})

FLAG_ENCRYPTED = 0x0001
FLAG_DATA_DESCRIPTOR = 0x0008
FLAG_PATCHED = 0x0020
FLAG_STRONG_ENCRYPTION = 0x0040
FLAG_UTF8 = 0x0800
FLAG_MASKED_HEADERS = 0x2000
# Bits standard writers set: encryption (reported separately), compression options 1-2, data
# descriptor 3, enhanced deflate 4 and UTF-8 names 11.
_ORDINARY_FLAGS = FLAG_ENCRYPTED | 0x0002 | 0x0004 | FLAG_DATA_DESCRIPTOR | 0x0010 | FLAG_UTF8

LINK_TARGET_MAX_BYTES = 4096


class NotAZipError(ValueError):
    """The content has no usable zip end-of-central-directory record or central directory."""


@dataclass(frozen=True)
class LocalHeader:
    """A local file header: what streaming readers (and PyTorch's data offset) rely on."""

    offset: int
    raw_name: bytes
    name: str
    flags: int
    method: int
    crc32: int
    compressed_size: int
    uncompressed_size: int
    data_offset: int


@dataclass(frozen=True)
class ZipMember:
    """A central-directory entry (what zipfile and PyTorch list) with its local header, if readable."""

    index: int
    raw_name: bytes
    name: str
    flags: int
    method: int
    crc32: int
    compressed_size: int
    uncompressed_size: int
    header_offset: int
    external_attr: int
    create_system: int
    local: LocalHeader | None
    local_error: str | None = None

    @property
    def local_name(self) -> str | None:
        return self.local.name if self.local else None

    @property
    def data_offset(self) -> int | None:
        return self.local.data_offset if self.local else None

    @property
    def unix_mode(self) -> int:
        return self.external_attr >> 16

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.unix_mode)

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def is_encrypted(self) -> bool:
        return bool(self.flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION))


@dataclass(frozen=True)
class ZipArchive:
    """A parsed zip. Offsets are absolute in the blob (already shifted by `base_offset`)."""

    members: tuple[ZipMember, ...]
    hidden: tuple[LocalHeader, ...]
    prefix_size: int
    trailing_offset: int
    trailing_size: int
    central_directory_offset: int
    central_directory_size: int
    eocd_offset: int
    base_offset: int
    comment: bytes
    zip64: bool
    declared_member_count: int
    listing_truncated: bool

    @cached_property
    def _copy_numbers(self) -> dict[int, int]:
        """Member index → which copy of its name it is (1 for the first)."""
        seen: dict[str, int] = {}
        numbers: dict[int, int] = {}
        for m in self.members:
            seen[m.name] = seen.get(m.name, 0) + 1
            numbers[m.index] = seen[m.name]
        return numbers

    def copy_number(self, member: ZipMember) -> int:
        return self._copy_numbers.get(member.index, 1)

    def copies(self, name: str) -> tuple[ZipMember, ...]:
        """Every central entry with exactly this name, in directory order."""
        return tuple(m for m in self.members if m.name == name)

    def member(self, name: str) -> ZipMember | None:
        """The copy Python's zipfile reads for `name` (the last one listed)."""
        found = self.copies(name)
        return found[-1] if found else None

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.name for m in self.members))


def decode_name(raw: bytes, flags: int) -> str:
    """Decode a member name the way zipfile does: UTF-8 when flagged, else code page 437."""
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", errors="replace")
    return raw.decode("cp437")


def _find_eocd(blob: Blob) -> tuple[int, tuple[int, ...]]:
    size = blob.size
    if size < _EOCD.size:
        raise NotAZipError("too short for a zip end-of-central-directory record")
    last = blob.read_at(size - _EOCD.size, _EOCD.size)
    if last.startswith(EOCD_SIG) and last[-2:] == b"\0\0":
        return size - _EOCD.size, _EOCD.unpack(last)
    window_start = max(0, size - _EOCD.size - _MAX_COMMENT)
    window = blob.read_at(window_start, size - window_start)
    at = window.rfind(EOCD_SIG)
    while at >= 0 and len(window) - at < _EOCD.size:
        at = window.rfind(EOCD_SIG, 0, at)
    if at < 0:
        raise NotAZipError("no end-of-central-directory record")
    return window_start + at, _EOCD.unpack_from(window, at)


def _zip64_end(blob: Blob, eocd_offset: int) -> tuple[int, int, int, int] | None:
    """(record offset, entries, central size, central offset) from a ZIP64 end record, if any."""
    locator_at = eocd_offset - _ZIP64_LOCATOR.size
    if locator_at < 0:
        return None
    locator = _ZIP64_LOCATOR.unpack(blob.read_at(locator_at, _ZIP64_LOCATOR.size))
    if locator[0] != ZIP64_LOCATOR_SIG:
        return None
    # zipfile expects the record right before the locator; miniz follows the locator's offset.
    for record_at in (locator_at - _ZIP64_EOCD.size, locator[2]):
        if 0 <= record_at <= blob.size - _ZIP64_EOCD.size:
            record = _ZIP64_EOCD.unpack(blob.read_at(record_at, _ZIP64_EOCD.size))
            if record[0] == ZIP64_EOCD_SIG:
                return record_at, record[7], record[8], record[9]
    raise NotAZipError("ZIP64 locator points to no ZIP64 end record")


def _zip64_values(extra: bytes, wanted: list[bool]) -> list[int | None]:
    """Values from the ZIP64 extra field for each header field that was saturated (0xFFFFFFFF)."""
    values: list[int | None] = [None] * len(wanted)
    pos = 0
    while pos + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if kind == _ZIP64_EXTRA_ID:
            cursor = 0
            for i, needed in enumerate(wanted):
                if needed and cursor + 8 <= len(body):
                    values[i] = struct.unpack_from("<Q", body, cursor)[0]
                    cursor += 8
            return values
        pos += 4 + length
    return values


def _read_local(blob: Blob, offset: int) -> LocalHeader:
    if offset < 0 or offset + _LOCAL.size > blob.size:
        raise NotAZipError(f"local header offset {offset} is outside the file")
    # One read covers the name and extra field of nearly every header (torch pads to 64 bytes)
    header = blob.read_at(offset, _LOCAL_READ)
    fields = _LOCAL.unpack_from(header)
    if fields[0] != LOCAL_SIG:
        raise NotAZipError(f"no local header signature at offset {offset}")
    _, _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = fields
    end = _LOCAL.size + name_len + extra_len
    if len(header) < end:
        header += blob.read_at(offset + len(header), end - len(header))
    raw_name = header[_LOCAL.size : _LOCAL.size + name_len]
    extra = header[_LOCAL.size + name_len : end]
    if len(raw_name) != name_len or len(extra) != extra_len:
        raise NotAZipError(f"local header at offset {offset} is truncated")
    big_usize, big_csize = _zip64_values(extra, [usize == _U32_MAX, csize == _U32_MAX])
    return LocalHeader(
        offset=offset,
        raw_name=raw_name,
        name=decode_name(raw_name, flags),
        flags=flags,
        method=method,
        crc32=crc,
        compressed_size=big_csize if big_csize is not None else csize,
        uncompressed_size=big_usize if big_usize is not None else usize,
        data_offset=offset + _LOCAL.size + name_len + extra_len,
    )


def _central_entries(
    blob: Blob, ctx: ScanContext, start: int, size: int, base: int
) -> tuple[list[ZipMember], bool]:
    directory = blob.read_at(start, size)
    members: list[ZipMember] = []
    pos = 0
    while pos + _CENTRAL.size <= len(directory):
        if len(members) >= ctx.limits.max_members_per_archive:
            return members, True
        fields = _CENTRAL.unpack_from(directory, pos)
        if fields[0] != CENTRAL_SIG:
            if not members:
                raise NotAZipError("bad central directory signature")
            break
        (
            _,
            _,
            create_system,
            _,
            _,
            flags,
            method,
            _,
            _,
            crc,
            csize,
            usize,
            name_len,
            extra_len,
            comment_len,
            _,
            _,
            external_attr,
            raw_offset,
        ) = fields
        name_at = pos + _CENTRAL.size
        raw_name = bytes(directory[name_at : name_at + name_len])
        extra = bytes(directory[name_at + name_len : name_at + name_len + extra_len])
        big = _zip64_values(extra, [usize == _U32_MAX, csize == _U32_MAX, raw_offset == _U32_MAX])
        header_offset = (big[2] if big[2] is not None else raw_offset) + base
        local: LocalHeader | None = None
        local_error: str | None = None
        try:
            local = _read_local(blob, header_offset)
        except NotAZipError as exc:
            local_error = str(exc)
        members.append(
            ZipMember(
                index=len(members),
                raw_name=raw_name,
                name=decode_name(raw_name, flags),
                flags=flags,
                method=method,
                crc32=crc,
                compressed_size=big[1] if big[1] is not None else csize,
                uncompressed_size=big[0] if big[0] is not None else usize,
                header_offset=header_offset,
                external_attr=external_attr,
                create_system=create_system,
                local=local,
                local_error=local_error,
            )
        )
        pos = name_at + name_len + extra_len + comment_len
        if len(members) % 4096 == 0:
            ctx.check_time()
    return members, False


def _find_hidden(
    blob: Blob, ctx: ScanContext, members: list[ZipMember], directory_start: int
) -> list[LocalHeader]:
    covered = sorted(
        (m.header_offset, m.local.data_offset + m.compressed_size) for m in members if m.local is not None
    )
    gaps: list[tuple[int, int]] = []
    cursor = 0
    for start, end in covered:
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if directory_start > cursor:
        gaps.append((cursor, directory_start))
    hidden: list[LocalHeader] = []
    for gap_start, gap_end in gaps:
        hidden.extend(_local_headers_in(blob, ctx, gap_start, gap_end))
    return hidden


def _local_headers_in(blob: Blob, ctx: ScanContext, start: int, end: int) -> Iterator[LocalHeader]:
    window = 16 * MiB
    pos = start
    while pos < end - len(LOCAL_SIG) + 1:
        chunk = blob.read_at(pos, min(window, end - pos))
        at = chunk.find(LOCAL_SIG)
        if at < 0:
            pos += max(1, len(chunk) - len(LOCAL_SIG) + 1)
            ctx.check_time()
            continue
        offset = pos + at
        try:
            header = _read_local(blob, offset)
        except NotAZipError:
            pos = offset + 1
            continue
        yield header
        data_end = header.data_offset + header.compressed_size
        pos = data_end if header.data_offset < data_end <= end else header.data_offset


def read_zip(blob: Blob, ctx: ScanContext) -> ZipArchive:
    """Parse the end record, the central directory and every local header (never the member data).

    A stream blob (a zip inside a compressed file) is materialised first, within its limit. The
    result is kept on the blob: every zip layout's sniffer and scanner asks for it.
    """
    key = f"{__name__}.archive"
    known = blob.memo.get(key)
    if isinstance(known, tuple) and known[0] == ctx.limits:
        archive: ZipArchive = known[1]
        return archive
    archive = _read_zip(blob, ctx)
    blob.memo[key] = (ctx.limits, archive)
    return archive


def _read_zip(blob: Blob, ctx: ScanContext) -> ZipArchive:
    if isinstance(blob, StreamBlob):
        blob.view()
    eocd_offset, eocd = _find_eocd(blob)
    _, _, _, _, entries, cd_size, cd_offset, comment_len = eocd
    directory_end = eocd_offset
    zip64 = _zip64_end(blob, eocd_offset)
    if zip64 is not None:
        directory_end, entries, cd_size, cd_offset = zip64
    directory_start = directory_end - cd_size
    base = directory_start - cd_offset
    if directory_start < 0 or base < 0:
        raise NotAZipError("central directory offsets point outside the file")
    members, listing_truncated = _central_entries(blob, ctx, directory_start, cd_size, base)
    if not members and entries:
        raise NotAZipError("central directory lists no readable entry")
    # Past a truncated listing every unlisted member would look hidden; the limit is reported instead.
    hidden = [] if listing_truncated else _find_hidden(blob, ctx, members, directory_start)
    first_header = min(
        [m.header_offset for m in members if m.local is not None] + [h.offset for h in hidden],
        default=directory_start,
    )
    end_of_zip = min(blob.size, eocd_offset + _EOCD.size + comment_len)
    return ZipArchive(
        members=tuple(members),
        hidden=tuple(hidden),
        prefix_size=first_header,
        trailing_offset=end_of_zip,
        trailing_size=blob.size - end_of_zip,
        central_directory_offset=directory_start,
        central_directory_size=cd_size,
        eocd_offset=eocd_offset,
        base_offset=base,
        comment=blob.read_at(eocd_offset + _EOCD.size, comment_len),
        zip64=zip64 is not None,
        declared_member_count=entries,
        listing_truncated=listing_truncated,
    )


def starts_with_zip_header(blob: Blob) -> bool:
    """A zip whose first bytes are its own (a local header or an empty archive's end record)."""
    return blob.head(4) in (LOCAL_SIG, EOCD_SIG)


def looks_like_zip(blob: Blob) -> bool:
    """Cheap content test: a zip starts with a local header or an empty end record, or (for
    in-memory blobs) ends with an end record whose central directory is where it says."""
    known = blob.memo.get(__name__ + ".looks_like_zip")
    if isinstance(known, bool):
        return known
    answer = _looks_like_zip(blob)
    blob.memo[__name__ + ".looks_like_zip"] = answer
    return answer


def _looks_like_zip(blob: Blob) -> bool:
    head = blob.head(4)
    if head in (LOCAL_SIG, EOCD_SIG):
        return True
    if isinstance(blob, StreamBlob) or blob.size < _EOCD.size:
        return False
    try:
        eocd_offset, eocd = _find_eocd(blob)
        zip64 = _zip64_end(blob, eocd_offset)
    except (NotAZipError, struct.error):
        return False
    cd_size = eocd[5]
    directory_end = eocd_offset if zip64 is None else zip64[0]
    if zip64 is not None:
        cd_size = zip64[2]
    start = directory_end - cd_size
    if start < 0:
        return False
    return cd_size == 0 or blob.read_at(start, 4) == CENTRAL_SIG


# ---- member paths (shared with the tar and 7z handlers) ----

_DRIVE = re.compile(r"^[A-Za-z]:")


def is_absolute_member_path(name: str) -> bool:
    """Absolute on any platform an extractor may run on: '/', '\\', a drive letter or a UNC path."""
    return name.startswith(("/", "\\")) or bool(_DRIVE.match(name))


def is_traversal_member_path(name: str) -> bool:
    return ".." in name.replace("\\", "/").split("/")


def link_escapes(member_name: str, target: str, *, relative_to_root: bool = False) -> bool:
    """Whether a link target leaves the extraction root (symlinks resolve from the member's folder,
    tar hard links from the archive root)."""
    if is_absolute_member_path(target):
        return True
    base = "" if relative_to_root else posixpath.dirname(member_name.replace("\\", "/"))
    resolved = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    return resolved == ".." or resolved.startswith("../")


def path_findings(name: str, location: Location) -> Iterator[Finding]:
    """Traversal and absolute-path findings for one member name."""
    if is_absolute_member_path(name):
        yield rules.ABSOLUTE_PATH.at(location, f"member {name!r} has an absolute path", evidence=name)
    if is_traversal_member_path(name):
        yield rules.PATH_TRAVERSAL.at(location, f"member {name!r} climbs out with '..'", evidence=name)


def link_finding(
    name: str, target: str, kind: str, location: Location, *, from_root: bool = False
) -> Finding:
    escapes = link_escapes(name, target, relative_to_root=from_root)
    where = "outside the extraction directory" if escapes else "inside the archive"
    return rules.LINK.at(
        location,
        f"member {name!r} is a {kind} to {target!r} ({where})",
        evidence=f"{name} -> {target}",
        severity=Severity.HIGH if escapes else Severity.MEDIUM,
    )


# ---- member data ----


def _zip_lzma_chunks(source: ByteReader, record: ExpansionRecord) -> Iterator[bytes]:
    header = source.read(4)
    if len(header) < 4:
        raise ValueError("zip LZMA member is missing its properties header")
    props = source.read(struct.unpack_from("<H", header, 2)[0])
    if len(props) != 5:
        raise ValueError("zip LZMA member has malformed properties")
    packed, dict_size = props[0], struct.unpack_from("<I", props, 1)[0]
    lzma1 = {"id": lzma.FILTER_LZMA1, "lc": packed % 9, "lp": packed // 9 % 5, "pb": packed // 45}
    lzma1["dict_size"] = dict_size
    return decode_chunks(source, lambda: lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma1]), record)


def _member_chunks(method: int, source: ByteReader, record: ExpansionRecord) -> Iterator[bytes]:
    if method == DEFLATED:
        return decode_chunks(source, lambda: ZlibDecoder(-zlib.MAX_WBITS), record)
    if method == BZIP2:
        return decode_chunks(source, bz2.BZ2Decompressor, record)
    if method == LZMA:
        return _zip_lzma_chunks(source, record)
    if method == ZSTD:
        return zstd_chunks(source)
    return iter(lambda: source.read(INPUT_CHUNK), b"")


def _data_span(blob: Blob, archive: ZipArchive, data_offset: int, compressed_size: int, known: bool) -> int:
    """How many bytes of member data exist: the declared size, clipped to what precedes the directory."""
    room = max(0, min(blob.size, archive.central_directory_offset) - data_offset)
    if not known:
        return room
    return max(0, min(compressed_size, blob.size - data_offset))


def open_member(
    blob: Blob,
    ctx: ScanContext,
    method: int,
    data_offset: int,
    compressed_size: int,
    output_cap: int | None,
    record: ExpansionRecord,
) -> DecompressingReader:
    """A bounded reader of one member's content, stopping at `output_cap` as zip loaders do."""
    source = blob.slice(data_offset, compressed_size, "compressed").stream()
    return DecompressingReader(_member_chunks(method, source, record), ctx, record, output_cap)


def read_member_bytes(blob: Blob, ctx: ScanContext, member: ZipMember, max_bytes: int) -> bytes:
    """Up to `max_bytes` of a member's content (for small metadata members such as a version file)."""
    if member.local is None or member.method not in SUPPORTED_METHODS:
        raise ValueError(f"member {member.name!r} cannot be read")
    record = ExpansionRecord(compressed_size=member.compressed_size)
    with open_member(
        blob,
        ctx,
        member.method,
        member.local.data_offset,
        member.compressed_size,
        min(member.uncompressed_size, max_bytes),
        record,
    ) as reader:
        return reader.read(max_bytes)


def member_element(archive: ZipArchive, member: ZipMember) -> str:
    """The chain element for a member: its name, made distinct for second and later copies."""
    copy_number = archive.copy_number(member)
    return member.name if copy_number == 1 else f"{member.name} (duplicate #{copy_number})"


def hidden_element(header: LocalHeader) -> str:
    return f"{header.name} (local header only @{header.offset})"


def _stream_child(
    blob: Blob,
    ctx: ScanContext,
    element: str,
    method: int,
    data_offset: int,
    span: int,
    declared_size: int,
    output_cap: int | None,
) -> Blob:
    if method == STORED:
        return blob.slice(data_offset, span, element)
    record = ExpansionRecord(compressed_size=span)

    def opener() -> DecompressingReader:
        return open_member(blob, ctx, method, data_offset, span, output_cap, record)

    return StreamBlob(opener, declared_size, blob.child_chain(element), ctx.limits.max_materialized_bytes)


def member_blobs(blob: Blob, ctx: ScanContext, archive: ZipArchive) -> Iterator[Blob]:
    """A child blob for every listed copy, every hidden local entry and any data around the zip."""
    if archive.prefix_size:
        yield blob.slice(0, archive.prefix_size, "(data before zip)")
    for member in archive.members:
        if member.local is None or member.method not in SUPPORTED_METHODS:
            continue
        if member.is_dir and member.uncompressed_size == 0:
            continue
        span = _data_span(blob, archive, member.local.data_offset, member.compressed_size, True)
        yield _stream_child(
            blob,
            ctx,
            member_element(archive, member),
            member.method,
            member.local.data_offset,
            span,
            member.uncompressed_size,
            member.uncompressed_size,
        )
    for header in archive.hidden:
        if header.method not in SUPPORTED_METHODS:
            continue
        sizes_known = not (header.flags & FLAG_DATA_DESCRIPTOR and header.compressed_size == 0)
        span = _data_span(blob, archive, header.data_offset, header.compressed_size, sizes_known)
        cap = header.uncompressed_size if sizes_known else None
        yield _stream_child(
            blob,
            ctx,
            hidden_element(header),
            header.method,
            header.data_offset,
            span,
            header.uncompressed_size,
            cap,
        )
    if archive.trailing_size:
        yield blob.slice(archive.trailing_offset, archive.trailing_size, "(data after zip)")


# ---- findings ----


def _member_location(blob: Blob, archive: ZipArchive, member: ZipMember) -> Location:
    return Location(
        chain=blob.child_chain(member_element(archive, member)),
        detail=f"central entry #{member.index}, local header @{member.header_offset}",
    )


def _header_findings(blob: Blob, member: ZipMember, local: LocalHeader, where: Location) -> Iterator[Finding]:
    if local.raw_name != member.raw_name:
        yield rules.ZIP_NAME_MISMATCH.at(
            where,
            f"central directory names {member.name!r} but the local header names {local.name!r}; "
            "PyTorch reads it under the central name, zipfile refuses it",
            evidence=f"central={member.raw_name!r} local={local.raw_name!r}",
        )
    differences = []
    if local.method != member.method:
        differences.append(f"method central={member.method} local={local.method}")
    if local.flags != member.flags:
        differences.append(f"flags central={member.flags:#06x} local={local.flags:#06x}")
    if not local.flags & FLAG_DATA_DESCRIPTOR:
        if local.compressed_size != member.compressed_size:
            differences.append(
                f"compressed size central={member.compressed_size} local={local.compressed_size}"
            )
        if local.uncompressed_size != member.uncompressed_size:
            differences.append(f"size central={member.uncompressed_size} local={local.uncompressed_size}")
        if local.crc32 != member.crc32:
            differences.append(f"crc central={member.crc32:#010x} local={local.crc32:#010x}")
    if member.method == STORED and member.compressed_size != member.uncompressed_size:
        differences.append(
            f"stored member declares {member.compressed_size} stored and {member.uncompressed_size} "
            "uncompressed bytes"
        )
    if differences:
        yield rules.ZIP_HEADER_MISMATCH.at(
            where, f"headers of {member.name!r} disagree", evidence="; ".join(differences)
        )


def _flag_findings(ctx: ScanContext, member: ZipMember, where: Location) -> Iterator[Finding | ScanIssue]:
    if member.is_encrypted:
        yield rules.ZIP_ENCRYPTED.at(
            where,
            f"member {member.name!r} is flagged as encrypted; zipfile needs a password, PyTorch ignores "
            "the flag",
            evidence=f"flags={member.flags:#06x}",
        )
        yield ScanIssue(
            "encrypted",
            f"member {member.name!r} is encrypted: if it really is, its content is not analysed",
            where,
        )
    unusual = member.flags & ~_ORDINARY_FLAGS
    if unusual:
        yield rules.ZIP_UNUSUAL_FLAGS.at(
            where,
            f"member {member.name!r} sets flag bits {unusual:#06x} that standard writers never set",
            evidence=f"flags={member.flags:#06x}",
        )
    if member.method not in SUPPORTED_METHODS:
        yield ScanIssue(
            "unsupported",
            f"member {member.name!r} uses compression method {member.method}; not scanned",
            where,
        )


def _size_findings(
    blob: Blob, ctx: ScanContext, archive: ZipArchive, member: ZipMember, where: Location
) -> Iterator[Finding | ScanIssue]:
    local = member.local
    if local is None:
        return
    if local.data_offset + member.compressed_size > archive.central_directory_offset:
        yield rules.TRUNCATED.at(
            where,
            f"member {member.name!r} declares {member.compressed_size} bytes of data that run into the "
            "central directory or past the end",
            evidence=f"data end {local.data_offset + member.compressed_size}",
        )
    if member.method == STORED or member.method not in SUPPORTED_METHODS:
        return
    ratio_limit = ctx.limits.max_expansion_ratio
    if (
        member.uncompressed_size > BOMB_SIZE_FLOOR
        and member.uncompressed_size > max(member.compressed_size, 1) * ratio_limit
    ):
        yield rules.BOMB.at(
            where,
            f"member {member.name!r} declares {member.uncompressed_size} bytes from "
            f"{member.compressed_size} compressed bytes",
            evidence=f"ratio {member.uncompressed_size // max(member.compressed_size, 1)} > {ratio_limit:g}",
        )
    elif member.uncompressed_size > ctx.limits.max_member_bytes:
        yield ScanIssue(
            "limit",
            f"member {member.name!r} expands to {member.uncompressed_size} bytes; only the "
            f"first {ctx.limits.max_member_bytes} are scanned",
            where,
        )


def _crc_findings(
    blob: Blob, ctx: ScanContext, archive: ZipArchive, member: ZipMember, where: Location
) -> Iterator[Finding | ScanIssue]:
    local = member.local
    if (
        local is None
        or member.method not in SUPPORTED_METHODS
        or member.is_encrypted
        or member.uncompressed_size > ctx.limits.max_crc_check_bytes
        or member.compressed_size > ctx.limits.max_crc_check_bytes
    ):
        return  # larger members are tensor data in practice, never re-read just for a CRC
    span = _data_span(blob, archive, local.data_offset, member.compressed_size, True)
    record = ExpansionRecord(compressed_size=span)
    crc = 0
    produced = 0
    try:
        with open_member(
            blob, ctx, member.method, local.data_offset, span, member.uncompressed_size + 1, record
        ) as reader:
            while chunk := reader.read(INPUT_CHUNK * 16):
                crc = zlib.crc32(chunk, crc)
                produced += len(chunk)
    except LimitExceeded:
        return
    except (zlib.error, lzma.LZMAError, OSError, ValueError, EOFError) as exc:
        yield ScanIssue("corrupt", f"member {member.name!r} cannot be decompressed: {exc}", where)
        return
    if member.method != STORED and produced != member.uncompressed_size:
        yield rules.ZIP_HEADER_MISMATCH.at(
            where,
            f"member {member.name!r} decompresses to {'more than ' if record.overflowed else ''}"
            f"{min(produced, member.uncompressed_size)} bytes but declares {member.uncompressed_size}",
            evidence="loaders stop at the declared size; scanners that read to the end see other bytes",
        )
    if produced == member.uncompressed_size and crc != member.crc32:
        yield rules.ZIP_BAD_CRC.at(
            where,
            f"member {member.name!r} has CRC {crc:#010x} but declares {member.crc32:#010x}; zipfile "
            "refuses it, PyTorch loads it",
            evidence=f"computed={crc:#010x} declared={member.crc32:#010x}",
        )


def _link_findings(
    blob: Blob, ctx: ScanContext, member: ZipMember, where: Location
) -> Iterator[Finding | ScanIssue]:
    if not member.is_symlink:
        return
    target = "?"
    try:
        target = read_member_bytes(blob, ctx, member, LINK_TARGET_MAX_BYTES).decode("utf-8", "replace")
    except (ValueError, zlib.error, lzma.LZMAError, OSError, EOFError, LimitExceeded):
        pass  # an unreadable target is still a link
    yield link_finding(member.name, target, "symbolic link", where)


def _duplicate_findings(blob: Blob, archive: ZipArchive) -> Iterator[Finding]:
    by_folded: dict[str, list[ZipMember]] = defaultdict(list)
    for member in archive.members:
        by_folded[member.name.lower()].append(member)
    for copies in by_folded.values():
        if len(copies) < 2:
            continue
        names = sorted({m.name for m in copies})
        case_note = " (differing only by case)" if len(names) > 1 else ""
        zipfile_reads = ", ".join(f"#{archive.copies(name)[-1].index}" for name in names)
        message = (
            f"{len(copies)} members named {' / '.join(repr(n) for n in names)}{case_note}; zipfile "
            f"reads entry {zipfile_reads} (the last listed); PyTorch's miniz reader finds names "
            "case-insensitively by binary search and may read any copy"
        )
        evidence = ", ".join(f"#{m.index} {m.name!r} @{m.header_offset}" for m in copies)
        for member in copies[1:]:
            yield rules.DUPLICATE_MEMBER.at(
                _member_location(blob, archive, member), message, evidence=evidence
            )


def _overlap_finding(blob: Blob, ctx: ScanContext, archive: ZipArchive) -> Iterator[Finding]:
    spans = sorted(
        (m.header_offset, m.local.data_offset + m.compressed_size, m.name)
        for m in archive.members
        if m.local is not None
    )
    overlaps = [
        (earlier[2], later[2], later[0])
        for earlier, later in zip(spans, spans[1:], strict=False)
        if later[0] < earlier[1]
    ]
    if overlaps:
        first, second, offset = overlaps[0]
        yield rules.ZIP_OVERLAPPING_MEMBERS.at(
            ctx.where(blob, offset=offset),
            f"{len(overlaps)} member(s) start inside the data of another member",
            evidence=f"{second!r} starts inside {first!r}",
        )


def zip_findings(blob: Blob, ctx: ScanContext, archive: ZipArchive) -> Iterator[Finding | ScanIssue]:
    """Every integrity, differential, path, link and bomb finding for a parsed zip."""
    limits = ctx.limits
    if archive.listing_truncated or archive.declared_member_count > limits.max_members_per_archive:
        yield rules.TOO_MANY_MEMBERS.at(
            ctx.where(blob, offset=archive.central_directory_offset),
            f"zip declares {archive.declared_member_count} members; "
            f"the limit is {limits.max_members_per_archive}",
        )
        yield ScanIssue(
            "limit",
            f"only the first {limits.max_members_per_archive} members were scanned",
            ctx.where(blob, detail="max_members_per_archive"),
        )
    if archive.prefix_size:
        yield rules.ZIP_PREPENDED_DATA.at(
            ctx.where(blob, offset=0),
            f"{archive.prefix_size} bytes precede the first zip member",
            evidence=blob.read_at(0, 16).hex(),
        )
    if archive.trailing_size:
        yield rules.ZIP_TRAILING_DATA.at(
            ctx.where(blob, offset=archive.trailing_offset),
            f"{archive.trailing_size} bytes follow the end of the zip",
            evidence=blob.read_at(archive.trailing_offset, 16).hex(),
        )
    total_declared = 0
    member_bomb = False
    for member in archive.members:
        ctx.check_time()
        where = _member_location(blob, archive, member)
        if member.local is None:
            yield rules.TRUNCATED.at(where, f"member {member.name!r}: {member.local_error}")
            yield ScanIssue("corrupt", f"member {member.name!r} not scanned: {member.local_error}", where)
            continue
        total_declared += member.uncompressed_size if member.method != STORED else 0
        yield from _header_findings(blob, member, member.local, where)
        yield from _flag_findings(ctx, member, where)
        yield from path_findings(member.name, where)
        if member.local.raw_name != member.raw_name:
            yield from path_findings(member.local.name, where)
        yield from _link_findings(blob, ctx, member, where)
        for event in _size_findings(blob, ctx, archive, member, where):
            member_bomb = member_bomb or (isinstance(event, Finding) and event.rule_id == rules.BOMB.id)
            yield event
        yield from _crc_findings(blob, ctx, archive, member, where)
    yield from _duplicate_findings(blob, archive)
    yield from _overlap_finding(blob, ctx, archive)
    for header in archive.hidden:
        where = Location(blob.child_chain(hidden_element(header)), detail=f"local header @{header.offset}")
        yield rules.ZIP_HIDDEN_MEMBER.at(
            where,
            f"local entry {header.name!r} at offset {header.offset} is not in the central directory",
            evidence=f"method={header.method} compressed={header.compressed_size}",
        )
        yield from path_findings(header.name, where)
    archive_ratio_crossed = total_declared > blob.size * limits.max_expansion_ratio
    if not member_bomb and total_declared > BOMB_SIZE_FLOOR and archive_ratio_crossed:
        yield rules.BOMB.at(
            ctx.where(blob),
            f"members declare {total_declared} bytes in a {blob.size}-byte zip",
            evidence=f"ratio {total_declared / max(blob.size, 1):.0f} > {limits.max_expansion_ratio:g}",
        )
    elif total_declared > limits.max_expanded_bytes_per_file:
        yield ScanIssue(
            "limit",
            f"members expand to {total_declared} bytes, more than the per-file limit "
            f"{limits.max_expanded_bytes_per_file} (max_expanded_bytes_per_file); the rest is not scanned",
            ctx.where(blob, detail="max_expanded_bytes_per_file"),
        )


def scan_zip(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    """Findings for the zip as a whole, then every member as a child blob."""
    try:
        archive = read_zip(blob, ctx)
    except NotAZipError as exc:
        yield ScanIssue("corrupt", f"zip structure could not be read: {exc}", ctx.where(blob))
        return
    yield from zip_findings(blob, ctx, archive)
    yield from member_blobs(blob, ctx, archive)
