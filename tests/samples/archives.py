"""Builders for archive samples: a raw zip writer that can lie in every header, tar, 7z and streams."""

from __future__ import annotations

import io
import stat
import struct
import tarfile
import zlib
from dataclasses import dataclass

PAYLOAD = b"plain payload bytes, not a pickle\n"


@dataclass(frozen=True)
class RawEntry:
    """One zip member; every field that a crafted file may falsify can be overridden."""

    name: bytes
    content: bytes = PAYLOAD
    method: int = 0
    flags: int = 0
    local_name: bytes | None = None
    crc: int | None = None
    declared_size: int | None = None
    external_attr: int = 0
    in_central: bool = True


def _packed(entry: RawEntry) -> bytes:
    if entry.method == 8:
        squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
        return squeezer.compress(entry.content) + squeezer.flush()
    return entry.content


def raw_zip(entries: list[RawEntry], prefix: bytes = b"", trailing: bytes = b"") -> bytes:
    """A zip written byte by byte, so tests control every local and central field."""
    out = bytearray(prefix)
    central = bytearray()
    count = 0
    for entry in entries:
        data = _packed(entry)
        crc = zlib.crc32(entry.content) if entry.crc is None else entry.crc
        size = len(entry.content) if entry.declared_size is None else entry.declared_size
        local_name = entry.name if entry.local_name is None else entry.local_name
        offset = len(out) - len(prefix)
        out += struct.pack(
            "<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, entry.flags, entry.method, 0, 0x21,
            crc, len(data), size, len(local_name), 0,
        )  # fmt: skip
        out += local_name + data
        if not entry.in_central:
            continue
        count += 1
        central += struct.pack(
            "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, entry.flags, entry.method, 0, 0x21,
            crc, len(data), size, len(entry.name), 0, 0, 0, 0, entry.external_attr, offset,
        )  # fmt: skip
        central += entry.name
    directory_offset = len(out) - len(prefix)
    out += central
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), directory_offset, 0)
    return bytes(out + trailing)


def symlink_attr() -> int:
    return (stat.S_IFLNK | 0o777) << 16


def zeros_deflate(mebibytes: int, wbits: int = -15) -> bytes:
    """Deflate data for `mebibytes` MiB of zeros, built from one repeated self-contained segment so
    that the zeros are never held in memory (a full flush resets the window between segments)."""
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = squeezer.compress(bytes(1 << 20)) + squeezer.flush(zlib.Z_FULL_FLUSH)
    return segment * mebibytes + squeezer.flush()


def deflate_bomb(mebibytes: int) -> bytes:
    """A zip whose one member inflates to `mebibytes` MiB of zeros (its CRC is not computed)."""
    expanded = min(mebibytes << 20, 0xFFFF_FFFF)
    data = zeros_deflate(mebibytes)
    crc = 0
    name = b"zeros.bin"
    local = struct.pack(
        "<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 8, 0, 0x21, crc, len(data), expanded, len(name), 0
    )
    central = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 8, 0, 0x21,
        crc, len(data), expanded, len(name), 0, 0, 0, 0, 0, 0,
    ) + name  # fmt: skip
    body = local + name + data
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(body), 0)
    return body + central + eocd


def lying_size_zip(actual: int, declared: int) -> bytes:
    """A deflated member that inflates to `actual` zero bytes but declares `declared`."""
    crc = zlib.crc32(bytes(declared))  # what zipfile checks: it stops at the declared size
    entry = RawEntry(b"big.bin", bytes(actual), method=8, declared_size=declared, crc=crc)
    return raw_zip([entry])


@dataclass(frozen=True)
class TarEntry:
    """One tar member: a regular file with content, or a link / device / fifo."""

    name: str
    content: bytes = PAYLOAD
    kind: bytes = tarfile.REGTYPE
    linkname: str = ""


def tar_bytes(entries: list[TarEntry], tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = entry.kind
            info.linkname = entry.linkname
            info.mtime = 0
            if entry.kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(entry.content)
                archive.addfile(info, io.BytesIO(entry.content))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def zip_with(members: dict[str, bytes]) -> bytes:
    """An ordinary zip written by Python's zipfile with deflate."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def scan_bytes(data: bytes, name: str = "sample", limits: object | None = None) -> object:
    """Scan in-memory bytes through every registered handler (findings, issues and the format tree)."""
    from modelshield.engine.blob import BufferBlob
    from modelshield.engine.context import ScanContext
    from modelshield.engine.dispatch import Dispatcher
    from modelshield.engine.limits import DEFAULT_LIMITS
    from modelshield.formats import HANDLERS
    from modelshield.policy.model import Policy

    ctx = ScanContext(limits=limits or DEFAULT_LIMITS, policy=Policy())  # type: ignore[arg-type]
    return Dispatcher(HANDLERS).scan(BufferBlob(data, (name,)), ctx)


def sevenzip_bytes(members: dict[str, bytes], renames: dict[str, str] | None = None) -> bytes:
    """A 7z archive; `renames` swaps same-length names in the plain header afterwards (py7zr refuses
    to write unsafe names itself) and fixes the header CRCs."""
    import py7zr

    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.set_encoded_header_mode(False)
        for name, content in members.items():
            archive.writestr(content, name)
    data = bytearray(buffer.getvalue())
    for old, new in (renames or {}).items():
        at = data.index(old.encode("utf-16-le"))
        data[at : at + 2 * len(old)] = new.encode("utf-16-le")
    offset, size = struct.unpack_from("<QQ", data, 12)
    struct.pack_into("<I", data, 28, zlib.crc32(data[32 + offset : 32 + offset + size]))
    struct.pack_into("<I", data, 8, zlib.crc32(data[12:32]))
    return bytes(data)
