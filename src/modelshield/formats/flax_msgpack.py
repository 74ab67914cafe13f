"""Flax msgpack checkpoints: a bounded walk of the msgpack wire format (no unpacking into objects) that
checks every length against the buffer and every extension type against those flax writes."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.formats.base import ScanEvent
from modelshield.rules import flax as rules

name = "flax-msgpack"
version = "1"

MAX_DEPTH = 128
MAX_FINDINGS_PER_RULE = 32
TIME_CHECK_EVERY = 1 << 16
SNIFF_BYTES = 4096
EXT_NDARRAY, EXT_COMPLEX, EXT_NPSCALAR = 1, 2, 3
FLAX_EXT_TYPES = {EXT_NDARRAY: "ndarray", EXT_COMPLEX: "native complex", EXT_NPSCALAR: "numpy scalar"}

MAP, ARRAY, STR, BIN, EXT, SCALAR = "map", "array", "str", "bin", "ext", "scalar"

_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_FIXED.update({0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8})
_LENGTH_WIDTH = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4, 0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4}
_LENGTH_KIND = {0xC4: BIN, 0xC5: BIN, 0xC6: BIN, 0xD9: STR, 0xDA: STR, 0xDB: STR}
_LENGTH_KIND.update({0xDC: ARRAY, 0xDD: ARRAY, 0xDE: MAP, 0xDF: MAP})
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
_EXT_WIDTH = {0xC7: 1, 0xC8: 2, 0xC9: 4}


class MsgpackError(ValueError):
    """The bytes break the msgpack format at `offset`; `truncated` when they simply end too soon."""

    def __init__(self, offset: int, message: str, *, truncated: bool = False) -> None:
        self.offset = offset
        self.truncated = truncated
        super().__init__(message)


@dataclass(frozen=True)
class Token:
    """One msgpack header: its kind, element count or byte length, ext type, and where its body starts."""

    at: int
    kind: str
    size: int
    body: int
    ext_type: int = 0


def read_token(data: bytes | memoryview, pos: int, end: int) -> Token:
    """The header at `pos`; a str/bin/ext body is checked to fit before `end` (its bytes are not read)."""
    if pos >= end:
        raise MsgpackError(pos, "the data ends where a value should start", truncated=True)
    b = data[pos]
    if b <= 0x7F or b >= 0xE0:
        return Token(pos, SCALAR, 0, pos + 1)
    if b <= 0x8F:
        return Token(pos, MAP, b & 0x0F, pos + 1)
    if b <= 0x9F:
        return Token(pos, ARRAY, b & 0x0F, pos + 1)
    if b <= 0xBF:
        return _bounded(Token(pos, STR, b & 0x1F, pos + 1), end)
    if b in _FIXED:
        width = _FIXED[b]
        if pos + 1 + width > end:
            raise MsgpackError(pos, "the data ends inside a number", truncated=True)
        return Token(pos, SCALAR, 0, pos + 1 + width)
    if b in _LENGTH_WIDTH:
        width = _LENGTH_WIDTH[b]
        if pos + 1 + width > end:
            raise MsgpackError(pos, "the data ends inside a length", truncated=True)
        size = int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
        return _bounded(Token(pos, _LENGTH_KIND[b], size, pos + 1 + width), end)
    if b in _FIXEXT:
        if pos + 2 > end:
            raise MsgpackError(pos, "the data ends inside an extension header", truncated=True)
        ext_type = struct.unpack_from(">b", data, pos + 1)[0]
        return _bounded(Token(pos, EXT, _FIXEXT[b], pos + 2, ext_type), end)
    if b in _EXT_WIDTH:
        width = _EXT_WIDTH[b]
        if pos + 2 + width > end:
            raise MsgpackError(pos, "the data ends inside an extension header", truncated=True)
        size = int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
        ext_type = struct.unpack_from(">b", data, pos + 1 + width)[0]
        return _bounded(Token(pos, EXT, size, pos + 2 + width, ext_type), end)
    raise MsgpackError(pos, f"byte 0x{b:02x} starts no msgpack value")


def _bounded(token: Token, end: int) -> Token:
    if token.kind in (MAP, ARRAY):
        return token
    if token.body + token.size > end:
        raise MsgpackError(
            token.at,
            f"{token.kind} of {token.size} bytes runs past the end ({end - token.body} bytes left)",
            truncated=True,
        )
    return token


def _after(token: Token) -> int:
    return token.body + token.size if token.kind in (STR, BIN, EXT) else token.body


def skip_value(
    data: bytes | memoryview, pos: int, end: int, ctx: ScanContext | None = None
) -> Iterator[Token]:
    """Every token of the one value at `pos`, in order, with container counts checked against the bytes
    left and nesting bounded; the caller learns where the value ends from the last token's extent."""
    pending = [1]
    steps = 0
    while pending:
        if pending[-1] == 0:
            pending.pop()
            continue
        pending[-1] -= 1
        token = read_token(data, pos, end)
        steps += 1
        if ctx is not None and steps % TIME_CHECK_EVERY == 0:
            ctx.check_time()
        yield token
        pos = _after(token)
        if token.kind in (MAP, ARRAY):
            items = token.size * (2 if token.kind == MAP else 1)
            if items > end - pos:
                raise MsgpackError(
                    token.at, f"{token.kind} declares {token.size} entries; {end - pos} bytes left"
                )
            if len(pending) >= MAX_DEPTH:
                raise MsgpackError(token.at, f"values nested more than {MAX_DEPTH} deep")
            if items:
                pending.append(items)


def sniff(blob: Blob) -> bool:
    """A top-level map whose keys are strings and whose first extension is a flax ndarray."""
    head = blob.head(SNIFF_BYTES)
    if not head or not (0x81 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)):
        return False
    end = len(head)
    key_expected: list[int] = []  # per open map, how many values are left (keys at even remaining counts)
    try:
        for token in skip_value(head, 0, end):
            if key_expected and key_expected[-1] % 2 == 0 and token.kind != STR:
                return False
            if key_expected:
                key_expected[-1] -= 1
            if token.kind == EXT:
                return token.ext_type == EXT_NDARRAY and _ndarray_header(head, token)
            if token.kind == MAP:
                key_expected.append(2 * token.size)
            elif token.kind == ARRAY:
                return False  # flax state dicts hold maps and leaves; arrays only inside extensions
            while key_expected and key_expected[-1] == 0:
                key_expected.pop()
    except MsgpackError:
        return False
    return False


def _ndarray_header(data: bytes | memoryview, token: Token) -> bool:
    """The ext body starts as flax writes ndarrays: a 3-array of (shape array, dtype name, bytes)."""
    body = token.body
    return (
        token.size >= 4
        and data[body] == 0x93
        and (0x90 <= data[body + 1] <= 0x9F or data[body + 1] in (0xDC, 0xDD))
    )


@dataclass
class _Findings:
    blob: Blob
    events: list[ScanEvent]
    reported: dict[str, int]

    def add(self, rule_id: str, event: ScanEvent) -> None:
        self.reported[rule_id] = self.reported.get(rule_id, 0) + 1
        if self.reported[rule_id] <= MAX_FINDINGS_PER_RULE:
            self.events.append(event)


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    data = blob.view()
    end = len(data)
    out = _Findings(blob, [], {})
    seen_ext: set[int] = set()
    last_end = 0
    try:
        for token in skip_value(data, 0, end, ctx):
            last_end = max(last_end, _after(token))
            if token.kind != EXT:
                continue
            where = Location(blob.chain, offset=token.at)
            if token.ext_type not in FLAX_EXT_TYPES:
                if token.ext_type not in seen_ext:
                    seen_ext.add(token.ext_type)
                    out.add(
                        rules.UNKNOWN_EXT.id,
                        rules.UNKNOWN_EXT.at(
                            where,
                            f"msgpack extension type {token.ext_type} is not one flax writes "
                            f"(1 ndarray, 2 complex, 3 numpy scalar)",
                            evidence=f"ext {token.ext_type}, {token.size} bytes",
                        ),
                    )
                continue
            problem = _ext_body_problem(data, token)
            if problem is not None:
                out.add(
                    rules.MALFORMED.id,
                    rules.MALFORMED.at(where, f"{FLAX_EXT_TYPES[token.ext_type]} extension {problem}"),
                )
    except MsgpackError as exc:
        finding = rules.MALFORMED.at(
            Location(blob.chain, offset=exc.offset), f"msgpack structure is broken: {exc}"
        )
        out.events.append(finding)
        out.events.append(
            ScanIssue("partial", "the msgpack checkpoint could not be read to its end", finding.location)
        )
        yield from out.events
        return
    yield from out.events
    if last_end < end:
        yield rules.MALFORMED.at(
            Location(blob.chain, offset=last_end, detail="(data after msgpack value)"),
            f"{end - last_end} bytes follow the checkpoint's msgpack value; readers ignore or refuse them",
            evidence=repr(blob.read_at(last_end, 32)),
        )
        yield blob.slice(last_end, end - last_end, "(data after msgpack value)")


def _ext_body_problem(data: memoryview, token: Token) -> str | None:
    """Why an ndarray/complex/scalar body is not the single msgpack value flax encodes, if it is not."""
    start, stop = token.body, token.body + token.size
    last = start
    try:
        tokens = skip_value(data, start, stop)
        first = next(tokens)
        last = _after(first)
        for t in tokens:
            last = max(last, _after(t))
    except MsgpackError as exc:
        return f"body is not msgpack: {exc}"
    if first.kind != ARRAY:
        return "body is not a msgpack array"
    if last != stop:
        return f"body holds {stop - last} bytes after its value"
    return None
