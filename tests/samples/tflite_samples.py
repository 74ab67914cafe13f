"""TensorFlow Lite samples written by a tiny FlatBuffer writer (tensorflow is not installable in the test
environment, so benign models are built to the schema by hand: one ADD op, two tensors, three buffers)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUILTIN_ADD = 0
BUILTIN_CUSTOM = 32


@dataclass
class T:
    """A table: slot -> (struct format, value) for scalars, or slot -> ("ref", child) for offsets."""

    fields: dict[int, tuple[str, Any]] = field(default_factory=dict)


@dataclass
class Scalars:
    fmt: str
    values: list[int]


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def align(self, n: int) -> None:
        self.out += bytes(-len(self.out) % n)

    def patch(self, at: int, target: int) -> None:
        struct.pack_into("<I", self.out, at, target - at)

    def write(self, obj: Any) -> int:
        if isinstance(obj, T):
            return self.table(obj)
        if isinstance(obj, (str, bytes)):
            raw = obj.encode() if isinstance(obj, str) else obj
            self.align(4)
            at = len(self.out)
            self.out += struct.pack("<I", len(raw)) + raw + b"\0"
            return at
        if isinstance(obj, Scalars):
            self.align(4)
            at = len(self.out)
            self.out += struct.pack("<I", len(obj.values)) + b"".join(
                struct.pack("<" + obj.fmt, v) for v in obj.values
            )
            return at
        assert isinstance(obj, list)
        self.align(4)
        at = len(self.out)
        self.out += struct.pack("<I", len(obj)) + bytes(4 * len(obj))
        for i, child in enumerate(obj):
            self.patch(at + 4 + 4 * i, self.write(child))
        return at

    def table(self, table: T) -> int:
        slots = max(table.fields, default=-1) + 1
        layout: dict[int, int] = {}
        inline = 4
        for slot in sorted(table.fields):
            fmt = table.fields[slot][0]
            width = 4 if fmt == "ref" else struct.calcsize("<" + fmt)
            inline += -inline % width
            layout[slot] = inline
            inline += width
        inline += -inline % 4
        vt_size = 4 + 2 * slots
        self.align(2)
        pad = -(len(self.out) + vt_size) % 8
        self.out += bytes(pad)
        vtable = len(self.out)
        self.out += struct.pack("<HH", vt_size, inline) + b"".join(
            struct.pack("<H", layout.get(s, 0)) for s in range(slots)
        )
        at = len(self.out)
        self.out += bytes(inline)
        struct.pack_into("<i", self.out, at, at - vtable)
        refs = []
        for slot, (fmt, value) in table.fields.items():
            if fmt == "ref":
                refs.append((at + layout[slot], value))
            else:
                struct.pack_into("<" + fmt, self.out, at + layout[slot], value)
        for pos, child in refs:
            self.patch(pos, self.write(child))
        return at


def flatbuffer(root: T, identifier: bytes = b"TFL3") -> bytes:
    writer = _Writer()
    writer.out += bytes(4) + identifier
    struct.pack_into("<I", writer.out, 0, writer.write(root))
    return bytes(writer.out)


def model(
    codes: list[tuple[int, str | None]] | None = None,
    opcode_indices: list[int] | None = None,
    tensor_buffers: list[int] | None = None,
    buffers: list[tuple[bytes | None, int, int]] | None = None,
    large_options: tuple[int, int] | None = None,
) -> bytes:
    """A model: operator codes (builtin, custom name), one subgraph, buffers (data, offset, size)."""
    codes = [(BUILTIN_ADD, None)] if codes is None else codes
    opcode_indices = [0] if opcode_indices is None else opcode_indices
    tensor_buffers = [1, 2] if tensor_buffers is None else tensor_buffers
    buffers = (
        [(None, 0, 0), (struct.pack("<4f", 1, 2, 3, 4), 0, 0), (None, 0, 0)] if buffers is None else buffers
    )
    code_tables = []
    for builtin, custom in codes:
        fields: dict[int, tuple[str, Any]] = {0: ("b", min(builtin, 127)), 2: ("i", 1), 3: ("i", builtin)}
        if custom is not None:
            fields[1] = ("ref", custom)
        code_tables.append(T(fields))
    tensors = [
        T({0: ("ref", Scalars("i", [4])), 1: ("b", 0), 2: ("I", b), 3: ("ref", f"t{i}")})
        for i, b in enumerate(tensor_buffers)
    ]
    operators = [
        T({0: ("I", index), 1: ("ref", Scalars("i", [0, 0])), 2: ("ref", Scalars("i", [1]))})
        for index in opcode_indices
    ]
    if large_options is not None:  # the first operator's custom options, in the >2 GB layout
        operators[0].fields[9] = ("Q", large_options[0])
        operators[0].fields[10] = ("Q", large_options[1])
    subgraph = T(
        {
            0: ("ref", tensors),
            1: ("ref", Scalars("i", [0])),
            2: ("ref", Scalars("i", [1])),
            3: ("ref", operators),
            4: ("ref", "main"),
        }
    )
    buffer_tables = []
    for data, offset, size in buffers:
        fields = {}
        if data is not None:
            fields[0] = ("ref", Scalars("B", list(data)))
        if offset:
            fields[1] = ("Q", offset)
            fields[2] = ("Q", size)
        buffer_tables.append(T(fields))
    root = T(
        {
            0: ("I", 3),
            1: ("ref", code_tables),
            2: ("ref", [subgraph]),
            3: ("ref", "modelshield sample"),
            4: ("ref", buffer_tables),
        }
    )
    return flatbuffer(root)


def large_layout(out_of_range: bool = False, overlap: bool = False) -> bytes:
    """The converter's >2 GB layout in miniature: buffers' bytes follow the FlatBuffer, named by offset."""
    head_size = len(model(buffers=[(None, 0, 0), (None, 1 << 20, 16), (None, 1 << 20, 16)]))
    base = head_size + (-head_size % 16)
    second = base + (8 if overlap else 16)
    size = 4096 if out_of_range else 16
    data = model(buffers=[(None, 0, 0), (None, base, 16), (None, second, size)])
    assert len(data) == head_size
    return data + bytes(base - len(data)) + bytes(range(32))


def flex_print_large_options(target: bytes, out_of_range: bool = False) -> bytes:
    """A Flex PrintV2 whose NodeDef (custom options) follows the FlatBuffer, in the large layout, with
    output_stream `target` (a length-prefixed string, as protobuf writes it)."""
    attribute = b"\x2a\x1d\x0a\x0doutput_stream\x12" + bytes([len(target)]) + target
    options = b"\x0a\x05print\x12\x07PrintV2" + attribute
    codes = [(BUILTIN_CUSTOM, "FlexPrintV2")]
    head_size = len(model(codes=codes, large_options=(1 << 20, 16)))
    base = head_size + (-head_size % 16)
    size = len(options) + (4096 if out_of_range else 0)
    data = model(codes=codes, large_options=(base, size))
    assert len(data) == head_size
    return data + bytes(base - len(data)) + options


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def truncated() -> bytes:
    data = bytearray(model())
    root = struct.unpack_from("<I", data, 0)[0]
    struct.pack_into("<i", data, root, -(1 << 30))  # the root table's vtable lies past the end
    return bytes(data)


RULE_SAMPLES = {
    "TFLITE-CUSTOM-OP": lambda d: write(d, "custom.tflite", model(codes=[(BUILTIN_CUSTOM, "MyKernel")])),
    "TFLITE-FLEX-OP": lambda d: write(d, "flex.tflite", model(codes=[(BUILTIN_CUSTOM, "FlexReadFile")])),
    "TFLITE-MALFORMED": lambda d: write(d, "index.tflite", model(opcode_indices=[5])),
    "TFLITE-BUFFER-LAYOUT": lambda d: write(d, "layout.tflite", large_layout(out_of_range=True)),
}
