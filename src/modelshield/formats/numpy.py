"""NumPy .npy arrays: literal-only header parsing, dtype and size checks, object data handed on as pickle."""

from __future__ import annotations

import ast
import math
import re
import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from modelshield.analysis import weights
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.formats.base import ScanEvent
from modelshield.formats.signatures import NUMPY_MAGIC
from modelshield.rules import numpy as rules

name = "numpy"
version = "1"

MAGIC = NUMPY_MAGIC
NUMPY_DEFAULT_MAX_HEADER = 10_000  # np.load's max_header_size default
MAX_DIMS = 64  # NPY_MAXDIMS in numpy 2 (32 before)
ABSURD_BYTES = 1 << 50  # a petabyte of declared data is not a model
MAX_DESCR_DEPTH = 32
EXPECTED_KEYS = frozenset({"descr", "fortran_order", "shape"})
OBJECT_ITEMSIZE = 8  # a PyObject pointer on 64-bit builds

# Single-character type codes numpy accepts, with their itemsize when no size follows.
_CHAR_SIZES = {
    "?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "q": 8, "Q": 8,
    "p": 8, "P": 8, "u": 4, "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32, "O": 8,
    "S": 0, "a": 0, "U": 0, "V": 0, "c": 1, "M": 8, "m": 8,
}  # fmt: skip
# Named types, with itemsize (None marks the object type).
_NAMED_SIZES: dict[str, int | None] = {
    "bool": 1, "bool_": 1, "byte": 1, "ubyte": 1, "short": 2, "ushort": 2, "intc": 4, "uintc": 4,
    "int": 8, "int_": 8, "uint": 8, "intp": 8, "uintp": 8, "long": 8, "ulong": 8, "longlong": 8,
    "ulonglong": 8, "half": 2, "single": 4, "float": 8, "double": 8, "longdouble": 16,
    "csingle": 8, "complex": 16, "cdouble": 16, "clongdouble": 32, "str": 0, "str_": 0,
    "bytes": 0, "bytes_": 0, "void": 0, "object": None, "object_": None,
    "datetime64": 8, "timedelta64": 8,
}  # fmt: skip
_TYPESTR = re.compile(r"([<>|=]?)([A-Za-z?])(\d*)(\[\w+\])?")
_SIZED_NAME = re.compile(r"(int|uint|float|complex|bool|bytes|str|void)(\d+)")
_DATETIME_NAME = re.compile(r"(datetime64|timedelta64)(\[\w+\])?")
_PY2_LONG = re.compile(r"(\d)[lL]\b")
_LITTLE_ENDIAN_FLOATS = {"<f4": "F32", "<f2": "F16", "float32": "F32", "float16": "F16"}
"""Float dtypes the opt-in weights analysis reads, as `descr` spells them."""


class DescrError(ValueError):
    """A dtype description numpy would not accept (or this module does not understand)."""


@dataclass(frozen=True)
class DtypeInfo:
    """What the scan needs to know about a dtype: bytes per element and whether it holds objects."""

    itemsize: int
    has_object: bool


@dataclass(frozen=True)
class NpyHeader:
    """The parsed preamble of an .npy file."""

    version: tuple[int, int]
    header_offset: int
    header_text: str
    data_offset: int


def sniff(blob: Blob) -> bool:
    return blob.head(len(MAGIC)) == MAGIC


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    header = yield from _read_header(blob, ctx.limits.max_npy_header_bytes)
    if header is None:
        return
    fields = yield from _parse_header_dict(blob, header)
    if fields is None:
        return
    shape, descr = fields
    try:
        dtype = describe_dtype(descr)
    except DescrError as exc:
        yield rules.MALFORMED_HEADER.at(
            ctx.where(blob, offset=0, detail="descr"),
            f"dtype not understood: {exc}",
            evidence=repr(descr)[:200],
        )
        yield ScanIssue(
            "unparsed",
            "dtype not understood; the data region is scanned by content only",
            ctx.where(blob, offset=header.data_offset),
        )
        yield _child(blob, header.data_offset, blob.size - header.data_offset, "array data")
        return
    if dtype.has_object:
        yield rules.OBJECT_ARRAY.at(
            ctx.where(blob, offset=header.data_offset, detail="descr"),
            "array of Python objects: np.load needs allow_pickle=True and unpickles the data",
            evidence=repr(descr)[:200],
        )
        # numpy unpickles from the end of the header, whatever the shape says
        yield _child(blob, header.data_offset, blob.size - header.data_offset, "array data")
        return
    yield from _check_size(blob, ctx, header, shape, dtype)
    float_dtype = _LITTLE_ENDIAN_FLOATS.get(descr) if isinstance(descr, str) else None
    if ctx.deep and float_dtype is not None:
        nbytes = min(blob.size - header.data_offset, math.prod(shape) * dtype.itemsize)
        yield from weights.scan_tensors(
            blob, ctx, [weights.FloatTensor(blob.name, float_dtype, header.data_offset, nbytes)]
        )


def _read_header(blob: Blob, parse_limit: int) -> Generator[ScanEvent, None, NpyHeader | None]:
    """Magic, version and header text, or findings saying why not (generator returning the header)."""
    head = blob.head(12)
    where = blob.chain
    if len(head) < 10:
        yield rules.MALFORMED_HEADER.at(_loc(where, 0, "preamble"), "file ends inside the .npy preamble")
        return None
    major, minor = head[6], head[7]
    if (major, minor) == (1, 0):
        (length,) = struct.unpack_from("<H", head, 8)
        start = 10
    elif (major, minor) in ((2, 0), (3, 0)) and len(head) >= 12:
        (length,) = struct.unpack_from("<I", head, 8)
        start = 12
    else:
        yield rules.MALFORMED_HEADER.at(
            _loc(where, 6, "version"), f"unsupported .npy format version {major}.{minor}; np.load refuses it"
        )
        return None
    if length > NUMPY_DEFAULT_MAX_HEADER:
        yield rules.OVERSIZED_HEADER.at(
            _loc(where, 8, "header length"),
            f"header of {length} bytes; np.load only reads it when allow_pickle=True",
            evidence=f"header length {length} > {NUMPY_DEFAULT_MAX_HEADER}",
        )
    if length > parse_limit:
        yield ScanIssue(
            "limit",
            f"header of {length} bytes not parsed (max_npy_header_bytes {parse_limit})",
            _loc(where, 8, "header length"),
        )
        return None
    if start + length > blob.size:
        yield rules.TRUNCATED.at(_loc(where, start, "header"), "file ends inside the .npy header")
        return None
    raw = blob.head(start + length)[start:]
    try:
        text = raw.decode("utf-8" if major >= 3 else "latin1")
    except UnicodeDecodeError:
        yield rules.MALFORMED_HEADER.at(_loc(where, start, "header"), "header is not valid UTF-8")
        return None
    return NpyHeader((major, minor), start, text, start + length)


def _parse_header_dict(
    blob: Blob, header: NpyHeader
) -> Generator[ScanEvent, None, tuple[tuple[int, ...], object] | None]:
    """The header as numpy reads it: a literal dict with exactly descr, fortran_order and shape."""
    where = blob.chain
    offset = header.header_offset
    value = _literal(header.header_text)
    if value is _NOT_LITERAL and header.version <= (2, 0):
        # numpy retries headers written by Python 2 with the long-integer suffix removed
        value = _literal(_PY2_LONG.sub(r"\1", header.header_text))
    if value is _NOT_LITERAL:
        yield rules.MALFORMED_HEADER.at(
            _loc(where, offset, "header"),
            "header is not a Python literal; np.load refuses it",
            evidence=header.header_text[:200],
        )
        return None
    if not isinstance(value, dict) or set(value) != EXPECTED_KEYS:
        keys = sorted(map(repr, value)) if isinstance(value, dict) else type(value).__name__
        yield rules.MALFORMED_HEADER.at(
            _loc(where, offset, "header"),
            "header must be a dict with exactly 'descr', 'fortran_order' and 'shape'",
            evidence=f"{keys}",
        )
        return None
    shape = value["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) for d in shape):
        yield rules.MALFORMED_HEADER.at(
            _loc(where, offset, "shape"), "shape is not a tuple of integers", evidence=repr(shape)[:200]
        )
        return None
    if not isinstance(value["fortran_order"], bool):
        yield rules.MALFORMED_HEADER.at(
            _loc(where, offset, "fortran_order"),
            "fortran_order is not a bool",
            evidence=repr(value["fortran_order"])[:200],
        )
        return None
    return shape, value["descr"]


_NOT_LITERAL = object()


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_LITERAL


def describe_dtype(descr: object, depth: int = 0) -> DtypeInfo:
    """Itemsize and object-ness of an .npy `descr` (a type string, a (base, shape) pair or a field list)."""
    if depth > MAX_DESCR_DEPTH:
        raise DescrError("dtype nested too deeply")
    if isinstance(descr, str):
        return _describe_typestr(descr)
    if isinstance(descr, tuple):
        if len(descr) != 2:
            raise DescrError(f"subarray dtype must be (base, shape), got {len(descr)} items")
        base = describe_dtype(descr[0], depth + 1)
        return DtypeInfo(base.itemsize * _shape_count(descr[1]), base.has_object)
    if isinstance(descr, list):
        itemsize, has_object = 0, False
        for field in descr:
            if not isinstance(field, tuple) or len(field) not in (2, 3):
                raise DescrError(f"structured field must be (name, dtype[, shape]), got {field!r:.80}")
            field_name = field[0]
            if not isinstance(field_name, str) and not (
                isinstance(field_name, tuple) and len(field_name) == 2 and isinstance(field_name[1], str)
            ):
                raise DescrError(f"bad field name {field_name!r:.80}")
            inner = describe_dtype(field[1], depth + 1)
            count = _shape_count(field[2]) if len(field) == 3 else 1
            itemsize += inner.itemsize * count
            has_object = has_object or inner.has_object
        return DtypeInfo(itemsize, has_object)
    raise DescrError(f"descr of type {type(descr).__name__}")


def _describe_typestr(text: str) -> DtypeInfo:
    typestr = text.strip()
    if "," in typestr:
        raise DescrError(f"comma-separated dtype string {typestr!r:.80}")
    if typestr in _NAMED_SIZES:
        size = _NAMED_SIZES[typestr]
        return DtypeInfo(OBJECT_ITEMSIZE, True) if size is None else DtypeInfo(size, False)
    match = _SIZED_NAME.fullmatch(typestr)
    if match:
        kind, digits = match.groups()
        size = int(digits)
        if kind in ("int", "uint", "float", "complex", "bool"):
            if size % 8:
                raise DescrError(f"bit width {size} of {typestr!r}")
            return DtypeInfo(size // 8, False)
        return DtypeInfo(size * (4 if kind == "str" else 1), False)
    if _DATETIME_NAME.fullmatch(typestr):
        return DtypeInfo(8, False)
    match = _TYPESTR.fullmatch(typestr)
    if not match or match.group(2) not in _CHAR_SIZES:
        raise DescrError(f"unknown type string {typestr!r:.80}")
    _, kind, digits, _unit = match.groups()
    if kind == "O":
        return DtypeInfo(OBJECT_ITEMSIZE, True)
    if not digits:
        return DtypeInfo(_CHAR_SIZES[kind], False)
    size = int(digits)
    return DtypeInfo(size * 4 if kind == "U" else size, False)


def _shape_count(shape: object) -> int:
    if isinstance(shape, int) and not isinstance(shape, bool):
        dims: tuple[object, ...] = (shape,)
    elif isinstance(shape, tuple):
        dims = shape
    else:
        raise DescrError(f"subarray shape {shape!r:.80}")
    count = 1
    for dim in dims:
        if not isinstance(dim, int) or dim < 0:
            raise DescrError(f"subarray dimension {dim!r:.80}")
        count *= dim
        if count > ABSURD_BYTES:
            raise DescrError("subarray shape is absurdly large")
    return count


def _check_size(
    blob: Blob, ctx: ScanContext, header: NpyHeader, shape: tuple[int, ...], dtype: DtypeInfo
) -> Iterator[ScanEvent]:
    where = ctx.where(blob, offset=header.data_offset, detail="shape")
    if len(shape) > MAX_DIMS:
        yield rules.ABSURD_SHAPE.at(
            where, f"{len(shape)} dimensions; numpy supports at most {MAX_DIMS}", evidence=repr(shape)[:200]
        )
        return
    negative = [d for d in shape if d < 0]
    if negative:
        yield rules.ABSURD_SHAPE.at(where, "negative dimension in shape", evidence=repr(shape)[:200])
        return
    declared = dtype.itemsize
    for dim in shape:
        declared *= dim
        if declared > ABSURD_BYTES:
            break
    if declared > ABSURD_BYTES:
        yield rules.ABSURD_SHAPE.at(
            where,
            "declared array size is absurd (more than a petabyte)",
            evidence=f"shape {shape!r:.160}, itemsize {dtype.itemsize}",
        )
        return
    actual = blob.size - header.data_offset
    if actual < declared:
        yield rules.TRUNCATED.at(
            where,
            f"header declares {declared} bytes of data, the file holds {actual}",
            evidence=f"shape {shape!r:.160}, itemsize {dtype.itemsize}",
        )
    elif actual > declared:
        extra_at = header.data_offset + declared
        yield rules.APPENDED_DATA.at(
            ctx.where(blob, offset=extra_at, detail="after array data"),
            f"{actual - declared} bytes after the {declared} bytes of array data",
            evidence=_preview(blob, extra_at),
        )
        yield _child(blob, extra_at, actual - declared, "appended data")


def _preview(blob: Blob, offset: int) -> str:
    return blob.read_at(offset, 16).hex(" ") if blob.random_access else ""


def _child(blob: Blob, offset: int, length: int, element: str) -> Blob:
    """A child blob over part of `blob` (zero-copy when it is in memory already)."""
    return blob.slice(offset, length, element)


def _loc(chain: tuple[str, ...], offset: int, detail: str) -> Location:
    return Location(chain=chain, offset=offset, detail=detail)
