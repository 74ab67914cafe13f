"""A bounded FlatBuffers reader: every offset, vtable and vector is checked against the buffer before use."""

from __future__ import annotations

import struct
from dataclasses import dataclass

_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_SCALARS = {"B": 1, "b": 1, "H": 2, "h": 2, "I": 4, "i": 4, "Q": 8, "q": 8, "f": 4, "d": 8}


class FlatBufferError(ValueError):
    """The buffer breaks the FlatBuffers layout at `offset`; nothing past it is trusted."""

    def __init__(self, offset: int, message: str) -> None:
        self.offset = offset
        super().__init__(f"{message} (at byte {offset})")


class FlatBuffer:
    """A read-only view of one FlatBuffer; `max_tables` bounds the work a shared-subtree DAG can cause."""

    def __init__(self, data: bytes | memoryview, *, max_tables: int = 1 << 20) -> None:
        self.data = data
        self.size = len(data)
        self.tables_read = 0
        self.max_tables = max_tables

    def _need(self, at: int, n: int, what: str) -> None:
        if at < 0 or n < 0 or at + n > self.size:
            raise FlatBufferError(at, f"{what} ({n} bytes) lies outside the {self.size}-byte buffer")

    def u32(self, at: int, what: str) -> int:
        self._need(at, 4, what)
        value: int = _U32.unpack_from(self.data, at)[0]
        return value

    def identifier(self) -> bytes:
        return bytes(self.data[4:8]) if self.size >= 8 else b""

    def root(self) -> Table:
        return self.table_at(self.u32(0, "root offset"), "root table")

    def table_at(self, at: int, what: str) -> Table:
        self.tables_read += 1
        if self.tables_read > self.max_tables:
            raise FlatBufferError(at, f"more than {self.max_tables} tables read")
        self._need(at, 4, what)
        vtable = at - _I32.unpack_from(self.data, at)[0]
        self._need(vtable, 4, f"vtable of {what}")
        vt_size: int = _U16.unpack_from(self.data, vtable)[0]
        inline_size: int = _U16.unpack_from(self.data, vtable + 2)[0]
        if vt_size < 4 or vt_size % 2:
            raise FlatBufferError(vtable, f"vtable of {what} declares an invalid size {vt_size}")
        self._need(vtable, vt_size, f"vtable of {what}")
        if inline_size < 4:
            raise FlatBufferError(vtable, f"{what} declares an inline size {inline_size} below 4")
        self._need(at, inline_size, what)
        return Table(self, at, vtable, (vt_size - 4) // 2, inline_size, what)


@dataclass(frozen=True)
class Vector:
    """A vector: `count` elements of `element_size` bytes starting at `start`, all inside the buffer."""

    fb: FlatBuffer
    start: int
    count: int
    element_size: int
    what: str

    def table(self, index: int) -> Table:
        at = self.start + index * 4
        return self.fb.table_at(at + self.fb.u32(at, f"{self.what}[{index}]"), f"{self.what}[{index}]")

    def scalar(self, index: int, fmt: str) -> int:
        value: int = struct.unpack_from("<" + fmt, self.fb.data, self.start + index * self.element_size)[0]
        return value


@dataclass(frozen=True)
class Table:
    """A table: fields by their slot number in the schema, absent fields read as their default."""

    fb: FlatBuffer
    at: int
    vtable: int
    slots: int
    inline_size: int
    what: str

    def field(self, slot: int, width: int) -> int | None:
        """Absolute position of a present field, checked to lie inside the table and the buffer."""
        if slot >= self.slots:
            return None
        rel: int = _U16.unpack_from(self.fb.data, self.vtable + 4 + 2 * slot)[0]
        if rel == 0:
            return None
        if rel + width > self.inline_size:
            raise FlatBufferError(self.vtable, f"field {slot} of {self.what} lies outside the table")
        return self.at + rel

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        pos = self.field(slot, _SCALARS[fmt])
        if pos is None:
            return default
        value: int = struct.unpack_from("<" + fmt, self.fb.data, pos)[0]
        return value

    def _target(self, slot: int, what: str) -> int | None:
        pos = self.field(slot, 4)
        if pos is None:
            return None
        return pos + self.fb.u32(pos, what)

    def table(self, slot: int, name: str) -> Table | None:
        target = self._target(slot, f"{self.what}.{name}")
        return None if target is None else self.fb.table_at(target, f"{self.what}.{name}")

    def vector(self, slot: int, element_size: int, name: str) -> Vector | None:
        what = f"{self.what}.{name}"
        start = self._target(slot, what)
        if start is None:
            return None
        count = self.fb.u32(start, f"length of {what}")
        self.fb._need(start + 4, count * element_size, what)
        return Vector(self.fb, start + 4, count, element_size, what)

    def string(self, slot: int, name: str, limit: int = 1024) -> str | None:
        """A string field (decoded with replacement, cut at `limit` bytes); None when absent."""
        vec = self.vector(slot, 1, name)
        if vec is None:
            return None
        raw = bytes(self.fb.data[vec.start : vec.start + min(vec.count, limit)])
        return raw.decode("utf-8", "replace") + ("…" if vec.count > limit else "")
