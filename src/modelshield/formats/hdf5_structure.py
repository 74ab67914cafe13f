"""Pure-Python reader of the HDF5 structures h5py writes by default (superblock v0/v1, version-1 object
headers, symbol-table groups): it builds the isolated probe's report without starting a child, and gives
up (None) on anything else, which then goes to the isolated h5py probe."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from modelshield.analysis.hdf5_probe import MAX_ATTRIBUTE_BYTES, MAX_DEPTH, MAX_OBJECTS, Report
from modelshield.engine.blob import Blob
from modelshield.engine.limits import MiB

SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_HEAP_BYTES = 16 * MiB
"""A group's local heap (its member names) or a global heap collection larger than this goes to h5py."""
MAX_HEADER_CHUNKS = 256
MAX_STRUCTURE_READ = 256 * MiB
"""Bytes of structures read in all: objects sharing one large header chunk or heap cannot multiply it."""
MAX_ELEMENTS = 1 << 20
MAX_NAME_BYTES = 64 * 1024

# Object header message types this reader interprets or may ignore: whatever else a header holds (links
# of the new group format, external raw data files, shared or dense attributes, ...) goes to h5py.
NIL, DATASPACE, DATATYPE, FILL_OLD, FILL, LAYOUT, FILTERS, ATTRIBUTE, COMMENT = 0, 1, 3, 4, 5, 8, 11, 12, 13
MTIME_OLD, CONTINUATION, SYMBOL_TABLE, MTIME, BTREE_K = 14, 16, 17, 18, 19
_IGNORED = frozenset({NIL, DATASPACE, FILL_OLD, FILL, FILTERS, COMMENT, MTIME_OLD, MTIME, BTREE_K})
_STORAGE = frozenset({DATASPACE, DATATYPE, LAYOUT, FILTERS})
_SHARED = 0x02
_INTEGER, _STRING, _OPAQUE, _VLEN = 0, 3, 5, 9
_VLEN_STRING = 1


class Unsupported(Exception):
    """The file holds a structure this reader does not interpret (or a malformed one): h5py decides."""


@dataclass
class _Header:
    """What the walk needs of one object header."""

    attributes: list[bytes] = field(default_factory=list)
    symbol_table: tuple[int, int] | None = None
    is_dataset: bool = False
    is_datatype: bool = False
    storage: dict[int, bytes] = field(default_factory=dict)
    """The dataspace, datatype, layout and filter pipeline messages, by type."""


@dataclass(frozen=True)
class DatasetMessages:
    """Where a dataset's data is and how it is encoded, as its object header says (for `--deep`, which
    interprets them: `hdf5_weights`)."""

    path: str
    messages: dict[int, bytes]
    """Message bodies by type: DATASPACE, DATATYPE, LAYOUT, FILTERS (those present)."""
    offset_size: int
    length_size: int
    base: int
    """Absolute file offset that stored addresses count from (the superblock's)."""


def read_report(
    blob: Blob, superblock_at: int, datasets: list[DatasetMessages] | None = None
) -> dict[str, Any] | None:
    """The probe's report for a file whose every structure this reader understands, else None. With
    `datasets`, every dataset's storage messages are appended to it too."""
    try:
        return _Reader(blob, superblock_at, datasets).walk()
    except (Unsupported, struct.error, UnicodeDecodeError, ValueError, IndexError):
        return None


class _Reader:
    def __init__(self, blob: Blob, superblock_at: int, datasets: list[DatasetMessages] | None = None) -> None:
        self.blob = blob
        self.base = superblock_at
        self.report = Report()
        self.datasets = datasets
        self.heaps: dict[int, dict[int, bytes]] = {}
        self.budget = MAX_STRUCTURE_READ
        head = self.read(superblock_at, 24)
        sizes_known = head[13] in (2, 4, 8) and head[14] in (2, 4, 8)
        if head[:8] != SIGNATURE or head[8] not in (0, 1) or not sizes_known:
            raise Unsupported("superblock version or sizes")
        self.offset_size, self.length_size = head[13], head[14]
        self.leaf_k, self.internal_k = struct.unpack_from("<HH", head, 16)
        if not self.leaf_k or not self.internal_k:
            raise Unsupported("B-tree K of zero")
        at = superblock_at + 24 + (4 if head[8] == 1 else 0)
        stored = self.read(at, 4 * self.offset_size)
        base = self.number(stored, 0, self.offset_size)
        driver = self.address(self.number(stored, 3 * self.offset_size, self.offset_size))
        if base != superblock_at or driver is not None:
            raise Unsupported("base address or driver block")
        entry_at = at + 4 * self.offset_size
        self.root = self.symbol_entry(self.read(entry_at, 2 * self.offset_size + 24))[1]
        self.report.report["userblock_size"] = superblock_at

    # Low-level reads -----------------------------------------------------------------------------

    def read(self, offset: int, n: int) -> bytes:
        self.budget -= n
        if self.budget < 0:
            raise Unsupported("more structure than the in-process reader reads")
        data = self.blob.read_at(offset, n) if 0 <= offset and offset + n <= self.blob.size else b""
        if len(data) != n:
            raise Unsupported("structure beyond the end of the file")
        return data

    def number(self, data: bytes, at: int, size: int) -> int:
        return int.from_bytes(data[at : at + size], "little")

    def address(self, value: int) -> int | None:
        """An absolute file offset for a stored address (None for the undefined address)."""
        return None if value == (1 << (8 * self.offset_size)) - 1 else self.base + value

    def defined(self, address: int | None) -> int:
        if address is None:
            raise Unsupported("undefined address where an object is needed")
        return address

    # Groups --------------------------------------------------------------------------------------

    def symbol_entry(self, data: bytes) -> tuple[int, int]:
        """(name offset in the group's heap, object header address) of a hard link entry."""
        o = self.offset_size
        name_offset = self.number(data, 0, o)
        cache_type = self.number(data, 2 * o, 4)
        if cache_type not in (0, 1):
            raise Unsupported("symbolic link (h5py reports it)")
        return name_offset, self.defined(self.address(self.number(data, o, o)))

    def members(self, btree: int, heap: int) -> list[tuple[str, int]]:
        """A symbol-table group's (name, object header) pairs in name order, as h5py iterates them."""
        names = self.local_heap(heap)
        members: list[tuple[str, int]] = []
        visited: set[int] = set()
        stack: list[tuple[int, int | None]] = [(btree, None)]
        while stack:
            node, expected_level = stack.pop()
            if node in visited or len(visited) > MAX_OBJECTS:
                raise Unsupported("B-tree cycle or size")
            visited.add(node)
            level, children = self.btree_node(node)
            if expected_level is not None and level != expected_level:
                raise Unsupported("B-tree levels")
            if level:
                stack.extend((child, level - 1) for child in reversed(children))
                continue
            for child in children:
                for name_offset, address in self.symbol_node(child):
                    end = names.find(b"\0", name_offset, name_offset + MAX_NAME_BYTES)
                    if end <= name_offset:
                        raise Unsupported("member name")
                    name = names[name_offset:end].decode("utf-8")
                    if name == "." or "/" in name:
                        raise Unsupported("member name that h5py would resolve as a path")
                    members.append((name, address))
        return members

    def btree_node(self, at: int) -> tuple[int, list[int]]:
        o, lsize = self.offset_size, self.length_size
        head = self.read(at, 8 + 2 * o)
        if head[:4] != b"TREE" or head[4] != 0 or head[5] > MAX_DEPTH:
            raise Unsupported("group B-tree node")
        used = struct.unpack_from("<H", head, 6)[0]
        if used > 2 * self.internal_k:
            raise Unsupported("B-tree node overfull")
        body = self.read(at + 8 + 2 * o, used * (lsize + o) + lsize)
        children = [self.number(body, lsize + i * (lsize + o), o) for i in range(used)]
        return head[5], [self.defined(self.address(child)) for child in children]

    def symbol_node(self, at: int) -> list[tuple[int, int]]:
        head = self.read(at, 8)
        count = struct.unpack_from("<H", head, 6)[0]
        if head[:4] != b"SNOD" or head[4] != 1 or count > 2 * self.leaf_k:
            raise Unsupported("symbol table node")
        size = 2 * self.offset_size + 24
        body = self.read(at + 8, count * size)
        return [self.symbol_entry(body[i * size : (i + 1) * size]) for i in range(count)]

    def local_heap(self, at: int) -> bytes:
        lsize = self.length_size
        head = self.read(at, 8 + 2 * lsize + self.offset_size)
        if head[:4] != b"HEAP" or head[4] != 0:
            raise Unsupported("local heap")
        size = self.number(head, 8, lsize)
        if size > MAX_HEAP_BYTES:
            raise Unsupported("local heap size")
        return self.read(self.defined(self.address(self.number(head, 8 + 2 * lsize, self.offset_size))), size)

    # Object headers ------------------------------------------------------------------------------

    def object_header(self, at: int) -> _Header:
        head = self.read(at, 16)
        if head[0] != 1:
            raise Unsupported("object header version")
        messages_left = struct.unpack_from("<H", head, 2)[0]
        chunks = [(at + 16, struct.unpack_from("<I", head, 8)[0])]
        seen_chunks: set[int] = set()
        header = _Header()
        while chunks and messages_left:
            start, length = chunks.pop(0)
            if start in seen_chunks or len(seen_chunks) >= MAX_HEADER_CHUNKS or length > MAX_HEAP_BYTES:
                raise Unsupported("object header chunks")
            seen_chunks.add(start)
            data = self.read(start, length)
            position = 0
            while position + 8 <= length and messages_left:
                kind, size, flags = struct.unpack_from("<HHB", data, position)
                body = data[position + 8 : position + 8 + size]
                if len(body) != size or flags & _SHARED:
                    raise Unsupported("object header message")
                position += 8 + size
                messages_left -= 1
                if kind == CONTINUATION:
                    chunk_at = self.defined(self.address(self.number(body, 0, self.offset_size)))
                    chunks.append((chunk_at, self.number(body, self.offset_size, self.length_size)))
                else:
                    if kind in _STORAGE and self.datasets is not None:
                        header.storage[kind] = body
                    self.message(header, kind, body)
        if messages_left:
            raise Unsupported("object header shorter than its message count")
        if header.symbol_table is not None and (header.is_dataset or header.is_datatype):
            raise Unsupported("object of two kinds")
        return header

    def message(self, header: _Header, kind: int, body: bytes) -> None:
        if kind == ATTRIBUTE:
            header.attributes.append(body)
        elif kind == SYMBOL_TABLE:
            btree, heap = (self.number(body, i * self.offset_size, self.offset_size) for i in (0, 1))
            header.symbol_table = (self.defined(self.address(btree)), self.defined(self.address(heap)))
        elif kind == LAYOUT:
            layout_class = body[2] if body[0] in (1, 2) else body[1] if body[0] == 3 else -1
            if layout_class not in (0, 1, 2):
                raise Unsupported("layout (virtual datasets go to h5py)")
            header.is_dataset = True
        elif kind == DATATYPE:
            header.is_datatype = True
        elif kind not in _IGNORED:
            raise Unsupported(f"object header message type {kind}")

    # Attributes ----------------------------------------------------------------------------------

    def attributes(self, header: _Header, path: str, *, root: bool = False) -> None:
        """Judge an object's attributes in name order, as h5py lists them."""
        named = sorted((self.attribute(body) for body in header.attributes), key=lambda a: a[0].encode())
        for name, data in named:
            if not self.report.count_attribute():
                raise Unsupported("attribute count (h5py reports the truncation)")
            if data is not None:
                self.report.attribute(path, name, data, root=root)

    def attribute(self, body: bytes) -> tuple[str, bytes | None]:
        """An attribute's name and the bytes the probe would judge (None for types it does not look at)."""
        version = body[0]
        name_size, type_size, space_size = struct.unpack_from("<HHH", body, 2)
        if version == 1:
            sizes = [(n + 7) & ~7 for n in (name_size, type_size, space_size)]
            at = 8
        elif version in (2, 3) and body[1] == 0:
            sizes = [name_size, type_size, space_size]
            at = 8 if version == 2 else 9
        else:
            raise Unsupported("attribute message version or shared parts")
        if not name_size or len(body) < at + sum(sizes):
            raise Unsupported("attribute message sizes")
        raw_name = body[at : at + name_size]
        if raw_name[-1:] != b"\0" or b"\0" in raw_name[:-1]:
            raise Unsupported("attribute name")
        name = raw_name[:-1].decode("utf-8")
        datatype = body[at + sizes[0] : at + sizes[0] + type_size]
        dataspace = body[at + sizes[0] + sizes[1] : at + sizes[0] + sizes[1] + space_size]
        data = body[at + sum(sizes) :]
        return name, self.attribute_bytes(datatype, dataspace, data)

    def elements(self, dataspace: bytes) -> tuple[int, bool]:
        """(element count, whether it is an array rather than a scalar)."""
        version, rank = dataspace[0], dataspace[1]
        if version == 1:
            dims_at, simple = 8, rank > 0
        elif version == 2 and dataspace[3] in (0, 1, 2):
            if dataspace[3] == 2:
                raise Unsupported("null dataspace (h5py's reading of it is reported as is)")
            dims_at, simple = 4, dataspace[3] == 1
        else:
            raise Unsupported("dataspace version")
        count = 1
        for i in range(rank):
            count *= self.number(dataspace, dims_at + i * self.length_size, self.length_size)
        if len(dataspace) < dims_at + rank * self.length_size or count > MAX_ELEMENTS:
            raise Unsupported("dataspace")
        return count, simple

    def attribute_bytes(self, datatype: bytes, dataspace: bytes, data: bytes) -> bytes | None:
        """The bytes h5py's reading of the attribute gives the probe (see `hdf5_probe._attribute_bytes`)."""
        type_class, size = datatype[0] & 0x0F, struct.unpack_from("<I", datatype, 4)[0]
        if type_class not in (_INTEGER, _STRING, _OPAQUE, _VLEN):
            return None
        count, simple = self.elements(dataspace)
        if type_class == _VLEN:
            return self.vlen_strings(datatype, data, count, simple)
        if not size or count * size > min(len(data), MAX_ATTRIBUTE_BYTES):
            raise Unsupported("attribute data size")
        values = data[: count * size]
        if type_class == _INTEGER:
            return values if simple and size == 1 else None
        if type_class == _OPAQUE:
            return values
        items = [values[i * size : (i + 1) * size].rstrip(b"\0") for i in range(count)]
        return b"\n".join(items[: self.report.max_reported]) if simple else items[0]

    def vlen_strings(self, datatype: bytes, data: bytes, count: int, simple: bool) -> bytes:
        if datatype[1] & 0x0F != _VLEN_STRING:
            raise Unsupported("variable-length sequence attribute")
        element = 4 + self.offset_size + 4
        if count * element > len(data):
            raise Unsupported("variable-length attribute data")
        items: list[bytes] = []
        total = 0
        for i in range(count):
            at = i * element
            length = self.number(data, at, 4)
            collection = self.number(data, at + 4, self.offset_size)
            index = self.number(data, at + 4 + self.offset_size, 4)
            text = self.heap_object(self.defined(self.address(collection)), index) if length else b""
            total += len(text)
            if len(text) != length or b"\0" in text or total > MAX_ATTRIBUTE_BYTES:
                raise Unsupported("variable-length string")
            text.decode("utf-8")  # h5py hands the probe str: a string that does not decode goes to h5py
            items.append(text)
        return b"\n".join(items[: self.report.max_reported]) if simple else items[0]

    def heap_object(self, collection: int, index: int) -> bytes:
        if collection not in self.heaps:
            self.heaps[collection] = self.global_heap(collection)
        try:
            return self.heaps[collection][index]
        except KeyError:
            raise Unsupported("global heap object") from None

    def global_heap(self, at: int) -> dict[int, bytes]:
        lsize = self.length_size
        head = self.read(at, 8 + lsize)
        size = self.number(head, 8, lsize)
        if head[:4] != b"GCOL" or head[4] != 1 or size > MAX_HEAP_BYTES or len(self.heaps) > MAX_OBJECTS:
            raise Unsupported("global heap collection")
        data = self.read(at, size)
        objects: dict[int, bytes] = {}
        position = 8 + lsize
        while position + 8 + lsize <= size:
            index = struct.unpack_from("<H", data, position)[0]
            length = self.number(data, position + 8, lsize)
            if index == 0:
                break
            start = position + 8 + lsize
            objects[index] = data[start : start + length]
            position = start + ((length + 7) & ~7)
        return objects

    # The walk ------------------------------------------------------------------------------------

    def walk(self) -> dict[str, Any]:
        """The probe's walk (`hdf5_probe.Probe.walk`) over the same structures, in the same order."""
        root = self.object_header(self.root)
        if root.symbol_table is None:
            raise Unsupported("root is not a symbol-table group")
        self.attributes(root, "/", root=True)
        seen: set[int] = set()
        stack: list[tuple[tuple[int, int], str, int]] = [(root.symbol_table, "/", 0)]
        while stack:
            table, where, depth = stack.pop()
            if depth >= MAX_DEPTH:
                raise Unsupported("depth (h5py reports the truncation)")
            for name, address in self.members(*table):
                if not self.report.count_object():
                    raise Unsupported("object count (h5py reports the truncation)")
                if address in seen:
                    continue
                seen.add(address)
                child_path = f"{where.rstrip('/')}/{name}"
                child = self.object_header(address)
                self.attributes(child, child_path)
                if child.symbol_table is not None:
                    stack.append((child.symbol_table, child_path, depth + 1))
                elif child.is_dataset and self.datasets is not None:
                    self.datasets.append(
                        DatasetMessages(
                            child_path, child.storage, self.offset_size, self.length_size, self.base
                        )
                    )
                elif not (child.is_dataset or child.is_datatype):
                    raise Unsupported("object of no known kind")
        return self.report.report
