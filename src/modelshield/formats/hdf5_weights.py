"""`--deep` over HDF5 datasets (plain HDF5, legacy Keras `.h5`, Keras v3 `model.weights.h5`): each float
dataset the in-process reader (`hdf5_structure`) walked is read where its layout puts it (contiguous
bytes in place; compact bytes from the object header; chunks through the chunk B-tree, inflated and
unshuffled within the scan's expansion limits, one chunk at a time) and handed to the weight analysis.
A float dataset it cannot read (another filter, a layout version it does not know, big-endian) is a
deep-unsupported issue, never a silent skip."""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from modelshield.analysis import weights
from modelshield.engine.blob import Blob, BufferBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.formats.base import ScanEvent
from modelshield.formats.compressed import DecompressingReader, ExpansionRecord, ZlibDecoder, decode_chunks
from modelshield.formats.hdf5_structure import DATASPACE, DATATYPE, FILTERS, LAYOUT, DatasetMessages

COMPACT, CONTIGUOUS, CHUNKED = 0, 1, 2
DEFLATE, SHUFFLE = 1, 2
READ_FILTERS = frozenset({DEFLATE, SHUFFLE})
"""Filters --deep undoes (h5py's gzip and shuffle); a dataset through any other is reported unread."""
_FLOAT_CLASS = 1
_FLOATS = {(4, 8, 23): "F32", (2, 5, 10): "F16", (2, 8, 7): "BF16"}
"""(size, exponent bits, mantissa bits) of the float types analysed, in the weight analysis' spelling."""
_NOT_LITTLE_ENDIAN = 0x41
"""Datatype bit field bits 0 and 6: big-endian or VAX byte order."""
MAX_BTREE_NODES = 1 << 20
MAX_REPORTED = 32


class NotReadable(Exception):
    """A float dataset --deep does not read (the message says why)."""


ChunkEntry = tuple[int, int, tuple[int, ...], int]
"""(stored size, filter mask, element offsets, absolute address) of one chunk."""


@dataclass(frozen=True)
class _Chunked:
    """A chunked dataset's shape and encoding."""

    dims: tuple[int, ...]
    chunk: tuple[int, ...]
    width: int
    filters: tuple[int, ...]


def deep_datasets(blob: Blob, ctx: ScanContext, datasets: list[DatasetMessages]) -> Iterator[ScanEvent]:
    """Findings for payloads in the low bits of the file's float datasets; an issue for each one unread."""
    unread: list[tuple[str, str]] = []
    for dataset in datasets:
        ctx.check_time()
        try:
            tensor = _tensor(blob, ctx, dataset)
            if tensor is not None:
                yield from weights.scan_tensors(blob, ctx, [tensor])
        except NotReadable as exc:
            unread.append((dataset.path, str(exc)))
        except (struct.error, IndexError, ValueError) as exc:
            unread.append((dataset.path, f"malformed storage messages ({exc})"))
    yield from _unread_issues(blob, unread)


def _unread_issues(blob: Blob, unread: list[tuple[str, str]]) -> Iterator[ScanEvent]:
    for path, why in unread[:MAX_REPORTED]:
        yield ScanIssue(
            "deep-unsupported",
            f"--deep did not read dataset {path!r:.200}: {why}",
            Location((*blob.chain, path)),
        )
    if len(unread) > MAX_REPORTED:
        yield ScanIssue(
            "deep-unsupported",
            f"--deep did not read {len(unread) - MAX_REPORTED} more datasets",
            Location(blob.chain),
        )


def _tensor(blob: Blob, ctx: ScanContext, dataset: DatasetMessages) -> weights.FloatTensor | None:
    """The dataset's bytes for the analysis, None when it holds no float data stored in the file."""
    messages = dataset.messages
    dtype = _float_dtype(messages.get(DATATYPE, b""))
    if dtype is None:
        return None
    dims = _dims(messages.get(DATASPACE, b""), dataset.length_size)
    if dims is None:
        return None
    width = weights.FLOAT_WIDTHS[dtype]
    nbytes = math.prod(dims) * width
    layout = messages.get(LAYOUT, b"")
    if len(layout) < 2 or layout[0] != 3:
        raise NotReadable(f"layout message version {layout[:1].hex() or 'missing'}")
    filters = _filters(messages.get(FILTERS))
    o, lsize = dataset.offset_size, dataset.length_size
    undefined = (1 << (8 * o)) - 1
    if layout[1] == COMPACT:
        (size,) = struct.unpack_from("<H", layout, 2)
        data = layout[4 : 4 + min(size, nbytes)]
        return weights.FloatTensor(
            dataset.path, dtype, 0, len(data), lambda at, n: data[at : at + n], (*blob.chain, dataset.path)
        )
    if layout[1] == CONTIGUOUS:
        address, size = _number(layout, 2, o), _number(layout, 2 + o, lsize)
        if address == undefined:
            return None  # never written: the fill value, not stored bytes
        start = dataset.base + address
        if size < nbytes or start + nbytes > blob.size:
            raise NotReadable(f"its {nbytes} bytes at {start} are not all in the file")
        return weights.FloatTensor(dataset.path, dtype, start, nbytes)
    if layout[1] == CHUNKED:
        rank = layout[2] - 1
        address = _number(layout, 3, o)
        sizes = struct.unpack_from(f"<{rank + 1}I", layout, 3 + o)
        if rank != len(dims) or sizes[-1] != width or 0 in sizes:
            raise NotReadable("chunk dimensions do not match the dataspace")
        if address == undefined:
            return None
        chunked = _Chunked(tuple(dims), tuple(sizes[:-1]), width, filters)
        index = _chunk_index(blob, ctx, dataset, dataset.base + address, len(dims))
        return _chunked_tensor(blob, ctx, dataset.path, dtype, chunked, index)
    raise NotReadable(f"layout class {layout[1]}")


def _chunked_tensor(
    blob: Blob, ctx: ScanContext, path: str, dtype: str, chunked: _Chunked, index: Iterable[ChunkEntry]
) -> weights.FloatTensor:
    """A chunked dataset's elements, decoded chunk by chunk as the analysis reads them."""
    unknown = sorted(set(chunked.filters) - READ_FILTERS)
    if unknown:
        raise NotReadable(f"filter {unknown[0]} (--deep undoes gzip and shuffle only)")
    chunk_bytes = math.prod(chunked.chunk) * chunked.width
    if chunk_bytes > ctx.limits.max_materialized_bytes:
        raise NotReadable(f"chunks of {chunk_bytes} bytes (max_materialized_bytes)")
    stream = _ChunkStream(_chunk_data(blob, ctx, index, chunked))
    nbytes = math.prod(chunked.dims) * chunked.width
    return weights.FloatTensor(
        path, dtype, 0, nbytes, weights.SequentialReads(stream.read), (*blob.chain, path)
    )


def deep_probed(blob: Blob, ctx: ScanContext, entries: list[dict[str, Any]]) -> Iterator[ScanEvent]:
    """`--deep` over the float datasets the isolated h5py probe located (files the in-process reader
    leaves to it): their bytes are read here, from the scanned blob, as for the in-process reader's."""
    unread: list[tuple[str, str]] = []
    for entry in entries:
        ctx.check_time()
        path = str(entry.get("path", "?"))
        try:
            tensor = _probed_tensor(blob, ctx, entry, path)
            if tensor is not None:
                yield from weights.scan_tensors(blob, ctx, [tensor])
        except NotReadable as exc:
            unread.append((path, str(exc)))
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            unread.append((path, f"the probe's description of it does not hold ({exc})"))
    yield from _unread_issues(blob, unread)


def _probed_tensor(
    blob: Blob, ctx: ScanContext, entry: dict[str, Any], path: str
) -> weights.FloatTensor | None:
    dtype_text = str(entry["dtype"])
    if dtype_text.startswith(">"):
        raise NotReadable("big-endian floats (--deep reads little-endian weights only)")
    dtype = {"<f4": "F32", "<f2": "F16"}.get(dtype_text)
    if dtype is None:
        return None
    width = weights.FLOAT_WIDTHS[dtype]
    dims = tuple(int(d) for d in entry["shape"])
    nbytes = math.prod(dims) * width
    if entry["layout"] == "contiguous":
        if entry["offset"] is None:
            return None  # never written
        start = int(entry["offset"])
        if start < 0 or start + nbytes > blob.size:
            raise NotReadable(f"its {nbytes} bytes at {start} are not all in the file")
        return weights.FloatTensor(path, dtype, start, nbytes)
    if entry["layout"] == "chunked":
        if "chunks" not in entry:
            raise NotReadable("more chunks in the file than the probe lists")
        chunked = _Chunked(dims, tuple(int(c) for c in entry["chunk_shape"]), width, tuple(entry["filters"]))
        if len(chunked.chunk) != len(dims):
            raise NotReadable("chunk dimensions do not match the dataspace")
        index = sorted(
            (
                (int(size), int(mask), tuple(int(o) for o in offsets), int(at))
                for offsets, mask, at, size in entry["chunks"]
            ),
            key=lambda chunk: chunk[2],
        )
        return _chunked_tensor(blob, ctx, path, dtype, chunked, index)
    raise NotReadable(f"{entry['layout']} storage")


def _number(data: bytes, at: int, size: int) -> int:
    if at + size > len(data):
        raise NotReadable("storage message shorter than its fields")
    return int.from_bytes(data[at : at + size], "little")


def _float_dtype(datatype: bytes) -> str | None:
    """The analysis' name for a little-endian float datatype of a known shape; None for other types."""
    if len(datatype) < 16 or datatype[0] & 0x0F != _FLOAT_CLASS:
        return None
    size = struct.unpack_from("<I", datatype, 4)[0]
    dtype = _FLOATS.get((size, datatype[13], datatype[15]))
    if dtype is not None and datatype[1] & _NOT_LITTLE_ENDIAN:
        raise NotReadable("big-endian floats (--deep reads little-endian weights only)")
    return dtype


def _dims(dataspace: bytes, length_size: int) -> list[int] | None:
    """The dataset's dimensions; None for a null dataspace (no data)."""
    if len(dataspace) < 2:
        raise NotReadable("no dataspace message")
    version, rank = dataspace[0], dataspace[1]
    if version == 1:
        at = 8
    elif version == 2:
        if dataspace[3] == 2:
            return None
        at = 4
    else:
        raise NotReadable(f"dataspace version {version}")
    return [_number(dataspace, at + i * length_size, length_size) for i in range(rank)]


def _filters(pipeline: bytes | None) -> tuple[int, ...]:
    """The filter ids of a pipeline message, in the order they were applied when writing."""
    if not pipeline:
        return ()
    version, count = pipeline[0], pipeline[1]
    if version not in (1, 2):
        raise NotReadable(f"filter pipeline version {version}")
    ids: list[int] = []
    at = 8 if version == 1 else 2
    for _ in range(count):
        (filter_id,) = struct.unpack_from("<H", pipeline, at)
        if version == 1:
            name_length, _flags, values = struct.unpack_from("<HHH", pipeline, at + 2)
            at += 8 + name_length + 4 * values + (4 if values % 2 else 0)
        else:
            name_length = struct.unpack_from("<H", pipeline, at + 2)[0] if filter_id >= 256 else 0
            at += 2 if filter_id >= 256 else 0
            _flags, values = struct.unpack_from("<HH", pipeline, at + 2)
            at += 6 + name_length + 4 * values
        ids.append(filter_id)
    return tuple(ids)


def _chunk_index(
    blob: Blob, ctx: ScanContext, dataset: DatasetMessages, root: int, rank: int
) -> Iterator[ChunkEntry]:
    """Each chunk of the version-1 chunk B-tree at `root`, in key (row-major) order."""
    o = dataset.offset_size
    key_size = 8 + 8 * (rank + 1)
    stack: list[tuple[int, int | None]] = [(root, None)]
    visited: set[int] = set()
    while stack:
        node, expected_level = stack.pop()
        if node in visited or len(visited) >= MAX_BTREE_NODES:
            raise NotReadable("chunk B-tree cycle or size")
        visited.add(node)
        ctx.check_time()
        head = blob.read_at(node, 8 + 2 * o)
        if len(head) < 8 + 2 * o or head[:4] != b"TREE" or head[4] != 1:
            raise NotReadable("chunk B-tree node")
        level, used = head[5], struct.unpack_from("<H", head, 6)[0]
        if expected_level is not None and level != expected_level:
            raise NotReadable("chunk B-tree levels")
        size = used * (key_size + o) + key_size
        body = blob.read_at(node + 8 + 2 * o, size)
        if len(body) != size:
            raise NotReadable("chunk B-tree node beyond the end of the file")
        entries = []
        for i in range(used):
            at = i * (key_size + o)
            stored, mask = struct.unpack_from("<II", body, at)
            offsets = struct.unpack_from(f"<{rank}Q", body, at + 8)
            entries.append((stored, mask, offsets, dataset.base + _number(body, at + key_size, o)))
        if level:
            stack.extend((entry[3], level - 1) for entry in reversed(entries))
        else:
            yield from entries


def _chunk_data(
    blob: Blob, ctx: ScanContext, index: Iterable[ChunkEntry], layout: _Chunked
) -> Iterator[bytes]:
    """The dataset's elements chunk by chunk, decoded, without the padding of edge chunks."""
    chunk_bytes = math.prod(layout.chunk) * layout.width
    for stored, mask, offsets, address in index:
        ctx.check_time()
        if stored > ctx.limits.max_materialized_bytes:
            raise NotReadable(f"a chunk of {stored} stored bytes (max_materialized_bytes)")
        data = blob.read_at(address, stored)
        if len(data) != stored:
            raise NotReadable("a chunk beyond the end of the file")
        for position in reversed(range(len(layout.filters))):
            if mask >> position & 1:
                continue  # this filter was skipped for this chunk
            if layout.filters[position] == DEFLATE:
                data = _inflate(ctx, data, chunk_bytes)
            else:
                data = _unshuffle(data, layout.width)
        if len(data) != chunk_bytes:
            raise NotReadable(f"a chunk holds {len(data)} bytes, {chunk_bytes} expected")
        yield _inside(data, offsets, layout)


def _inflate(ctx: ScanContext, data: bytes, cap: int) -> bytes:
    record = ExpansionRecord(compressed_size=len(data))
    chunks = decode_chunks(BufferBlob(data, ()).stream(), lambda: ZlibDecoder(zlib.MAX_WBITS), record)
    with DecompressingReader(chunks, ctx, record, cap) as reader:
        out = reader.read(cap)
    if record.corrupt:
        raise NotReadable(f"a gzip chunk does not inflate: {record.corrupt}")
    return out


def _unshuffle(data: bytes, width: int) -> bytes:
    """Undo HDF5's shuffle filter: byte k of every element was stored together, k by k."""
    count = len(data) // width
    out = bytearray(data)
    for k in range(width):
        out[k : count * width : width] = data[k * count : (k + 1) * count]
    return bytes(out)


def _inside(data: bytes, offsets: tuple[int, ...], layout: _Chunked) -> bytes:
    """The part of a chunk inside the dataset (edge chunks are padded to the full chunk shape)."""
    extents = [max(0, min(c, d - o)) for c, d, o in zip(layout.chunk, layout.dims, offsets, strict=True)]
    if extents == list(layout.chunk):
        return data
    if 0 in extents:
        return b""
    strides = [layout.width]
    for size in reversed(layout.chunk[1:]):
        strides.insert(0, strides[0] * size)
    run = extents[-1] * layout.width
    starts = (
        sum(i * s for i, s in zip(index, strides, strict=False))
        for index in itertools.product(*(range(e) for e in extents[:-1]))
    )
    return b"".join(data[start : start + run] for start in starts)


class _ChunkStream:
    """Sequential reads over decoded chunks: one chunk is held at a time."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pieces: list[bytes] = []
        self._held = 0

    def read(self, n: int) -> bytes:
        while self._held < n:
            piece = next(self._chunks, None)
            if piece is None:
                break
            self._pieces.append(piece)
            self._held += len(piece)
        data = b"".join(self._pieces)
        out, rest = data[:n], data[n:]
        self._pieces, self._held = ([rest] if rest else []), len(rest)
        return out
