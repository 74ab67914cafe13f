"""Single-stream compressors (gzip, bz2, xz, lzma-alone, zstd, zlib) and the bounded decompressing
reader that these handlers and the archive handlers share."""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from modelshield.engine.blob import Blob, ByteReader, StreamBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, Location, ScanIssue
from modelshield.engine.limits import LimitExceeded, MiB
from modelshield.formats.base import ScanEvent
from modelshield.formats.signatures import (
    GZIP_MAGIC,
    XZ_MAGIC,
    ZFILE_PREFIX,
    ZSTD_MAGIC,
    plausible_lzma_dictionary,
    zlib_header,
)
from modelshield.rules.archive import BOMB, CORRUPT_STREAM

INPUT_CHUNK = 64 * 1024
OUTPUT_CHUNK = 1 * MiB
BOMB_SIZE_FLOOR = 8 * MiB
"""Expansion below this many bytes is never called a bomb, whatever the ratio (tiny runs of zeros)."""

RATIO_LIMIT = "max_expansion_ratio"

CODEC_ERRORS: tuple[type[Exception], ...] = (lzma.LZMAError, zlib.error, EOFError, OSError, ValueError)
"""What decoders raise on corrupt input (bz2 raises OSError; zstd errors are re-raised as ValueError)."""


class StreamDecoder(Protocol):
    """The common shape of bz2/lzma decompressor objects (zlib is adapted to it)."""

    @property
    def needs_input(self) -> bool: ...

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class ZlibDecoder:
    """zlib.decompressobj behind the bz2/lzma interface, so one loop drives every codec."""

    def __init__(self, wbits: int) -> None:
        self._inflater = zlib.decompressobj(wbits)
        self._needs_input = True

    @property
    def needs_input(self) -> bool:
        return self._needs_input

    @property
    def eof(self) -> bool:
        return self._inflater.eof

    @property
    def unused_data(self) -> bytes:
        return self._inflater.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        pending = self._inflater.unconsumed_tail + data
        before = self._inflater.copy()
        try:
            out = self._inflater.decompress(pending, max(0, max_length))
        except zlib.error as exc:
            raise CorruptAfter(_salvage(before, pending, max_length)) from exc
        self._needs_input = not self._inflater.unconsumed_tail and (max_length < 0 or len(out) < max_length)
        return out


class CorruptAfter(Exception):
    """A decoder failed; `output` is what it had decoded from the failing input before the error
    (streaming loaders act on those bytes before they fail)."""

    def __init__(self, output: bytes) -> None:
        super().__init__(f"corrupt after {len(output)} more bytes")
        self.output = output


def _salvage(inflater: zlib._Decompress, data: bytes, max_length: int) -> bytes:
    """Replay failing input in small steps on a copy of the earlier state, keeping what decodes."""
    out = bytearray()
    step = 256
    for start in range(0, len(data), step):
        try:
            out += inflater.decompress(data[start : start + step])
        except zlib.error:
            break
        if 0 <= max_length <= len(out):
            break
    return bytes(out if max_length < 0 else out[:max_length])


@dataclass
class ExpansionRecord:
    """What the readers of one compressed stream learned; the container reads it after the child scan."""

    compressed_size: int
    most_produced: int = 0
    reached_end: bool = False
    overflowed: bool = False
    truncated: bool = False
    limit_hit: LimitExceeded | None = None
    corrupt: str | None = None


def check_expansion(ctx: ScanContext, record: ExpansionRecord, produced: int) -> None:
    """Raise (and remember) when `produced` bytes from this stream cross a ratio or size bound."""
    limits = ctx.limits
    if produced > BOMB_SIZE_FLOOR and produced > record.compressed_size * limits.max_expansion_ratio:
        record.limit_hit = LimitExceeded(
            RATIO_LIMIT,
            produced,
            int(record.compressed_size * limits.max_expansion_ratio),
            f"{record.compressed_size} compressed bytes expand past {produced} bytes "
            f"(ratio above {limits.max_expansion_ratio:g})",
        )
        raise record.limit_hit
    if produced > limits.max_member_bytes:
        record.limit_hit = LimitExceeded("max_member_bytes", produced, limits.max_member_bytes)
        raise record.limit_hit


class DecompressingReader:
    """A sequential reader over decoded chunks that accounts every byte against the scan's limits.

    With `output_cap` it stops at that many bytes, as zip loaders stop at a member's declared size.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        ctx: ScanContext,
        record: ExpansionRecord,
        output_cap: int | None = None,
    ) -> None:
        self._chunks = chunks
        self._ctx = ctx
        self._record = record
        self._cap = output_cap
        self._buffer = bytearray()
        self._produced = 0
        self._returned = 0
        self._done = False

    def _pull(self) -> bool:
        if self._done:
            return False
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._done = True
            self._record.reached_end = True
            return False
        except LimitExceeded as exc:
            self._record.limit_hit = exc
            raise
        except CODEC_ERRORS as exc:
            # Loaders stop here too; what was decoded so far is what they would have acted on.
            self._record.corrupt = f"{type(exc).__name__}: {exc} after {self._produced} bytes"
            self._done = True
            return False
        if self._cap is not None and self._produced + len(chunk) > self._cap:
            chunk = chunk[: self._cap - self._produced]
            self._record.overflowed = True
            self._done = True
        self._produced += len(chunk)
        self._record.most_produced = max(self._record.most_produced, self._produced)
        try:
            self._ctx.count_expanded(len(chunk))
        except LimitExceeded as exc:
            self._record.limit_hit = exc
            raise
        check_expansion(self._ctx, self._record, self._produced)
        self._buffer += chunk
        return True

    def read(self, n: int | None = -1) -> bytes:
        wanted = None if n is None or n < 0 else n
        while (wanted is None or len(self._buffer) < wanted) and self._pull():
            self._ctx.check_time()
        take = len(self._buffer) if wanted is None else min(wanted, len(self._buffer))
        out = bytes(self._buffer[:take])
        del self._buffer[:take]
        self._returned += take
        return out

    def readinto(self, target: bytearray | memoryview) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._returned

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._done = True
        self._buffer.clear()

    def __enter__(self) -> DecompressingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def decode_chunks(
    source: ByteReader,
    make_decoder: Callable[[], StreamDecoder],
    record: ExpansionRecord,
    next_member: Callable[[bytes], bool] | None = None,
) -> Iterator[bytes]:
    """Decoded chunks of at most OUTPUT_CHUNK bytes; `next_member` says whether leftover input after
    one stream's end starts another stream (gzip, bz2 and xz files may hold several)."""
    decoder = make_decoder()
    pending = b""
    while True:
        if decoder.needs_input:
            data = pending or source.read(INPUT_CHUNK)
            pending = b""
            if not data:
                record.truncated = not decoder.eof
                return
        else:
            data = b""
        try:
            out = decoder.decompress(data, OUTPUT_CHUNK)
        except CorruptAfter as partial:
            if partial.output:
                yield partial.output
            assert partial.__cause__ is not None
            raise partial.__cause__ from None
        if out:
            yield out
        if decoder.eof:
            leftover = decoder.unused_data or source.read(INPUT_CHUNK)
            if next_member is None or not leftover or not next_member(leftover):
                return
            decoder = make_decoder()
            pending = leftover


def zstd_chunks(source: ByteReader) -> Iterator[bytes]:
    """Decoded zstd chunks; zstandard's stream reader bounds each read, so one frame cannot explode."""
    import zstandard  # imported on first use: most scans never meet zstd

    decompressor = zstandard.ZstdDecompressor()
    # zstandard only needs .read(); its annotation asks for a full IO[bytes].
    with decompressor.stream_reader(source, read_across_frames=True, closefd=False) as reader:  # type: ignore[arg-type]
        while True:
            try:
                chunk = reader.read(OUTPUT_CHUNK)
            except zstandard.ZstdError as exc:
                raise ValueError(f"zstd: {exc}") from exc  # one of CODEC_ERRORS, like the other codecs
            if not chunk:
                return
            yield chunk


def drain(reader: DecompressingReader, ctx: ScanContext) -> None:
    """Read a stream to its end (or to the first limit) to finish measuring its expansion."""
    while reader.read(OUTPUT_CHUNK):
        ctx.check_time()


def expansion_events(
    container: Blob, ctx: ScanContext, record: ExpansionRecord, what: str
) -> Iterator[Finding | ScanIssue]:
    """A bomb finding when the ratio was crossed, and an issue for any stream not read to its end."""
    hit = record.limit_hit
    if record.corrupt is not None:
        yield CORRUPT_STREAM.at(
            ctx.where(container, detail=what), f"{what} is corrupt", evidence=record.corrupt
        )
    if hit is None:
        if record.truncated and record.corrupt is None:
            yield ScanIssue("truncated", f"{what} ends before its end-of-stream marker", ctx.where(container))
        return
    if hit.limit == RATIO_LIMIT:
        yield BOMB.at(
            ctx.where(container, detail=what),
            f"{what}: {record.compressed_size} bytes expand to more than {hit.value} bytes",
            evidence=f"ratio above {ctx.limits.max_expansion_ratio:g}; decompression stopped",
        )
    yield ScanIssue("limit", f"{what} not fully scanned: {hit}", Location(container.chain, detail=hit.limit))


@dataclass(frozen=True)
class CompressedFormat:
    """One single-stream compressor: how to recognise it and how to decode it."""

    name: str
    element: str
    recognise: Callable[[bytes], bool]
    open_chunks: Callable[[ByteReader, ExpansionRecord], Iterator[bytes]]
    version: str = "1"

    def sniff(self, blob: Blob) -> bool:
        return self.recognise(blob.head(64))

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        record = ExpansionRecord(compressed_size=blob.size)

        def open_reader() -> DecompressingReader:
            return DecompressingReader(self.open_chunks(blob.stream(), record), ctx, record)

        yield StreamBlob(open_reader, 0, blob.child_chain(self.element), ctx.limits.max_materialized_bytes)
        if record.limit_hit is None and not record.reached_end:
            try:
                with open_reader() as reader:
                    drain(reader, ctx)
            except LimitExceeded:
                pass  # recorded in `record`; reported below
        yield from expansion_events(blob, ctx, record, f"{self.name} stream")


def _is_gzip(head: bytes) -> bool:
    return len(head) >= 10 and head[:3] == b"\x1f\x8b\x08" and head[3] & 0xE0 == 0


def _gzip_follows(leftover: bytes) -> bool:
    return leftover.startswith(GZIP_MAGIC)


def _gzip_chunks(source: ByteReader, record: ExpansionRecord) -> Iterator[bytes]:
    return decode_chunks(source, lambda: ZlibDecoder(16 + zlib.MAX_WBITS), record, _gzip_follows)


def _is_bzip2(head: bytes) -> bool:
    return (
        len(head) >= 10
        and head[:3] == b"BZh"
        and 0x31 <= head[3] <= 0x39
        and head[4:10] in (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")
    )


def _bzip2_chunks(source: ByteReader, record: ExpansionRecord) -> Iterator[bytes]:
    return decode_chunks(source, bz2.BZ2Decompressor, record, lambda rest: rest.startswith(b"BZh"))


def _xz_chunks(source: ByteReader, record: ExpansionRecord) -> Iterator[bytes]:
    return decode_chunks(
        source, lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), record, lambda rest: rest.startswith(XZ_MAGIC)
    )


def _is_lzma_alone(head: bytes) -> bool:
    if len(head) < 14 or head[0] >= 9 * 5 * 5:
        return False
    dictionary, declared = struct.unpack_from("<IQ", head, 1)
    if not plausible_lzma_dictionary(dictionary):
        return False
    if declared != 0xFFFF_FFFF_FFFF_FFFF and declared >= 1 << 48:
        return False
    try:
        lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(head, 64)
    except lzma.LZMAError:
        return False
    return True


def _lzma_alone_chunks(source: ByteReader, record: ExpansionRecord) -> Iterator[bytes]:
    return decode_chunks(source, lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE), record)


def _zstd_chunks(source: ByteReader, record: ExpansionRecord) -> Iterator[bytes]:
    return zstd_chunks(source)


def _is_zlib(head: bytes) -> bool:
    if len(head) < 3 or not zlib_header(head):
        return False
    try:
        zlib.decompressobj().decompress(head, 64)
    except zlib.error:
        return False
    return True


def _zlib_chunks(source: ByteReader, record: ExpansionRecord) -> Iterator[bytes]:
    return decode_chunks(source, lambda: ZlibDecoder(zlib.MAX_WBITS), record)


# joblib's pre-0.10 "z-file": b"ZF", the data length in hex padded to 19 characters, an optional space
# (older writers), then a zlib stream. joblib.load still reads it.
ZFILE_HEADER = len(ZFILE_PREFIX) + 19


def _is_joblib_zfile(head: bytes) -> bool:
    if not head.startswith(ZFILE_PREFIX) or len(head) <= ZFILE_HEADER:
        return False
    try:
        int(head[len(ZFILE_PREFIX) : ZFILE_HEADER].strip(), 16)
    except ValueError:
        return False
    start = ZFILE_HEADER + (head[ZFILE_HEADER : ZFILE_HEADER + 1] == b" ")
    return _is_zlib(head[start:])


class _Prefixed:
    """A reader that yields `prefix` before the rest of `source`."""

    def __init__(self, prefix: bytes, source: ByteReader) -> None:
        self._prefix = prefix
        self._source = source

    def read(self, n: int = -1, /) -> bytes:
        if not self._prefix:
            return self._source.read(n)
        if n < 0:
            out, self._prefix = self._prefix, b""
            return out + self._source.read()
        out, self._prefix = self._prefix[:n], self._prefix[n:]
        return out

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> _Prefixed:
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object, /) -> None:
        self.close()


def _joblib_zfile_chunks(source: ByteReader, record: ExpansionRecord) -> Iterator[bytes]:
    source.read(ZFILE_HEADER)
    first = source.read(1)
    rest = _Prefixed(b"" if first == b" " else first, source)
    return decode_chunks(rest, lambda: ZlibDecoder(zlib.MAX_WBITS), record)


GZIP = CompressedFormat("gzip", "gzip-decompressed", _is_gzip, _gzip_chunks)
BZIP2 = CompressedFormat("bzip2", "bzip2-decompressed", _is_bzip2, _bzip2_chunks)
XZ = CompressedFormat("xz", "xz-decompressed", lambda head: head.startswith(XZ_MAGIC), _xz_chunks)
LZMA_ALONE = CompressedFormat("lzma", "lzma-decompressed", _is_lzma_alone, _lzma_alone_chunks)
ZSTD = CompressedFormat("zstd", "zstd-decompressed", lambda head: head.startswith(ZSTD_MAGIC), _zstd_chunks)
ZLIB = CompressedFormat("zlib", "zlib-decompressed", _is_zlib, _zlib_chunks)
JOBLIB_ZFILE = CompressedFormat("joblib-zfile", "zfile-decompressed", _is_joblib_zfile, _joblib_zfile_chunks)

HANDLERS: tuple[CompressedFormat, ...] = (GZIP, BZIP2, XZ, ZSTD, JOBLIB_ZFILE, LZMA_ALONE, ZLIB)
"""In sniffing order: unambiguous magics first, the heuristic lzma-alone and zlib checks last."""
