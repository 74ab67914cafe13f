"""A small, bounded reader of the protobuf wire format over a Blob, for ONNX and TensorFlow files.

It never decodes a schema and never copies a length-delimited payload: such a field is returned as
an (offset, length) span into the blob, so tensor bytes are only read when a caller asks for them.
Nested messages are read by calling `fields()` again on a span, with an explicit depth that is
checked against a bound; groups (wire types 3 and 4) are refused, as no format we read uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from modelshield.engine.blob import HEAD_BYTES, Blob
from modelshield.engine.limits import DEFAULT_LIMITS

VARINT = 0
I64 = 1
LEN = 2
START_GROUP = 3
END_GROUP = 4
I32 = 5

MAX_VARINT_BYTES = 10
CHUNK = 64 * 1024
TICK_EVERY = 1 << 14


class ProtobufError(Exception):
    """The bytes are not a well-formed protobuf message where they were read."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.reason = message
        self.offset = offset


@dataclass(frozen=True)
class WireField:
    """One field as it appears on the wire.

    `offset` is where its tag starts. For VARINT, I64 and I32 fields `value` is the number (unsigned);
    for LEN fields `value` is where the payload starts and `length` its size in bytes.
    """

    number: int
    wire_type: int
    offset: int
    value: int
    length: int = 0

    @property
    def end(self) -> int:
        """The offset just past the payload of a length-delimited field."""
        return self.value + self.length


class WireReader:
    """Reads protobuf fields out of a blob by position, a chunk at a time, with a bounded field budget.

    `tick` is called every few thousand fields so that callers can check their time budget.
    """

    def __init__(
        self,
        blob: Blob,
        *,
        max_depth: int = DEFAULT_LIMITS.max_protobuf_depth,
        max_fields: int = 50_000_000,
        tick: Callable[[], None] | None = None,
    ) -> None:
        self.blob = blob
        self.size = blob.size
        self.max_depth = max_depth
        self.max_fields = max_fields
        self.fields_read = 0
        self._tick = tick
        self._window_start = 0
        self._window = b""

    def _byte(self, offset: int) -> int:
        rel = offset - self._window_start
        if rel < 0 or rel >= len(self._window):
            self._window_start = offset
            # A sniffer refuses most content within its first fields: the head every sniffer shares
            # serves them, and a chunk is read only past it
            head = self.blob.head() if offset < HEAD_BYTES else b""
            self._window = head[offset:] if offset < len(head) else self.blob.read_at(offset, CHUNK)
            rel = 0
            if not self._window:
                raise ProtobufError("message truncated", offset)
        return self._window[rel]

    def varint(self, offset: int, end: int) -> tuple[int, int]:
        """(value, offset after it) of the varint at `offset`, which must end before `end`."""
        value = 0
        for i in range(MAX_VARINT_BYTES):
            at = offset + i
            if at >= end:
                raise ProtobufError("varint runs past the end of its message", offset)
            byte = self._byte(at)
            value |= (byte & 0x7F) << (7 * i)
            if byte < 0x80:
                if value >= 1 << 64:
                    raise ProtobufError("varint overflows 64 bits", offset)
                return value, at + 1
        raise ProtobufError("varint longer than 10 bytes", offset)

    def fields(self, offset: int, length: int, depth: int = 0) -> Iterator[WireField]:
        """The fields of the message occupying [offset, offset + length), in wire order."""
        if depth > self.max_depth:
            raise ProtobufError(
                f"messages nested more than {self.max_depth} deep (max_protobuf_depth)", offset
            )
        end = offset + length
        if offset < 0 or length < 0 or end > self.size:
            raise ProtobufError(f"message of {length} bytes runs past the end of the data", offset)
        pos = offset
        while pos < end:
            self.fields_read += 1
            if self.fields_read > self.max_fields:
                raise ProtobufError(f"more than {self.max_fields} fields", pos)
            if self._tick is not None and self.fields_read % TICK_EVERY == 0:
                self._tick()
            start = pos
            key, pos = self.varint(pos, end)
            number, wire_type = key >> 3, key & 7
            if number == 0 or number >= 1 << 29:
                raise ProtobufError(f"invalid field number {number}", start)
            if wire_type == VARINT:
                value, pos = self.varint(pos, end)
                yield WireField(number, wire_type, start, value)
            elif wire_type == I64 or wire_type == I32:
                width = 8 if wire_type == I64 else 4
                if pos + width > end:
                    raise ProtobufError("fixed-width value runs past the end of its message", start)
                raw = self.blob.read_at(pos, width)
                pos += width
                yield WireField(number, wire_type, start, int.from_bytes(raw, "little"))
            elif wire_type == LEN:
                size, pos = self.varint(pos, end)
                if size > end - pos:
                    raise ProtobufError(
                        f"field {number} declares {size} bytes but only {end - pos} remain", start
                    )
                yield WireField(number, wire_type, start, pos, size)
                pos += size
            elif wire_type in (START_GROUP, END_GROUP):
                raise ProtobufError(
                    f"field {number} is a group (wire type {wire_type}), not supported", start
                )
            else:
                raise ProtobufError(f"invalid wire type {wire_type} for field {number}", start)

    def message(self, field: WireField, depth: int) -> Iterator[WireField]:
        """The fields of the nested message carried by a length-delimited field, `depth` levels down."""
        if field.wire_type != LEN:
            raise ProtobufError(f"field {field.number} should hold a message", field.offset)
        return self.fields(field.value, field.length, depth)

    def raw(self, field: WireField, limit: int) -> bytes:
        """At most `limit` bytes of a length-delimited field's payload."""
        if field.wire_type != LEN:
            raise ProtobufError(f"field {field.number} should be length-delimited", field.offset)
        return self.blob.read_at(field.value, min(field.length, limit))

    def text(self, field: WireField, limit: int = 4096) -> str:
        """A string field, decoded (invalid UTF-8 replaced) and cut to `limit` bytes with a marker."""
        shown = self.raw(field, limit).decode("utf-8", "replace")
        return shown + ("…" if field.length > limit else "")

    def packed_varints(self, field: WireField, max_count: int) -> list[int]:
        """A repeated integer field: one varint, or a packed run of them (at most `max_count`)."""
        if field.wire_type == VARINT:
            return [field.value]
        if field.wire_type != LEN:
            raise ProtobufError(f"field {field.number} should hold integers", field.offset)
        values: list[int] = []
        pos, end = field.value, field.end
        while pos < end:
            if len(values) >= max_count:
                raise ProtobufError(f"more than {max_count} packed values", pos)
            value, pos = self.varint(pos, end)
            values.append(value)
        return values


def signed64(value: int) -> int:
    """A varint read as protobuf's int64 (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value
