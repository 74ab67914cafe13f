"""The protobuf wire reader: every wire type, spans instead of copies, and clear errors on bad input."""

from __future__ import annotations

import pytest

from modelshield.analysis.protobuf import LEN, ProtobufError, WireReader, signed64
from modelshield.engine.blob import BufferBlob


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def reader(data: bytes) -> WireReader:
    return WireReader(BufferBlob(data, ("t.pb",)))


def test_every_wire_type_is_read_with_its_position() -> None:
    inner = tag(1, 0) + varint(7)
    data = (
        tag(1, 0) + varint(300)
        + tag(2, 1) + (5).to_bytes(8, "little")
        + tag(3, 2) + varint(len(inner)) + inner
        + tag(4, 5) + (9).to_bytes(4, "little")
        + tag(1000, 0) + varint((1 << 64) - 1)
    )  # fmt: skip
    r = reader(data)
    fields = list(r.fields(0, len(data)))
    assert [(f.number, f.wire_type, f.value) for f in fields if f.wire_type != LEN] == [
        (1, 0, 300), (2, 1, 5), (4, 5, 9), (1000, 0, (1 << 64) - 1)
    ]  # fmt: skip
    message = fields[2]
    assert (message.offset, message.value, message.length) == (12, 14, len(inner))
    assert [(f.number, f.value) for f in r.message(message, 1)] == [(1, 7)]
    assert signed64(fields[4].value) == -1


def test_length_delimited_payloads_are_spans_not_copies() -> None:
    data = tag(9, 2) + varint(1 << 20) + bytes(1 << 20)
    r = reader(data)
    (field,) = r.fields(0, len(data))
    assert (field.value, field.length) == (4, 1 << 20)
    assert r.raw(field, 8) == bytes(8)
    assert r.text(field, 2) == "\x00\x00…"


def test_packed_and_unpacked_integers() -> None:
    packed = varint(1) + varint(1000) + varint(3)
    data = tag(1, 2) + varint(len(packed)) + packed + tag(1, 0) + varint(4)
    r = reader(data)
    assert [v for f in r.fields(0, len(data)) for v in r.packed_varints(f, 16)] == [1, 1000, 3, 4]
    with pytest.raises(ProtobufError, match="packed values"):
        r.packed_varints(next(r.fields(0, len(data))), 2)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (tag(1, 2) + varint(100) + b"short", "declares 100 bytes"),
        (tag(1, 0) + b"\xff" * 11, "longer than 10 bytes"),
        (tag(1, 0) + b"\xff" * 9 + b"\x7f", "overflows 64 bits"),
        (tag(1, 0) + b"\x80", "past the end"),
        (tag(1, 3), "group"),
        (tag(1, 4), "group"),
        (tag(1, 6), "invalid wire type"),
        (b"\x00\x01", "invalid field number 0"),
        (tag(1, 1) + b"\x01\x02", "fixed-width"),
    ],
)
def test_malformed_input_raises_one_error_type(data: bytes, reason: str) -> None:
    with pytest.raises(ProtobufError, match=reason):
        list(reader(data).fields(0, len(data)))


def test_nesting_depth_is_bounded() -> None:
    data = b""
    for _ in range(40):
        data = tag(1, 2) + varint(len(data)) + data
    r = WireReader(BufferBlob(data, ("deep.pb",)), max_depth=8)
    field = next(r.fields(0, len(data)))
    depth = 1
    with pytest.raises(ProtobufError, match="nested more than 8"):
        while True:
            field = next(r.message(field, depth))
            depth += 1


def test_a_message_past_the_data_is_refused() -> None:
    with pytest.raises(ProtobufError, match="past the end"):
        list(reader(b"\x08\x01").fields(0, 10))
