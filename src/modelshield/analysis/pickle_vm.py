"""Symbolic pickle machine: runs every opcode of protocols 0–5 without importing or calling anything,
and records what a real unpickler would import, call and build — in order, with arguments."""

from __future__ import annotations

import codecs
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from modelshield.analysis import pickle_effects as fx
from modelshield.analysis.bytecode import MarshalFormatError, read_code
from modelshield.analysis.payload_codecs import PayloadTooLarge, decode_payload
from modelshield.analysis.pickle_values import (
    SMALL_BYTES,
    BigText,
    ComputedText,
    GlobalRef,
    ObjectRef,
    PersistentRef,
    Ref,
    SymDict,
    SymList,
    UnknownValue,
    as_bytes,
    render,
    render_call,
    strings_in,
)
from modelshield.engine.limits import LimitExceeded, Limits

HIGHEST_PROTOCOL = 5
TEXT_DECODE_LIMIT = 1024 * 1024
_UNPACK_I4 = struct.Struct("<i").unpack_from
_UNPACK_U4 = struct.Struct("<I").unpack_from
_UNPACK_U8 = struct.Struct("<Q").unpack_from
_UNPACK_U2 = struct.Struct("<H").unpack_from
_UNPACK_F8 = struct.Struct(">d").unpack_from


Evidence = str | Callable[[], str]
"""Text for a report, or a function that renders it when (and only when) a finding needs it."""


@dataclass(frozen=True)
class Site:
    """Where an instruction sits: its index in the pickle, byte offset in the blob, and name."""

    opcode_index: int
    offset: int
    opcode: str


@dataclass
class ImportEvent:
    """A global the loader would import (find_class), or a name reached by a resolver at load time."""

    module: str
    name: str
    qualname: str
    site: Site
    via: str
    called: bool = False
    rebuilt: bool = False


@dataclass(frozen=True)
class CallEvent:
    """A call or instantiation the loader would perform.

    kind: "call" (REDUCE/INST/OBJ with a callable), "new" (NEWOBJ/NEWOBJ_EX: cls.__new__),
    "rebuild" (plain object re-creation), "setstate" (a planted __setstate__ called by BUILD),
    "bytecode" (a function built from bytecode in the pickle is called), "method" (a method of a
    loaded object called through methodcaller/extend/append).
    """

    target: str | None
    kind: str
    site: Site
    describe: Evidence = field(repr=False, compare=False)
    via: str = ""
    args: tuple[object, ...] = ()

    @cached_property
    def evidence(self) -> str:
        """The call as readable text, rendered only when a finding needs it."""
        return self.describe if isinstance(self.describe, str) else self.describe()


@dataclass(frozen=True)
class NestedPayload:
    """Bytes handed to a deserialiser inside the pickle: scanned again as a child blob."""

    loader: str
    trusted_wrapper: bool
    data: bytes | memoryview
    site: Site


@dataclass(frozen=True)
class CodeObjectEvent:
    """Bytecode shipped in the pickle (function by value), with the names and constants it carries."""

    factory: str
    strings: tuple[str, ...]
    site: Site


@dataclass(frozen=True)
class Anomaly:
    """Something a benign pickle never does: a malformation, a mutation, a planted attribute…

    kind: "malformed", "mutation", "planted-setstate", "ext-code", "dynamic-name", "resolver",
    "nested-loader-opaque", "memo".
    """

    kind: str
    message: str
    site: Site
    evidence: str = ""
    fatal: bool = False


@dataclass
class PickleRun:
    """Everything one pickle (from PROTO to STOP) would do."""

    start: int
    end: int = 0
    protocol: int = 0
    stopped: bool = False
    opcodes: int = 0
    imports: list[ImportEvent] = field(default_factory=list)
    calls: list[CallEvent] = field(default_factory=list)
    nested: list[NestedPayload] = field(default_factory=list)
    code_objects: list[CodeObjectEvent] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    persistent_ids: list[object] = field(default_factory=list)
    loader_fails_at: int | None = None

    @property
    def malformed(self) -> bool:
        return any(a.kind == "malformed" for a in self.anomalies)


@dataclass(frozen=True)
class InlineData:
    """Raw bytes a custom unpickler reads from the stream itself after a BUILD (joblib arrays).

    `skip` bytes of data follow; or a nested pickle follows (`nested_pickle`); or the extent cannot be
    known (`problem`), in which case the rest of the stream cannot be parsed reliably.
    """

    skip: int = 0
    nested_pickle: bool = False
    problem: str | None = None
    external_file: str | None = None


InlineDataHook = Callable[[ObjectRef, memoryview, int], "InlineData | None"]


class _Unresolvable(Exception):
    """The machine cannot tell where the stream continues; the rest is not scanned."""


class _Truncated(Exception):
    """The stream ends inside an instruction: nothing after this point can run."""


class _BadOpcode(Exception):
    """An opcode byte the unpickler does not know: the loader stops here."""


OPCODE_NAMES = {
    b"(": "MARK", b".": "STOP", b"0": "POP", b"1": "POP_MARK", b"2": "DUP", b"F": "FLOAT",
    b"I": "INT", b"J": "BININT", b"K": "BININT1", b"L": "LONG", b"M": "BININT2", b"N": "NONE",
    b"P": "PERSID", b"Q": "BINPERSID", b"R": "REDUCE", b"S": "STRING", b"T": "BINSTRING",
    b"U": "SHORT_BINSTRING", b"V": "UNICODE", b"X": "BINUNICODE", b"a": "APPEND", b"b": "BUILD",
    b"c": "GLOBAL", b"d": "DICT", b"}": "EMPTY_DICT", b"e": "APPENDS", b"g": "GET", b"h": "BINGET",
    b"i": "INST", b"j": "LONG_BINGET", b"l": "LIST", b"]": "EMPTY_LIST", b"o": "OBJ", b"p": "PUT",
    b"q": "BINPUT", b"r": "LONG_BINPUT", b"s": "SETITEM", b"t": "TUPLE", b")": "EMPTY_TUPLE",
    b"u": "SETITEMS", b"G": "BINFLOAT", b"\x80": "PROTO", b"\x81": "NEWOBJ", b"\x82": "EXT1",
    b"\x83": "EXT2", b"\x84": "EXT4", b"\x85": "TUPLE1", b"\x86": "TUPLE2", b"\x87": "TUPLE3",
    b"\x88": "NEWTRUE", b"\x89": "NEWFALSE", b"\x8a": "LONG1", b"\x8b": "LONG4", b"B": "BINBYTES",
    b"C": "SHORT_BINBYTES", b"\x8c": "SHORT_BINUNICODE", b"\x8d": "BINUNICODE8",
    b"\x8e": "BINBYTES8", b"\x8f": "EMPTY_SET", b"\x90": "ADDITEMS", b"\x91": "FROZENSET",
    b"\x92": "NEWOBJ_EX", b"\x93": "STACK_GLOBAL", b"\x94": "MEMOIZE", b"\x95": "FRAME",
    b"\x96": "BYTEARRAY8", b"\x97": "NEXT_BUFFER", b"\x98": "READONLY_BUFFER",
}  # fmt: skip
_NAME_BY_BYTE: list[str | None] = [None] * 256
for _code, _name in OPCODE_NAMES.items():
    _NAME_BY_BYTE[_code[0]] = _name


# Opcodes that leave a new object behind (a container, a call's result, an imported name): each costs
# the machine up to several hundred bytes, against max_pickle_objects.
_ALLOCATES = [False] * 256
_ALLOCATING_OPCODES = (
    "EMPTY_DICT EMPTY_LIST EMPTY_SET DICT LIST TUPLE TUPLE1 TUPLE2 TUPLE3 FROZENSET REDUCE BUILD OBJ INST "
    "NEWOBJ NEWOBJ_EX GLOBAL STACK_GLOBAL PERSID BINPERSID EXT1 EXT2 EXT4"
)
for _name in _ALLOCATING_OPCODES.split():
    _ALLOCATES[_NAME_BY_BYTE.index(_name)] = True


def opcode_name(byte: int) -> str | None:
    return _NAME_BY_BYTE[byte]


_FIXED_ARG = {b"J": 4, b"K": 1, b"M": 2, b"G": 8, b"h": 1, b"j": 4, b"q": 1, b"r": 4, b"\x80": 1,
              b"\x82": 1, b"\x83": 2, b"\x84": 4, b"\x95": 8}  # fmt: skip
_COUNTED_ARG = {b"T": (4, "<i"), b"U": (1, "<B"), b"X": (4, "<I"), b"B": (4, "<I"), b"C": (1, "<B"),
                b"\x8c": (1, "<B"), b"\x8d": (8, "<Q"), b"\x8e": (8, "<Q"), b"\x96": (8, "<Q"),
                b"\x8a": (1, "<B"), b"\x8b": (4, "<i")}  # fmt: skip
_LINE_ARGS = {b"F": 1, b"I": 1, b"L": 1, b"S": 1, b"V": 1, b"P": 1, b"g": 1, b"p": 1, b"c": 2, b"i": 2}


def opcodes_plausible(data: memoryview | bytes, max_ops: int = 8) -> bool:
    """A cheap walk over the first opcodes (no machine): False at the first byte that is no opcode.
    Random data fails within a few bytes, so most non-pickles are rejected before any probing."""
    view = bytes(data[:4096])
    pos = 0
    for _ in range(max_ops):
        if pos >= len(view):
            return True
        code = view[pos : pos + 1]
        if _NAME_BY_BYTE[view[pos]] is None:
            return False
        pos += 1
        if code == b".":
            return True
        if code in _FIXED_ARG:
            pos += _FIXED_ARG[code]
        elif code in _COUNTED_ARG:
            width, fmt = _COUNTED_ARG[code]
            if pos + width > len(view):
                return True
            length = struct.unpack_from(fmt, view, pos)[0]
            if length < 0:
                return False
            pos += width + length
        elif code in _LINE_ARGS:
            for _line in range(_LINE_ARGS[code]):
                end = view.find(b"\n", pos, pos + 512)
                if end < 0:
                    return len(view) - pos < 512
                pos = end + 1
    return True


class PickleMachine:
    """Runs one pickle symbolically. Create one per pickle; `run()` never raises on hostile input
    except LimitExceeded (the caller turns that into an issue)."""

    def __init__(
        self,
        data: memoryview,
        start: int,
        limits: Limits,
        deadline: float | None = None,
        inline_data: InlineDataHook | None = None,
    ) -> None:
        self.data = data
        self.inline_data = inline_data
        self.issues: list[str] = []
        self.pos = start
        self.limits = limits
        self.deadline = deadline
        self.run_info = PickleRun(start=start)
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: dict[int, object] = {}
        self.proto = 0
        self._op_index = 0
        self._op_offset = start
        self._op_name = ""
        # STOP is handled by the driver loop itself.
        self._handlers = _opcode_table(type(self))
        self._frame_end: int | None = None
        self._frame_warned = False
        self.patched: dict[str, object] = {}
        self.module_swaps: dict[str, object] = {}
        self.limit_hit: LimitExceeded | None = None

    @property
    def _site(self) -> Site:
        """Where the current instruction sits; built only when an event records it."""
        return Site(self._op_index, self._op_offset, self._op_name)

    # ---- driver ---------------------------------------------------------------------------------

    def run(self) -> PickleRun:
        info = self.run_info
        data = self.data
        end = len(data)
        max_ops = self.limits.max_pickle_opcodes
        max_objects = self.limits.max_pickle_objects
        objects = 0
        index = 0
        handlers, names, allocates = self._handlers, _NAME_BY_BYTE, _ALLOCATES
        while True:
            if self.pos >= end:
                self._malformed("stream ends without a STOP opcode (truncated pickle)", fatal=True)
                break
            byte = data[self.pos]
            name = names[byte]
            self._op_index, self._op_offset, self._op_name = index, self.pos, name or f"0x{byte:02x}"
            if name is None:
                self._malformed(f"invalid opcode byte 0x{byte:02x}", fatal=True)
                break
            op_start = self.pos
            self.pos += 1
            index += 1
            if index > max_ops:
                self.limit_hit = LimitExceeded("max_pickle_opcodes", index, max_ops)
                break
            if allocates[byte]:
                objects += 1
                if objects > max_objects:
                    self.limit_hit = LimitExceeded("max_pickle_objects", objects, max_objects)
                    break
            if index & 0xFFFF == 0 and self.deadline is not None and time.monotonic() > self.deadline:
                self.limit_hit = LimitExceeded(
                    "max_seconds_per_file", index, max_ops, "time limit hit in pickle"
                )
                break
            try:
                if name == "STOP":
                    self._stop()
                    break
                handlers[byte](self)  # type: ignore[misc]
                if self._frame_end is not None:
                    self._check_frame(op_start)
            except _Truncated:
                self._malformed(f"stream ends inside {name} (truncated pickle)", fatal=True)
                break
            except _BadOpcode as exc:
                self._malformed(str(exc), fatal=True)
                break
            except _Unresolvable as exc:
                self.issues.append(str(exc))
                break
            except LimitExceeded as exc:
                self.limit_hit = exc
                break
        info.end = min(self.pos, end)
        info.opcodes = index
        info.protocol = self.proto
        return info

    def _stop(self) -> None:
        if self.metastack:
            self._malformed("STOP inside an unclosed MARK", fatal=False)
        if not self.stack:
            self._malformed("STOP with an empty stack", fatal=True)
        self.run_info.stopped = True

    # ---- reading --------------------------------------------------------------------------------

    def _check_frame(self, op_start: int) -> None:
        """The pickler keeps every opcode whole inside its FRAME; one that straddles the frame's end
        is hand-made, and readers that honour frames disagree on what follows."""
        end = self._frame_end
        if end is None:
            return
        if op_start < end < self.pos and not self._frame_warned:
            self._frame_warned = True
            self._op_offset = op_start
            self._malformed(
                f"{self._site.opcode} straddles the end of its FRAME (a pickler never writes this; "
                "the C unpickler ignores it, frame-aware readers do not)",
                fatal=False,
                loader_stops=False,
            )
        if self.pos >= end:
            self._frame_end = None

    def _read(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise _Truncated
        view = self.data[self.pos : self.pos + n]
        self.pos += n
        return view

    def _read_byte(self) -> int:
        pos = self.pos
        if pos >= len(self.data):
            raise _Truncated
        self.pos = pos + 1
        return self.data[pos]

    def _readline(self) -> bytes:
        data = self.data
        nl = bytes(data[self.pos : self.pos + 64 * 1024]).find(b"\n")
        if nl < 0:
            rest = len(data) - self.pos
            if rest > 64 * 1024:
                raise _BadOpcode("text argument longer than 64 KiB without a newline")
            raise _Truncated
        line = bytes(data[self.pos : self.pos + nl])
        self.pos += nl + 1
        return line

    def _declared_length(self, n: int) -> int:
        if self.pos + n > len(self.data):
            self._malformed(
                f"{self._site.opcode} declares {n} bytes but only {len(self.data) - self.pos} remain",
                fatal=True,
            )
            raise _Truncated
        if n > self.limits.max_pickle_string_bytes:
            raise LimitExceeded("max_pickle_string_bytes", n, self.limits.max_pickle_string_bytes)
        return n

    # ---- bookkeeping ----------------------------------------------------------------------------

    def _malformed(self, message: str, *, fatal: bool, loader_stops: bool = True) -> None:
        """Record a malformation. `fatal`: decoding cannot go on. `loader_stops`: CPython's unpickler
        raises here, so nothing after this point runs in the usual loader (other loaders may differ)."""
        info = self.run_info
        if loader_stops and info.loader_fails_at is None:
            info.loader_fails_at = self._site.offset
        info.anomalies.append(Anomaly("malformed", message, self._site, fatal=fatal))

    def _anomaly(self, kind: str, message: str, evidence: str = "") -> None:
        self.run_info.anomalies.append(Anomaly(kind, message, self._site, evidence))

    def _push(self, value: object) -> None:
        self.stack.append(value)

    def _pop(self) -> object:
        if self.stack:
            return self.stack.pop()
        self._malformed(f"{self._site.opcode} on an empty stack (unpickling stack underflow)", fatal=False)
        return UnknownValue("stack underflow")

    def _top(self) -> object:
        if self.stack:
            return self.stack[-1]
        self._malformed(f"{self._site.opcode} on an empty stack (unpickling stack underflow)", fatal=False)
        value = UnknownValue("stack underflow")
        self.stack.append(value)
        return value

    def _pop_mark(self) -> list[object]:
        items = self.stack
        if self.metastack:
            self.stack = self.metastack.pop()
        else:
            self._malformed(f"{self._site.opcode} without a MARK", fatal=False)
            self.stack = []
        return items

    def _memo_put(self, index: int, value: object) -> None:
        if index < 0:
            self._malformed("negative memo index", fatal=False)
            return
        if index not in self.memo and len(self.memo) >= self.limits.max_pickle_memo_entries:
            raise LimitExceeded(
                "max_pickle_memo_entries", len(self.memo) + 1, self.limits.max_pickle_memo_entries
            )
        if index > 0xFFFF_FFF and index > 4 * (len(self.memo) + 1024):
            self._anomaly("memo", f"memo index {index} far beyond the memo size (allocation abuse)")
        self.memo[index] = value

    def _memo_get(self, index: int) -> object:
        if index in self.memo:
            return self.memo[index]
        self._malformed(f"memo index {index} read before it was set", fatal=False)
        self._anomaly("memo", f"read of unset memo index {index}")
        return UnknownValue(f"unset memo {index}")

    # ---- imports and calls ----------------------------------------------------------------------

    def _find_class(self, module: str, name: str, via: str) -> Ref:
        raw = f"{module}.{name}"
        if self.proto < 3:
            module, name = fx.compat_name(module, name)
        swapped = self.module_swaps.get(module)
        if isinstance(swapped, GlobalRef):
            self._anomaly(
                "mutation",
                f"sys.modules[{module!r}] was replaced earlier in the stream by {swapped.qualname}",
                swapped.qualname,
            )
            module = swapped.qualname
        qualname = f"{module}.{name}"
        failure = None
        if self.proto >= 3 and module in fx.PY2_ONLY_MODULES:
            failure = (
                f"module {module!r} exists only in Python 2 and no mapping applies at protocol {self.proto}"
            )
        elif self.proto < 4 and "." in name:
            failure = f"dotted name {name!r} resolves only from protocol 4 (stream protocol {self.proto})"
        if failure is not None:
            self.run_info.imports.append(ImportEvent(module, name, qualname, self._site, via + " (fails)"))
            self._malformed(f"import of {qualname} fails in CPython: {failure}", fatal=False)
            return UnknownValue(f"failed import of {qualname}")
        event = ImportEvent(module, name, qualname, self._site, via)
        self.run_info.imports.append(event)
        planted = self.patched.get(qualname)
        if isinstance(planted, GlobalRef):
            # An earlier BUILD replaced this attribute: the import now yields the planted object.
            self._anomaly(
                "mutation",
                f"{qualname} was replaced earlier in the stream; importing it yields {planted.qualname}",
                planted.qualname,
            )
            return planted
        return GlobalRef(qualname=qualname, raw=raw, event_index=len(self.run_info.imports) - 1)

    def _resolved(self, qualname: str, via: str, *, is_module: bool = False) -> GlobalRef:
        """A name reached at load time by a resolver (getattr, import_module, …)."""
        module, _, name = qualname.rpartition(".")
        if is_module:
            module, name = qualname, ""
        self.run_info.imports.append(ImportEvent(module, name, qualname, self._site, via))
        return GlobalRef(
            qualname=qualname, raw=qualname, event_index=len(self.run_info.imports) - 1, is_module=is_module
        )

    def _mark_used(self, func: object, *, called: bool = False, rebuilt: bool = False) -> None:
        if isinstance(func, GlobalRef):
            event = self.run_info.imports[func.event_index]
            event.called = event.called or called
            event.rebuilt = event.rebuilt or rebuilt

    def _record(
        self, target: str | None, kind: str, evidence: Evidence, via: str = "", args: tuple[object, ...] = ()
    ) -> None:
        self.run_info.calls.append(CallEvent(target, kind, self._site, evidence, via, args))

    def _call(self, func: object, args: object, kwargs: object | None = None, *, via: str) -> object:
        """func(*args, **kwargs) as the loader would perform it; returns the symbolic result."""
        arg_tuple = args if isinstance(args, tuple) else ()
        evidence: Evidence = lambda: render_call(func, args, kwargs)  # noqa: E731 - rendered on demand
        if isinstance(func, GlobalRef):
            self._mark_used(func, called=True)
            name = func.qualname
            effect = self._apply_effect(name, arg_tuple, evidence, via)
            if effect is not None:
                return effect
            self._record(name, "call", evidence, via, arg_tuple)
            return ObjectRef(func=func, kind="call", event_index=len(self.run_info.calls) - 1, args=arg_tuple)
        if isinstance(func, ObjectRef):
            return self._call_object(func, arg_tuple, evidence, via)
        reason = func.reason if isinstance(func, UnknownValue) else f"a {type(func).__name__} value"
        self._record(None, "call", evidence, via + f" (callable is {reason})", arg_tuple)
        return UnknownValue(f"result of calling {reason}")

    def _call_object(self, func: ObjectRef, args: tuple[object, ...], evidence: Evidence, via: str) -> object:
        if func.kind == "partial":
            inner, bound = func.attrs.get("func"), func.attrs.get("args", ())
            full = (tuple(bound) if isinstance(bound, tuple) else ()) + args
            return self._call(inner, full, via=via + " via functools.partial")
        if func.kind == "attrgetter":
            names = func.attrs.get("names", ())
            target = args[0] if args else UnknownValue("no argument")
            result: object = UnknownValue("attrgetter")
            for attr in names if isinstance(names, tuple) else ():
                result = self._getattr(target, attr, "operator.attrgetter")
            return result
        if func.kind == "itemgetter":
            key = func.attrs.get("key")
            return self._getitem(args[0] if args else UnknownValue("no argument"), key)
        if func.kind == "methodcaller":
            target = args[0] if args else UnknownValue("no argument")
            method = self._getattr(target, func.attrs.get("name"), "operator.methodcaller")
            bound = func.attrs.get("args", ())
            return self._call(
                method, bound if isinstance(bound, tuple) else (), via=via + " via methodcaller"
            )
        if func.kind in ("function", "code"):
            self._record(
                None, "bytecode", evidence, via + " (function built from bytecode in this pickle)", args
            )
            return UnknownValue("result of bytecode")
        cls_name = func.func.qualname if isinstance(func.func, GlobalRef) else None
        target = f"{cls_name}.__call__" if cls_name else None
        self._record(target, "call", evidence, via + " (calls an object built by this pickle)", args)
        return UnknownValue("result of calling an object")

    def _apply_effect(
        self, name: str, args: tuple[object, ...], evidence: Evidence, via: str
    ) -> object | None:
        """Model resolvers, transforms, loaders and code factories; None means an ordinary call."""
        if name in fx.ATTRIBUTE_RESOLVERS or name in fx.MODULE_IMPORTERS or name in fx.NAME_RESOLVERS:
            self._record(name, "call", evidence, via, args)
            return self._resolve(name, args)
        if name in fx.TYPES_GETTERS and args and isinstance(args[0], str):
            self._record(name, "call", evidence, via, args)
            return self._resolved(fx.types_attribute(args[0]), f"{name}({args[0]!r})")
        if name == "builtins.type" and len(args) == 1:
            # type(x) only returns x's class; plain pickle stores NoneType as type(None).
            return ObjectRef(
                func=GlobalRef("builtins.type", name, -1),
                kind="type",
                event_index=-1,
                note=f"type({render(args[0])})",
            )
        if name in fx.MUTATORS and len(args) >= 3:
            self._record(name, "call", evidence, via, args)
            self._mutate(name, args[0], args[1], args[2])
            return UnknownValue(f"result of {name}")
        if name in fx.PARTIAL_BUILDERS and args:
            self._record(name, "call", evidence, via, args)
            self._mark_used(args[0], called=True)
            return ObjectRef(
                func=args[0],
                kind="partial",
                event_index=-1,
                attrs={"func": args[0], "args": args[1:]},
                note=f"partial({render(args[0])})",
            )
        if name in fx.MAPPERS and args:
            self._record(name, "call", evidence, via, args)
            self._call(args[0], (UnknownValue("each item"),), via=f"{name} (called for each item)")
            return UnknownValue("iterator")
        if name in fx.RECONSTRUCTORS:
            return self._reconstruct(name, args, evidence, via)
        if name in fx.NEWOBJ_HELPERS and args:
            cls = args[0]
            self._mark_used(cls, rebuilt=True)
            cls_name = cls.qualname if isinstance(cls, GlobalRef) else None
            self._record(name, "call", evidence, via, args)
            self._record(cls_name, "rebuild", evidence, via + f" via {name}", args)
            return ObjectRef(func=cls, kind="rebuild", event_index=len(self.run_info.calls) - 1)
        if name in fx.CODE_FACTORIES:
            self._record(name, "call", evidence, via, args)
            strings = tuple(s for s in strings_in(args) if len(s) < 200)
            if name in fx.LOADERS:  # marshal.loads: the names are inside the bytes
                payload = as_bytes(args[0]) if args else None
                strings = _printable_tokens(payload) if payload is not None else strings
            self.run_info.code_objects.append(CodeObjectEvent(name, strings, self._site))
            kind = "code" if "Code" in name or "code" in name or "marshal" in name else "function"
            return ObjectRef(
                func=GlobalRef(name, name, -1), kind=kind, event_index=-1, note=f"<{kind} built by {name}>"
            )
        if name in fx.LOADERS:
            return self._load_nested(name, args, evidence, via)
        if name in fx.DECODERS:
            self._record(name, "call", evidence, via, args)
            return self._decode(name, args)
        return None

    def _mutate(self, name: str, target: object, key: object, value: object) -> None:
        """setattr / setitem at load time: later imports and attribute reads see the planted value."""
        if not isinstance(key, str):
            return
        if isinstance(target, GlobalRef):
            self._anomaly(
                "mutation", f"{name} replaces {target.qualname}[{key!r}] at load time", render(value)
            )
            if target.qualname == "sys.modules":
                self.module_swaps[key] = value
            else:
                self.patched[f"{target.qualname}.{key}"] = value
        elif isinstance(target, ObjectRef):
            target.attrs[key] = value
            if key in ("__setstate__", "extend", "append", "add"):
                self._anomaly("planted-setstate", f"{name} plants {key!r} on an object", render(value))

    def _reconstruct(self, name: str, args: tuple[object, ...], evidence: Evidence, via: str) -> object:
        cls = args[0] if args else UnknownValue("no class")
        base = args[1] if len(args) > 1 else None
        state = args[2] if len(args) > 2 else None
        self._record(name, "call", evidence, via, args)
        self._mark_used(cls, rebuilt=True)
        cls_name = cls.qualname if isinstance(cls, GlobalRef) else None
        self._record(cls_name, "rebuild", evidence, via + f" via {name}", args)
        if isinstance(base, GlobalRef) and base.qualname not in ("builtins.object", "__builtin__.object"):
            # base.__new__(cls, state) and base.__init__(obj, state): the base's code runs.
            self._mark_used(base, called=True)
            self._record(
                base.qualname, "call", lambda: render_call(base, (state,)), via + f" as {name} base", (state,)
            )
        return ObjectRef(func=cls, kind="rebuild", event_index=len(self.run_info.calls) - 1)

    def _resolve(self, name: str, args: tuple[object, ...]) -> object:
        first = args[0] if args else None
        if name in fx.MODULE_IMPORTERS:
            if isinstance(first, str) and first:
                module = first
                if name == "builtins.__import__":
                    fromlist = args[3] if len(args) > 3 else None
                    has_fromlist = isinstance(fromlist, (tuple, SymList)) and bool(
                        fromlist.items if isinstance(fromlist, SymList) else fromlist
                    )
                    module = first if has_fromlist else first.split(".")[0]
                self._anomaly("resolver", f"{name} imports module {module!r} at load time", module)
                return self._resolved(module, name, is_module=True)
            self._anomaly(
                "dynamic-name", f"{name} receives a module name computed at load time", render(first)
            )
            return UnknownValue("dynamic import")
        if name in fx.NAME_RESOLVERS:
            if isinstance(first, str) and first:
                qualname = first.replace(":", ".")
                self._anomaly("resolver", f"{name} resolves {first!r} at load time", qualname)
                return self._resolved(qualname, name)
            self._anomaly("dynamic-name", f"{name} receives a name computed at load time", render(first))
            return UnknownValue("dynamic name")
        if name in (
            "builtins.getattr",
            "dill._dill._get_attr",
            "builtins.object.__getattribute__",
            "builtins.type.__getattribute__",
        ):
            return self._getattr(first, args[1] if len(args) > 1 else None, name)
        if name == "operator.attrgetter":
            names = tuple(a for a in args if isinstance(a, str))
            if len(names) != len(args) or not names:
                self._anomaly(
                    "dynamic-name", "attrgetter receives a name computed at load time", render(args)
                )
            return ObjectRef(
                func=None,
                kind="attrgetter",
                event_index=-1,
                attrs={"names": names},
                note=f"attrgetter({', '.join(map(repr, names))})",
            )
        if name == "operator.itemgetter":
            return ObjectRef(
                func=None,
                kind="itemgetter",
                event_index=-1,
                attrs={"key": first},
                note=f"itemgetter({render(first)})",
            )
        if name == "operator.getitem":
            return self._getitem(first, args[1] if len(args) > 1 else None)
        if name == "operator.methodcaller":
            if not isinstance(first, str):
                self._anomaly(
                    "dynamic-name", "methodcaller receives a name computed at load time", render(first)
                )
            return ObjectRef(
                func=None,
                kind="methodcaller",
                event_index=-1,
                attrs={"name": first, "args": args[1:]},
                note=f"methodcaller({render(first)}, …)",
            )
        return UnknownValue(name)

    def _getattr(self, target: object, attr: object, via: str) -> object:
        if not isinstance(attr, str):
            self._anomaly(
                "dynamic-name", f"{via} receives an attribute name computed at load time", render(attr)
            )
            return UnknownValue("dynamic attribute")
        if isinstance(target, ObjectRef) and attr in target.attrs:
            return target.attrs[attr]
        if isinstance(target, GlobalRef) and isinstance(self.patched.get(f"{target.qualname}.{attr}"), Ref):
            return self.patched[f"{target.qualname}.{attr}"]
        if isinstance(target, GlobalRef):
            qualname = f"{target.qualname}.{attr}"
        elif isinstance(target, ObjectRef) and isinstance(target.func, GlobalRef):
            qualname = f"{target.func.qualname}.{attr}"
        else:
            qualname = f"{type(target).__name__ if not isinstance(target, Ref) else 'object'}.{attr}"
            if isinstance(target, str):
                qualname = f"builtins.str.{attr}"
            elif isinstance(target, (bytes, memoryview)):
                qualname = f"builtins.bytes.{attr}"
        self._anomaly("resolver", f"{via} reaches {qualname!r} at load time", qualname)
        return self._resolved(qualname, via)

    def _getitem(self, container: object, key: object) -> object:
        if isinstance(container, GlobalRef) and container.qualname in ("sys.modules", "builtins.__dict__"):
            if isinstance(key, str):
                base = key if container.qualname == "sys.modules" else f"builtins.{key}"
                self._anomaly("resolver", f"{container.qualname}[{key!r}] reaches {base!r}", base)
                return self._resolved(
                    base, f"{container.qualname}[]", is_module=container.qualname == "sys.modules"
                )
        if isinstance(container, SymDict):
            for k, v in reversed(container.items):
                if k == key and isinstance(k, (str, int, bytes)):
                    return v
        if isinstance(container, (tuple, SymList)) and isinstance(key, int):
            items = container if isinstance(container, tuple) else container.items
            if -len(items) <= key < len(items):
                return items[key]
        return UnknownValue("item")

    def _load_nested(self, name: str, args: tuple[object, ...], evidence: Evidence, via: str) -> object:
        kind, trusted, position = fx.LOADERS[name]
        self._record(name, "call", evidence, via, args)
        payload = args[position] if len(args) > position else None
        if as_bytes(payload) is None and not (isinstance(payload, ObjectRef) and payload.kind == "bytesio"):
            # Called as a bound method or with another signature: take the first data argument.
            payload = next((a for a in args if as_bytes(a) is not None), payload)
        if isinstance(payload, ObjectRef) and payload.kind == "bytesio":
            payload = payload.attrs.get("data")
        data = (
            as_bytes(payload)
            if not isinstance(payload, str) or kind != "pickle"
            else payload.encode("latin-1", "replace")
        )
        if data is None:
            self._anomaly(
                "nested-loader-opaque",
                f"{name} loads data that cannot be known statically",
                evidence if isinstance(evidence, str) else evidence(),
            )
            return UnknownValue("nested load")
        self.run_info.nested.append(NestedPayload(name, trusted, data, self._site))
        return UnknownValue(f"object loaded by {name}")

    def _decode(self, name: str, args: tuple[object, ...]) -> object:
        scheme = fx.DECODERS[name]
        value = args[0] if args else None
        if scheme == "identity" and name.endswith("BytesIO"):
            data = as_bytes(value) if value is not None else b""
            return ObjectRef(
                func=None,
                kind="bytesio",
                event_index=-1,
                attrs={"data": data},
                note=f"BytesIO({render(value)})",
            )
        encoding = args[1] if len(args) > 1 and isinstance(args[1], str) else None
        if scheme == "codec" and name in ("_codecs.encode", "codecs.encode") and isinstance(value, str):
            if encoding in (None, "latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"):
                # How protocol 2 pickles store bytes: _codecs.encode(text, 'latin1').
                return value.encode(encoding or "utf-8", "surrogatepass") if encoding else value.encode()
        text_codecs = ("utf-8", "utf8", "latin1", "latin-1", "ascii", "iso-8859-1")
        if name in ("codecs.decode", "_codecs.decode") and isinstance(value, (bytes, memoryview)):
            if (encoding or "utf-8").lower() in text_codecs and len(value) <= TEXT_DECODE_LIMIT:
                return ComputedText(bytes(value).decode(encoding or "utf-8", "replace"))
        if scheme == "codec" and isinstance(value, str) and encoding in ("rot13", "rot_13"):
            return ComputedText(codecs.decode(value, "rot13"))
        payload = as_bytes(value)
        if payload is None:
            return UnknownValue(f"output of {name}")
        try:
            return decode_payload(scheme, payload, encoding, self.limits.max_nested_payload_bytes)
        except PayloadTooLarge as exc:
            self._anomaly(
                "nested-loader-opaque",
                f"{name} output is larger than the nested payload limit (max_nested_payload_bytes)",
                str(exc),
            )
        except (ValueError, TypeError, LookupError, OSError, EOFError):
            pass  # the real call would raise too; nothing further runs on this value
        return UnknownValue(f"output of {name}")

    # ---- opcodes: constants ---------------------------------------------------------------------

    def op_MARK(self) -> None:
        self.metastack.append(self.stack)
        self.stack = []

    def op_POP(self) -> None:
        if self.stack:
            self.stack.pop()
        elif self.metastack:
            self.stack = self.metastack.pop()
        else:
            self._malformed("POP on an empty stack", fatal=False)

    def op_POP_MARK(self) -> None:
        self._pop_mark()

    def op_DUP(self) -> None:
        self._push(self._top())

    def op_FLOAT(self) -> None:
        line = self._readline()
        try:
            self._push(float(_before_nul(line)))
        except ValueError:
            self._malformed("FLOAT with an invalid literal", fatal=True)
            raise _BadOpcode("invalid FLOAT literal") from None

    def op_INT(self) -> None:
        line = self._readline()
        try:
            self._push(_c_int_line(line) if len(line) < 4300 else UnknownValue("huge int"))
        except ValueError:
            raise _BadOpcode("INT with an invalid literal") from None

    def op_LONG(self) -> None:
        line = self._readline()
        if line.endswith(b"L"):
            line = line[:-1]
        try:
            self._push(int(_before_nul(line), 0) if len(line) < 4300 else UnknownValue("huge int"))
        except ValueError:
            raise _BadOpcode("LONG with an invalid literal") from None

    def op_BININT(self) -> None:
        self._push(_UNPACK_I4(self._read(4))[0])

    def op_BININT1(self) -> None:
        self._push(self._read(1)[0])

    def op_BININT2(self) -> None:
        self._push(_UNPACK_U2(self._read(2))[0])

    def op_LONG1(self) -> None:
        n = self._read(1)[0]
        self._push(int.from_bytes(self._read(n), "little", signed=True))

    def op_LONG4(self) -> None:
        n = _UNPACK_I4(self._read(4))[0]
        if n < 0:
            raise _BadOpcode("LONG pickle has negative byte count")
        raw = self._read(self._declared_length(n))
        self._push(int.from_bytes(raw, "little", signed=True) if n <= 512 else UnknownValue("huge int"))

    def op_BINFLOAT(self) -> None:
        self._push(_UNPACK_F8(self._read(8))[0])

    def op_NONE(self) -> None:
        self._push(None)

    def op_NEWTRUE(self) -> None:
        self._push(True)

    def op_NEWFALSE(self) -> None:
        self._push(False)

    def op_STRING(self) -> None:
        line = self._readline()
        if len(line) >= 2 and line[0] == line[-1] and line[0] in b"\"'":
            raw = line[1:-1]
        else:
            raise _BadOpcode("STRING opcode argument must be quoted")
        try:
            value = codecs.escape_decode(raw)[0]
        except ValueError:
            raise _BadOpcode("STRING with invalid escapes") from None
        self._push(_py2_str(value))

    def op_BINSTRING(self) -> None:
        n = _UNPACK_I4(self._read(4))[0]
        if n < 0:
            raise _BadOpcode("BINSTRING pickle has negative byte count")
        self._push(_py2_str(bytes(self._read(self._declared_length(n)))))

    def op_SHORT_BINSTRING(self) -> None:
        n = self._read(1)[0]
        self._push(_py2_str(bytes(self._read(n))))

    def op_UNICODE(self) -> None:
        line = self._readline()
        self._push(line.decode("raw-unicode-escape"))

    def _push_text(self, raw: memoryview) -> None:
        if len(raw) > TEXT_DECODE_LIMIT:
            self._push(BigText(raw))
            return
        try:
            self._push(str(raw, "utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            raise _BadOpcode("string is not valid UTF-8") from None

    def op_BINUNICODE(self) -> None:
        n = _UNPACK_U4(self._read(4))[0]
        self._push_text(self._read(self._declared_length(n)))

    def op_SHORT_BINUNICODE(self) -> None:
        n = self._read(1)[0]
        self._push_text(self._read(n))

    def op_BINUNICODE8(self) -> None:
        n = _UNPACK_U8(self._read(8))[0]
        self._push_text(self._read(self._declared_length(n)))

    def _push_bytes(self, raw: memoryview) -> None:
        self._push(bytes(raw) if len(raw) <= SMALL_BYTES else raw)

    def op_BINBYTES(self) -> None:
        n = _UNPACK_U4(self._read(4))[0]
        self._push_bytes(self._read(self._declared_length(n)))

    def op_SHORT_BINBYTES(self) -> None:
        n = self._read(1)[0]
        self._push_bytes(self._read(n))

    def op_BINBYTES8(self) -> None:
        n = _UNPACK_U8(self._read(8))[0]
        self._push_bytes(self._read(self._declared_length(n)))

    def op_BYTEARRAY8(self) -> None:
        n = _UNPACK_U8(self._read(8))[0]
        self._push_bytes(self._read(self._declared_length(n)))

    def op_NEXT_BUFFER(self) -> None:
        self._malformed(
            "NEXT_BUFFER: out-of-band data, which pickle.load refuses without buffers=", fatal=False
        )
        self._push(UnknownValue("out-of-band buffer"))

    def op_READONLY_BUFFER(self) -> None:
        self._top()

    # ---- opcodes: containers --------------------------------------------------------------------

    def op_EMPTY_TUPLE(self) -> None:
        self._push(())

    def op_TUPLE(self) -> None:
        self._push(tuple(self._pop_mark()))

    def op_TUPLE1(self) -> None:
        a = self._pop()
        self._push((a,))

    def op_TUPLE2(self) -> None:
        b, a = self._pop(), self._pop()
        self._push((a, b))

    def op_TUPLE3(self) -> None:
        c, b, a = self._pop(), self._pop(), self._pop()
        self._push((a, b, c))

    def op_EMPTY_LIST(self) -> None:
        self._push(SymList())

    def op_LIST(self) -> None:
        self._push(SymList(self._pop_mark()))

    def op_EMPTY_DICT(self) -> None:
        self._push(SymDict())

    def op_DICT(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            self._malformed("DICT with an odd number of items", fatal=False)
        self._push(SymDict(list(zip(items[::2], items[1::2], strict=False))))

    def op_EMPTY_SET(self) -> None:
        self._push(SymList(kind="set"))

    def op_FROZENSET(self) -> None:
        self._push(SymList(self._pop_mark(), kind="frozenset"))

    def op_APPEND(self) -> None:
        value = self._pop()
        self._add_items(self._top(), [value], "append")

    def op_APPENDS(self) -> None:
        items = self._pop_mark()
        self._add_items(self._top(), items, "extend")

    def op_ADDITEMS(self) -> None:
        items = self._pop_mark()
        self._add_items(self._top(), items, "add")

    def _add_items(self, target: object, items: list[object], method: str) -> None:
        if isinstance(target, SymList):
            target.items.extend(items)
            return
        if isinstance(target, ObjectRef):
            # The unpickler calls the object's own extend/append/add: planted attributes run here.
            planted = target.attrs.get(method) or target.attrs.get("append")
            if planted is not None:
                self._anomaly(
                    "planted-setstate",
                    f"{method} planted on an object is called by the unpickler",
                    render(planted),
                )
                for item in items:
                    self._call(planted, (item,), via=f"planted {method}")
                return
            cls = target.func.qualname if isinstance(target.func, GlobalRef) else None
            self._record(
                f"{cls}.{method}" if cls else None,
                "method",
                lambda: f"{render(target)}.{method}({render(items)})",
                "items added to a loaded object",
            )
            return
        if isinstance(target, (GlobalRef, PersistentRef)):
            self._anomaly("mutation", f"{self._site.opcode} adds items to {render(target)}", render(items))

    def op_SETITEM(self) -> None:
        value, key = self._pop(), self._pop()
        self._set_items(self._top(), [(key, value)])

    def op_SETITEMS(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            self._malformed("SETITEMS with an odd number of items", fatal=False)
        self._set_items(self._top(), list(zip(items[::2], items[1::2], strict=False)))

    def _set_items(self, target: object, pairs: list[tuple[object, object]]) -> None:
        if isinstance(target, SymDict):
            target.items.extend(pairs)
        elif isinstance(target, ObjectRef):
            cls = target.func.qualname if isinstance(target.func, GlobalRef) else None
            self._record(
                f"{cls}.__setitem__" if cls else None,
                "method",
                lambda: f"{render(target)}[…] = …",
                "items set on a loaded object",
            )
        elif isinstance(target, GlobalRef):
            self._anomaly(
                "mutation",
                f"SETITEM on {target.qualname} (mutates an imported object)",
                render(SymDict(pairs)),
            )

    # ---- opcodes: memo --------------------------------------------------------------------------

    def op_GET(self) -> None:
        try:
            index = int(_before_nul(self._readline()), 10)
        except ValueError:
            raise _BadOpcode("GET with an invalid index") from None
        self._push(self._memo_get(index))

    def op_BINGET(self) -> None:
        self._push(self._memo_get(self._read_byte()))

    def op_LONG_BINGET(self) -> None:
        self._push(self._memo_get(_UNPACK_U4(self._read(4))[0]))

    def op_PUT(self) -> None:
        try:
            index = int(_before_nul(self._readline()), 10)
        except ValueError:
            raise _BadOpcode("PUT with an invalid index") from None
        self._memo_put(index, self._top())

    def op_BINPUT(self) -> None:
        self._memo_put(self._read_byte(), self._top())

    def op_LONG_BINPUT(self) -> None:
        self._memo_put(_UNPACK_U4(self._read(4))[0], self._top())

    def op_MEMOIZE(self) -> None:
        self._memo_put(len(self.memo), self._top())

    # ---- opcodes: protocol and framing ----------------------------------------------------------

    def op_PROTO(self) -> None:
        proto = self._read(1)[0]
        if proto > HIGHEST_PROTOCOL:
            raise _BadOpcode(f"unsupported pickle protocol: {proto}")
        self.proto = proto

    def op_FRAME(self) -> None:
        if self._frame_end is not None and self.pos - 1 < self._frame_end and not self._frame_warned:
            self._frame_warned = True
            self._malformed(
                "FRAME begins before the previous frame ends (the pure-Python unpickler fails here)",
                fatal=False,
                loader_stops=False,
            )
        self._frame_end = None
        size = _UNPACK_U8(self._read(8))[0]
        self._frame_end = self.pos + size
        if self.pos + size > len(self.data):
            self._malformed(
                f"FRAME declares {size} bytes but only {len(self.data) - self.pos} remain; "
                "CPython's unpickler stops here",
                fatal=True,
            )
            raise _Truncated

    # ---- opcodes: imports -----------------------------------------------------------------------

    def op_GLOBAL(self) -> None:
        module = self._readline().decode("utf-8", "replace")
        name = self._readline().decode("utf-8", "replace")
        self._push(self._find_class(module, name, "GLOBAL"))

    def op_STACK_GLOBAL(self) -> None:
        name, module = self._pop(), self._pop()
        if not isinstance(module, str) or not isinstance(name, str):
            self._anomaly(
                "dynamic-name",
                "STACK_GLOBAL operands are not constant strings",
                f"module={render(module)}, name={render(name)}",
            )
            self._malformed("STACK_GLOBAL requires str", fatal=False)
            self._push(UnknownValue("STACK_GLOBAL of non-constant names"))
            return
        if isinstance(module, ComputedText) or isinstance(name, ComputedText):
            self._anomaly(
                "dynamic-name",
                f"STACK_GLOBAL operands are computed at load time; they resolve to {module}.{name}",
                f"{module}.{name}",
            )
        self._push(self._find_class(module, name, "STACK_GLOBAL"))

    def op_INST(self) -> None:
        module = self._readline().decode("utf-8", "replace")
        name = self._readline().decode("utf-8", "replace")
        klass = self._find_class(module, name, "INST")
        self._push(self._instantiate(klass, self._pop_mark(), "INST"))

    def op_OBJ(self) -> None:
        items = self._pop_mark()
        if not items:
            self._malformed("OBJ without a class", fatal=False)
            self._push(UnknownValue("OBJ without class"))
            return
        self._push(self._instantiate(items[0], items[1:], "OBJ"))

    def _instantiate(self, klass: object, args: list[object], via: str) -> object:
        return self._call(klass, tuple(args), via=via)

    def _ext(self, code: int) -> None:
        self._anomaly(
            "ext-code",
            f"extension code {code} resolves through copyreg's registry of the "
            "loading process (empty by default)",
            str(code),
        )
        self._push(UnknownValue(f"extension code {code}"))

    def op_EXT1(self) -> None:
        self._ext(self._read(1)[0])

    def op_EXT2(self) -> None:
        self._ext(_UNPACK_U2(self._read(2))[0])

    def op_EXT4(self) -> None:
        self._ext(_UNPACK_I4(self._read(4))[0])

    def op_PERSID(self) -> None:
        pid = self._readline().decode("ascii", "replace")
        self.run_info.persistent_ids.append(pid)
        self._push(PersistentRef(pid))

    def op_BINPERSID(self) -> None:
        pid = self._pop()
        self.run_info.persistent_ids.append(pid)
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module" and isinstance(pid[1], GlobalRef):
            # Legacy torch.save stores a module's class as ('module', cls, file, source);
            # torch's persistent_load hands back cls itself.
            self._push(pid[1])
            return
        self._push(PersistentRef(pid))

    # ---- opcodes: calls and state ---------------------------------------------------------------

    def op_REDUCE(self) -> None:
        args, func = self._pop(), self._pop()
        if not isinstance(args, tuple):
            self._malformed("REDUCE arguments are not a tuple", fatal=False)
        self._push(self._call(func, args if isinstance(args, tuple) else (args,), via="REDUCE"))

    def op_NEWOBJ(self) -> None:
        args, cls = self._pop(), self._pop()
        self._push(self._new(cls, args, None, "NEWOBJ"))

    def op_NEWOBJ_EX(self) -> None:
        kwargs, args, cls = self._pop(), self._pop(), self._pop()
        self._push(self._new(cls, args, kwargs, "NEWOBJ_EX"))

    def _new(self, cls: object, args: object, kwargs: object | None, via: str) -> object:
        evidence: Evidence = lambda: render_call(  # noqa: E731 - rendered on demand
            GlobalRef(f"{render(cls)}.__new__", "", -1), args, kwargs
        )
        arg_tuple = args if isinstance(args, tuple) else ()
        if isinstance(cls, GlobalRef):
            self._mark_used(cls, rebuilt=True)
            self._record(cls.qualname, "new", evidence, via, arg_tuple)
            return ObjectRef(func=cls, kind="new", event_index=len(self.run_info.calls) - 1)
        self._record(None, "new", evidence, via + " (class computed at load time)", arg_tuple)
        return ObjectRef(func=cls, kind="new", event_index=len(self.run_info.calls) - 1)

    def op_BUILD(self) -> None:
        state = self._pop()
        inst = self._top()
        if isinstance(inst, ObjectRef):
            planted = inst.attrs.get("__setstate__")
            if planted is not None:
                self._anomaly(
                    "planted-setstate",
                    "BUILD calls a __setstate__ planted by an earlier BUILD",
                    render(planted),
                )
                self._call(planted, (state,), via="BUILD (planted __setstate__)")
                return
            if not isinstance(state, SymDict):
                inst.attrs["__state__"] = state
            for name, value in _state_attributes(state):
                inst.attrs[name] = value
                if name == "__setstate__":
                    self._anomaly(
                        "planted-setstate",
                        "BUILD plants a __setstate__ attribute on an object",
                        render(value),
                    )
                elif name in ("extend", "append", "add", "__reduce__", "__reduce_ex__"):
                    self._anomaly(
                        "planted-setstate", f"BUILD plants a {name!r} attribute on an object", render(value)
                    )
            if self.inline_data is not None:
                action = self.inline_data(inst, self.data, self.pos)
                if action is not None:
                    self._apply_inline(action)
            return
        if isinstance(inst, GlobalRef):
            self._anomaly(
                "mutation",
                f"BUILD sets attributes on {inst.qualname} (imported "
                f"{'module' if inst.is_module else 'object'})",
                render(state),
            )
            for attr, value in _state_attributes(state):
                self.patched[f"{inst.qualname}.{attr}"] = value
            return
        if isinstance(inst, PersistentRef):
            return
        if not isinstance(inst, UnknownValue):
            self._malformed(f"BUILD on a {type(inst).__name__} value", fatal=False)

    def _apply_inline(self, action: InlineData) -> None:
        if self._frame_end is not None and self.pos >= self._frame_end:
            self._frame_end = None  # inline data is read from the raw stream, after the frame
        if action.problem is not None:
            raise _Unresolvable(action.problem)
        if action.external_file is not None:
            self._anomaly(
                "external-file",
                f"the loader reads {action.external_file!r} from beside the file "
                "(np.load with allow_pickle=True or a zlib file read)",
                action.external_file,
            )
            return
        if action.nested_pickle:
            sub = PickleMachine(self.data, self.pos, self.limits, self.deadline, self.inline_data)
            sub_run = sub.run()
            info = self.run_info
            info.imports.extend(sub_run.imports)
            info.calls.extend(sub_run.calls)
            info.nested.extend(sub_run.nested)
            info.code_objects.extend(sub_run.code_objects)
            info.anomalies.extend(sub_run.anomalies)
            info.persistent_ids.extend(sub_run.persistent_ids)
            self.issues.extend(sub.issues)
            self.pos = sub_run.end
            self.stack[-1] = UnknownValue("object array")
            if not sub_run.stopped:
                raise _Unresolvable("nested object-array pickle did not end cleanly")
            return
        if self.pos + action.skip > len(self.data):
            self._malformed(
                f"inline array data of {action.skip} bytes runs past the end of the stream", fatal=True
            )
            raise _Truncated
        self.pos += action.skip
        self.stack[-1] = UnknownValue("array read from the stream")


# CPython's C unpickler reads text arguments as C strings: parsing stops at a NUL byte, and INT goes
# through strtol (leading whitespace, octal "010", any junk after a NUL). A literal Python's int() refuses
# but the loader accepts must not stop the machine: everything after it would go unreported.
_STRTOL = re.compile(rb"[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_C_LONG_MAX = 2**63 - 1


def _before_nul(line: bytes) -> bytes:
    return line.split(b"\0", 1)[0]


def _c_int_line(line: bytes) -> int | bool:
    """INT's argument as the C unpickler reads it: strtol, else PyLong_FromString; 0 and 1 written
    in two characters ("00", "01") are the booleans of protocol 0."""
    match = _STRTOL.match(line)
    end = 0 if match is None else match.end()  # strtol converting nothing leaves its end at the start
    if line and (end == len(line) or line[end] == 0):
        value = 0
        if match is not None:
            sign, digits = match.groups()
            value = (
                int(digits[2:], 16)
                if digits[:2] in (b"0x", b"0X")
                else int(digits, 8 if digits[:1] == b"0" else 10)
            )
            value = -value if sign == b"-" else value
        if -_C_LONG_MAX - 1 <= value <= _C_LONG_MAX:
            return bool(value) if len(line) == 2 and value in (0, 1) else value
    return int(_before_nul(line), 0)


def _state_attributes(state: object) -> list[tuple[str, object]]:
    """Attribute names BUILD would set from a state dict or a (dict, slotstate) pair."""
    out: list[tuple[str, object]] = []
    parts: list[object] = [state]
    if isinstance(state, tuple) and len(state) == 2:
        parts = list(state)
    for part in parts:
        if isinstance(part, SymDict):
            out.extend((k, v) for k, v in part.items if isinstance(k, str))
    return out


def _py2_str(value: bytes) -> str:
    """Protocol 0–2 byte strings become str via ASCII, as with encoding='ASCII' (the default)."""
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _printable_tokens(data: bytes | memoryview, limit: int = 200) -> tuple[str, ...]:
    """The names and strings a marshalled code object carries; identifier-like ASCII runs when the bytes
    are not a code object of a known layout."""
    try:
        code = read_code(bytes(data[: 1024 * 1024]))
    except MarshalFormatError:
        pass
    else:
        return (*code.all_names(), *code.all_strings())[:limit]
    tokens: list[str] = []
    current = bytearray()
    for byte in bytes(data[: 1024 * 1024]):
        if 32 <= byte < 127:
            current.append(byte)
            continue
        if len(current) >= 2:
            tokens.append(current.decode())
        current.clear()
        if len(tokens) >= limit:
            break
    if len(current) >= 2 and len(tokens) < limit:
        tokens.append(current.decode())
    return tuple(tokens)


_OPCODE_TABLES: dict[type[PickleMachine], tuple[Callable[[PickleMachine], None] | None, ...]] = {}


def _opcode_table(machine: type[PickleMachine]) -> tuple[Callable[[PickleMachine], None] | None, ...]:
    """Each opcode byte's method (unbound, looked up once per class, not once per pickle scanned)."""
    table = _OPCODE_TABLES.get(machine)
    if table is None:
        table = tuple(getattr(machine, "op_" + n) if n and n != "STOP" else None for n in _NAME_BY_BYTE)
        _OPCODE_TABLES[machine] = table
    return table
