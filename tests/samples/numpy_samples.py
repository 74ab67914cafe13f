"""Build NumPy .npy/.npz samples in code: real np.save output and hand-made headers, benign and hostile."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np


class MarkerPayload:
    """An object whose unpickling runs a harmless shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def npy_bytes(header: str, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npy file with `header` (a dict literal, padded like np.save pads) followed by `data`."""
    text = header.encode("utf-8" if version >= (3, 0) else "latin1")
    prefix = 10 if version == (1, 0) else 12
    pad = -(prefix + len(text) + 1) % 64
    text = text + b" " * pad + b"\n"
    length = struct.pack("<H", len(text)) if version == (1, 0) else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes(version) + length + text + data


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def float_npy(directory: Path) -> Path:
    path = directory / "weights.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(3, 4))
    return path


def structured_npy(directory: Path) -> Path:
    dtype = np.dtype([("id", "<i4"), ("pos", "<f8", (3,)), ("inner", [("a", "u1"), ("b", "<U4")])])
    path = directory / "records.npy"
    np.save(path, np.zeros(5, dtype=dtype))
    return path


def object_ints_npy(directory: Path) -> Path:
    path = directory / "objects.npy"
    np.save(path, np.array([1, 2, 3], dtype=object))
    return path


def malicious_object_npy(directory: Path, marker: Path) -> Path:
    path = directory / "evil.npy"
    np.save(path, np.array([MarkerPayload(marker), 1], dtype=object))
    return path


def malicious_structured_object_npy(directory: Path, marker: Path) -> Path:
    """The object hides in a field of a structured dtype."""
    dtype = np.dtype([("x", "<f4"), ("meta", "O")])
    array = np.zeros(1, dtype=dtype)
    array[0] = (1.0, MarkerPayload(marker))
    path = directory / "evil_struct.npy"
    np.save(path, array)
    return path


def npz(directory: Path) -> Path:
    path = directory / "arrays.npz"
    np.savez(path, a=np.ones(4), b=np.arange(3, dtype=np.int64))
    return path


def npz_compressed(directory: Path) -> Path:
    path = directory / "arrays_z.npz"
    np.savez_compressed(path, a=np.ones(400), b=np.array([7, 8], dtype=object))
    return path


def malicious_npz(directory: Path, marker: Path, *, compressed: bool = False) -> Path:
    path = directory / ("evil_z.npz" if compressed else "evil.npz")
    save = np.savez_compressed if compressed else np.savez
    save(path, weights=np.ones(3), payload=np.array([MarkerPayload(marker)], dtype=object))
    return path


def truncated_npy(directory: Path) -> Path:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (10,), }"
    return write(directory, "short.npy", npy_bytes(header, b"\0" * 40))


def appended_npy(directory: Path) -> Path:
    header = "{'descr': '<i2', 'fortran_order': False, 'shape': (2, 2), }"
    return write(directory, "appended.npy", npy_bytes(header, b"\0" * 8 + b"MZ\x90\0extra payload"))


def negative_shape_npy(directory: Path) -> Path:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }"
    return write(directory, "negative.npy", npy_bytes(header, b"\0" * 16))


def absurd_shape_npy(directory: Path) -> Path:
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2**40, 2**40), }"
    return write(directory, "absurd.npy", npy_bytes(header.replace("2**40", str(2**40)), b"\0" * 16))


def oversized_header_npy(directory: Path) -> Path:
    filler = ", ".join(["1"] * 6000)
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }}  # {filler}"
    return write(directory, "bigheader.npy", npy_bytes(header, b"\0" * 4, version=(2, 0)))


def not_literal_npy(directory: Path) -> Path:
    header = "{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (1,)}"
    return write(directory, "notliteral.npy", npy_bytes(header, b"\0" * 4))


def v3_npy(directory: Path) -> Path:
    header = "{'descr': [('\u00e9t\u00e9', '<f4')], 'fortran_order': False, 'shape': (2,), }"
    return write(directory, "v3.npy", npy_bytes(header, b"\0" * 8, version=(3, 0)))


def py2_long_npy(directory: Path) -> Path:
    """Python 2 wrote long integers with an L suffix; numpy still reads v1/v2 headers like that."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 1L), }"
    return write(directory, "py2.npy", npy_bytes(header, b"\0" * 8))
