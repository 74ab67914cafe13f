"""Read a marshalled Python code object (a Keras Lambda, a `marshal` payload in a pickle) as data: the
names it uses, its string constants and its nested functions, without ever unmarshalling or running it.

The marshal format has no version tag, and the layout of a code object changed between Python 3.7,
3.8–3.10 and 3.11+; each layout is tried in turn and the one that reads as a well-formed code object
wins. Every read is bounded: bytes, objects, nesting.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_OBJECTS = 100_000
MAX_NESTING = 64
FLAG_REF = 0x80

_SINGLETONS: dict[int, object] = {
    ord("0"): None,
    ord("N"): None,
    ord("F"): False,
    ord("T"): True,
    ord("S"): None,
    ord("."): Ellipsis,
}
_SIZED_STRINGS = frozenset(b"stuaA")  # 4-byte length
_SHORT_STRINGS = frozenset(b"zZ")  # 1-byte length
_TEXT_STRINGS = frozenset(b"uaAzZt")  # decoded as text; "s" is bytes
_SEQUENCES = {ord("("): tuple, ord("["): list, ord("<"): frozenset, ord(">"): frozenset}


class MarshalFormatError(ValueError):
    """The bytes are not a well-formed marshalled code object (or cross a bound)."""


@dataclass(frozen=True)
class CodeLayout:
    """The fields of a code object in one range of Python versions, in marshal order."""

    python: str
    leading_ints: int
    objects_before_lineno: tuple[str, ...]
    objects_after_lineno: tuple[str, ...]


LAYOUTS = (
    CodeLayout(
        "3.11+",
        5,
        ("code", "consts", "names", "localsplusnames", "localspluskinds", "filename", "name", "qualname"),
        ("linetable", "exceptiontable"),
    ),
    CodeLayout(
        "3.8-3.10",
        6,
        ("code", "consts", "names", "varnames", "freevars", "cellvars", "filename", "name"),
        ("linetable",),
    ),
    CodeLayout(
        "3.7",
        5,
        ("code", "consts", "names", "varnames", "freevars", "cellvars", "filename", "name"),
        ("linetable",),
    ),
)
_NAME_TUPLES = frozenset({"names", "localsplusnames", "varnames", "freevars", "cellvars"})
_TEXT_FIELDS = frozenset({"filename", "name", "qualname"})
_BYTES_FIELDS = frozenset({"code", "localspluskinds", "linetable", "exceptiontable"})


@dataclass(frozen=True)
class CodeSummary:
    """What one code object (and, in `children`, every function defined inside it) refers to."""

    name: str
    filename: str
    names: tuple[str, ...]
    """Global, attribute and imported names (co_names): what the code looks up when it runs."""
    local_names: tuple[str, ...]
    string_constants: tuple[str, ...]
    children: tuple[CodeSummary, ...] = ()
    python: str = ""

    def walk(self) -> Iterator[CodeSummary]:
        yield self
        for child in self.children:
            yield from child.walk()

    def all_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for code in self.walk() for n in code.names))

    def all_strings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for code in self.walk() for s in code.string_constants))


@dataclass
class _Code:
    fields: dict[str, object] = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes, layout: CodeLayout) -> None:
        self.data = data
        self.pos = 0
        self.layout = layout
        self.refs: list[object] = []
        self.objects = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MarshalFormatError(f"truncated at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int32(self) -> int:
        value: int = struct.unpack("<i", self.take(4))[0]
        return value

    def length(self) -> int:
        n = self.int32()
        if n < 0 or n > len(self.data) - self.pos + 1:
            raise MarshalFormatError(f"impossible length {n} at byte {self.pos - 4}")
        return n

    def read(self, depth: int = 0) -> object:
        if depth > MAX_NESTING:
            raise MarshalFormatError("nesting too deep")
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise MarshalFormatError("too many objects")
        code = self.take(1)[0]
        flagged, kind = code & FLAG_REF, code & ~FLAG_REF
        slot = len(self.refs)
        if flagged:
            self.refs.append(None)
        value = self._read_kind(kind, depth)
        if flagged:
            self.refs[slot] = value
        return value

    def _read_kind(self, kind: int, depth: int) -> object:
        if kind in _SINGLETONS:
            return _SINGLETONS[kind]
        if kind == ord("r"):
            index = self.int32()
            if not 0 <= index < len(self.refs):
                raise MarshalFormatError(f"reference {index} to an object not yet read")
            return self.refs[index]
        if kind == ord("i"):
            return self.int32()
        if kind == ord("I"):
            return struct.unpack("<q", self.take(8))[0]
        if kind == ord("l"):
            digits = self.int32()
            self.take(2 * min(abs(digits), len(self.data)))
            return 0
        if kind == ord("g"):
            return struct.unpack("<d", self.take(8))[0]
        if kind == ord("y"):
            self.take(16)
            return 0j
        if kind in (ord("f"), ord("x")):
            for _ in range(1 if kind == ord("f") else 2):
                self.take(self.take(1)[0])
            return 0.0
        if kind in _SIZED_STRINGS or kind in _SHORT_STRINGS:
            n = self.take(1)[0] if kind in _SHORT_STRINGS else self.length()
            raw = self.take(n)
            return raw.decode("utf-8", "surrogatepass") if kind in _TEXT_STRINGS else raw
        if kind == ord(")"):
            return tuple(self.read(depth + 1) for _ in range(self.take(1)[0]))
        if kind in _SEQUENCES:
            return tuple(self.read(depth + 1) for _ in range(self.length()))
        if kind == ord("{"):
            items: list[object] = []
            while self.data[self.pos : self.pos + 1] not in (b"0", b""):
                items.extend((self.read(depth + 1), self.read(depth + 1)))
            self.take(1)
            return tuple(items)
        if kind == ord(":"):  # slice (3.14)
            return tuple(self.read(depth + 1) for _ in range(3))
        if kind == ord("c"):
            return self._code(depth)
        raise MarshalFormatError(f"unknown marshal type {chr(kind)!r} at byte {self.pos - 1}")

    def _code(self, depth: int) -> _Code:
        out = _Code()
        for _ in range(self.layout.leading_ints):
            self.int32()
        for name in self.layout.objects_before_lineno:
            out.fields[name] = self._field(name, depth)
        self.int32()  # first line number
        for name in self.layout.objects_after_lineno:
            out.fields[name] = self._field(name, depth)
        return out

    def _field(self, name: str, depth: int) -> object:
        value = self.read(depth + 1)
        if name in _BYTES_FIELDS and not isinstance(value, bytes):
            raise MarshalFormatError(f"code object field {name} is not bytes")
        if name in _TEXT_FIELDS and not isinstance(value, str):
            raise MarshalFormatError(f"code object field {name} is not text")
        if name in _NAME_TUPLES and not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            raise MarshalFormatError(f"code object field {name} is not a tuple of names")
        if name == "consts" and not isinstance(value, tuple):
            raise MarshalFormatError("code object constants are not a tuple")
        return value


def read_code(data: bytes) -> CodeSummary:
    """The summary of the marshalled code object in `data` (the whole of it, nothing after)."""
    if not data or data[0] & ~FLAG_REF != ord("c"):
        raise MarshalFormatError("not a marshalled code object")
    failures = []
    for layout in LAYOUTS:
        reader = _Reader(data, layout)
        try:
            top = reader.read()
        except (MarshalFormatError, UnicodeDecodeError, struct.error) as exc:
            failures.append(f"{layout.python}: {exc}")
            continue
        if reader.pos != len(data) or not isinstance(top, _Code):
            failures.append(f"{layout.python}: {len(data) - reader.pos} bytes left after the code object")
            continue
        return _summarise(top, layout.python)
    raise MarshalFormatError("; ".join(failures))


def _summarise(code: _Code, python: str) -> CodeSummary:
    consts = code.fields.get("consts", ())
    assert isinstance(consts, tuple)
    strings = tuple(dict.fromkeys(_strings_in(consts)))
    children = tuple(_summarise(c, python) for c in _codes_in(consts))
    local_names = code.fields.get("localsplusnames") or code.fields.get("varnames") or ()
    assert isinstance(local_names, tuple)
    names = code.fields.get("names", ())
    assert isinstance(names, tuple)
    return CodeSummary(
        name=str(code.fields.get("qualname") or code.fields.get("name") or ""),
        filename=str(code.fields.get("filename", "")),
        names=tuple(str(n) for n in names),
        local_names=tuple(str(n) for n in local_names),
        string_constants=strings,
        children=children,
        python=python,
    )


def _strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("latin-1")
    elif isinstance(value, tuple):
        for item in value:
            yield from _strings_in(item)


def _codes_in(value: object) -> Iterator[_Code]:
    if isinstance(value, _Code):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _codes_in(item)
