"""GGUF (llama.cpp) models: bounded parse of header, metadata, chat templates and tensor layout."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from modelshield.analysis import weights
from modelshield.analysis.templates import judge_template
from modelshield.engine.blob import Blob, BufferBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, Location, ScanIssue, Severity
from modelshield.engine.rules import Rule
from modelshield.formats.base import ScanEvent
from modelshield.formats.signatures import GGUF_MAGICS
from modelshield.rules import gguf as rules

name = "gguf"
version = "1"

MAGICS = GGUF_MAGICS
"""b"FUGG" is what early llama.cpp wrote on big-endian hosts (the magic stored as a native uint32)."""
VERSIONS = (1, 2, 3)
GGML_MAX_DIMS = 4
GGML_MAX_NAME = 64
DEFAULT_ALIGNMENT = 32
INT64_MAX = (1 << 63) - 1

MAX_KEY_BYTES = 1024
MAX_ARRAY_DEPTH = 3
MAX_FINDINGS_PER_RULE = 32
TIME_CHECK_EVERY = 1 << 14

TEMPLATE_KEY = "tokenizer.chat_template"
ALIGNMENT_KEY = "general.alignment"

# ggml types that files may hold: id -> (name, elements per block, bytes per block), as ggml defines
# them. Ids 4, 5, 31-33 and 36-38 were removed from ggml and are refused by llama.cpp.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}

# Metadata value types: fixed sizes of the scalar ones; 8 is a string and 9 an array.
VALUE_SIZES: dict[int, int] = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
VALUE_STRING = 8
VALUE_ARRAY = 9
VALUE_UINT32 = 4
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}


def sniff(blob: Blob) -> bool:
    head = blob.head(8)
    if len(head) < 8 or head[:4] not in MAGICS:
        return False
    return _byte_order(head) is not None


def _byte_order(head: bytes) -> str | None:
    """The file's byte order, told by which reading of the version field is a known version."""
    if struct.unpack_from("<I", head, 4)[0] in VERSIONS:
        return "<"
    if struct.unpack_from(">I", head, 4)[0] in VERSIONS:
        return ">"
    return None


class _Stop(Exception):
    """Parsing cannot go on; carries the finding that says why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as the header describes it; `nbytes` is None when its size cannot be computed."""

    name: str
    info_offset: int
    data_offset: int
    nbytes: int | None
    ggml_type: int = -1


class _Parser:
    """Reads the header and metadata of one GGUF blob, checking every length before using it."""

    def __init__(self, blob: Blob, ctx: ScanContext, order: str, file_version: int) -> None:
        self.blob = blob
        self.ctx = ctx
        self.data = blob.view()
        self.size = len(self.data)
        self.order = order
        self.v1 = file_version == 1
        self.pos = 8
        self.len_size = 4 if self.v1 else 8
        self.counts: dict[str, int] = {}
        self._u32 = struct.Struct(order + "I")
        self._len = struct.Struct(order + ("I" if self.v1 else "Q"))
        self._scalars = {t: struct.Struct(order + f) for t, f in _SCALAR_FORMATS.items()}
        self.steps = 0

    def where(self, offset: int | None = None, detail: str | None = None) -> Location:
        return Location(self.blob.chain, offset=self.pos if offset is None else offset, detail=detail)

    def stop(
        self, rule: Rule, message: str, detail: str, offset: int | None = None, evidence: str = ""
    ) -> _Stop:
        return _Stop(rule.at(self.where(offset, detail), message, evidence=evidence))

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def need(self, n: int, what: str, detail: str) -> None:
        if n > self.remaining:
            raise self.stop(
                rules.MALFORMED,
                f"file ends inside {what}: {n} bytes needed, {max(self.remaining, 0)} left",
                detail,
            )

    def tick(self) -> None:
        self.steps += 1
        if self.steps % TIME_CHECK_EVERY == 0:
            self.ctx.check_time()

    def u32(self, what: str, detail: str) -> int:
        self.need(4, what, detail)
        value: int = self._u32.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return value

    def length(self, what: str, detail: str) -> int:
        """A count or length field: 32-bit in GGUF v1, 64-bit since v2."""
        self.need(self.len_size, what, detail)
        value: int = self._len.unpack_from(self.data, self.pos)[0]
        self.pos += self.len_size
        return value

    def u64(self, what: str, detail: str) -> int:
        self.need(8, what, detail)
        value: int = self._scalars[10].unpack_from(self.data, self.pos)[0]
        self.pos += 8
        return value

    def string_span(self, what: str, detail: str) -> tuple[int, int]:
        """(start, length) of a string, its length checked against the bytes left before any use."""
        at = self.pos
        n = self.length(f"the length of {what}", detail)
        if n > self.remaining:
            raise self.stop(
                rules.STRING_LENGTH,
                f"{what} declares {n} bytes but only {self.remaining} remain in the file",
                detail,
                offset=at,
                evidence=f"length {n}",
            )
        start = self.pos
        self.pos += n
        return start, n

    def text(self, start: int, n: int, limit: int) -> str:
        shown = bytes(self.data[start : start + min(n, limit)]).decode("utf-8", "replace")
        return shown + ("…" if n > limit else "")

    def digest(self, start: int, n: int) -> bytes:
        return hashlib.blake2b(self.data[start : start + n], digest_size=16).digest()


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    head = blob.head(8)
    order = _byte_order(head)
    if order is None:
        yield rules.MALFORMED.at(Location(blob.chain, offset=4, detail="version"), "unknown GGUF version")
        return
    file_version: int = struct.unpack_from(order + "I", head, 4)[0]
    parser = _Parser(blob, ctx, order, file_version)
    state = _ScanState()
    try:
        yield from _scan_header(parser, state)
        yield from _scan_metadata(parser, state)
        yield from _scan_tensor_infos(parser, state)
    except _Stop as stop:
        yield stop.finding
        yield ScanIssue(
            "partial",
            "the GGUF structure could not be read to its end; the rest of the file was not analysed",
            stop.finding.location,
        )
        return
    yield from _scan_layout(parser, state)


@dataclass
class _ScanState:
    """What the header and metadata told the layout checks."""

    kv_count: int = 0
    tensor_count: int = 0
    alignment: int = DEFAULT_ALIGNMENT
    alignment_valid: bool = True
    tensors: list[TensorInfo] | None = None


def _scan_header(p: _Parser, state: _ScanState) -> Iterator[ScanEvent]:
    state.tensor_count = p.length("the tensor count", "tensor_count")
    count_at = p.pos
    state.kv_count = p.length("the metadata count", "metadata_kv_count")
    min_kv = p.len_size + 4 + 1
    min_tensor = p.len_size + 4 + 4 + 8
    if state.kv_count * min_kv > p.remaining:
        raise p.stop(
            rules.ABSURD_COUNT,
            f"{state.kv_count} metadata entries declared; the {p.remaining} bytes left hold at most "
            f"{p.remaining // min_kv}",
            "metadata_kv_count",
            offset=count_at,
            evidence=f"metadata_kv_count={state.kv_count}",
        )
    if state.kv_count * min_kv + state.tensor_count * min_tensor > p.remaining:
        raise p.stop(
            rules.ABSURD_COUNT,
            f"{state.tensor_count} tensors declared; the bytes left after the metadata cannot describe them",
            "tensor_count",
            offset=8,
            evidence=f"tensor_count={state.tensor_count}",
        )
    for field_name, value, limit_name, at in (
        ("metadata_kv_count", state.kv_count, "max_gguf_metadata_entries", count_at),
        ("tensor_count", state.tensor_count, "max_gguf_tensors", 8),
    ):
        limit = getattr(p.ctx.limits, limit_name)
        if value > limit:
            yield ScanIssue(
                "limit",
                f"{field_name} {value} is above the scanner's limit of {limit} ({limit_name}); "
                "the file was not analysed",
                p.where(at, field_name),
            )
            raise p.stop(
                rules.ABSURD_COUNT,
                f"{value} entries declared in {field_name}, far beyond any real model",
                field_name,
                offset=at,
                evidence=f"{field_name}={value}",
            )


def _scan_metadata(p: _Parser, state: _ScanState) -> Iterator[ScanEvent]:
    seen: set[bytes] = set()
    reported: dict[str, int] = {}
    for index in range(state.kv_count):
        p.tick()
        key_at = p.pos
        start, n = p.string_span(f"metadata key #{index}", f"metadata key #{index}")
        key = p.text(start, n, MAX_KEY_BYTES)
        if n > MAX_KEY_BYTES and _count(reported, rules.STRING_LENGTH):
            yield rules.STRING_LENGTH.at(
                p.where(key_at, key[:64]),
                f"metadata key #{index} is {n} bytes long; keys are short dotted names",
                evidence=f"length {n}",
                severity=Severity.MEDIUM,
            )
        digest = p.digest(start, n)
        if digest in seen and _count(reported, rules.DUPLICATE_NAME):
            yield rules.DUPLICATE_NAME.at(
                p.where(key_at, key), f"metadata key {key!r} appears more than once"
            )
        seen.add(digest)
        value_type = p.u32("a value type", key)
        value_at = p.pos
        if value_type in VALUE_SIZES:
            p.need(VALUE_SIZES[value_type], "a metadata value", key)
            if key == ALIGNMENT_KEY:
                yield from _check_alignment(p, state, value_type, value_at)
            p.pos += VALUE_SIZES[value_type]
        elif value_type == VALUE_STRING:
            v_start, v_len = p.string_span(f"the value of {key}", key)
            if key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + "."):
                yield from _scan_template(p, key, value_at, v_start, v_len)
            elif key == ALIGNMENT_KEY:
                yield from _check_alignment(p, state, value_type, value_at)
        elif value_type == VALUE_ARRAY:
            if key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + ".") or key == ALIGNMENT_KEY:
                yield rules.MALFORMED.at(p.where(value_at, key), f"{key} holds an array, not a single value")
                if key == ALIGNMENT_KEY:
                    state.alignment_valid = False
            _skip_array(p, key, depth=1)
        else:
            raise p.stop(
                rules.MALFORMED, f"unknown metadata value type {value_type}", key, offset=value_at - 4
            )


def _check_alignment(p: _Parser, state: _ScanState, value_type: int, at: int) -> Iterator[ScanEvent]:
    if value_type != VALUE_UINT32:
        state.alignment_valid = False
        yield rules.BAD_ALIGNMENT.at(
            p.where(at, ALIGNMENT_KEY), f"{ALIGNMENT_KEY} has value type {value_type}, not uint32"
        )
        return
    value: int = p._u32.unpack_from(p.data, at)[0]
    if value == 0 or value & (value - 1):
        state.alignment_valid = False
        yield rules.BAD_ALIGNMENT.at(
            p.where(at, ALIGNMENT_KEY), f"{ALIGNMENT_KEY} is {value}, not a power of two", evidence=str(value)
        )
        return
    state.alignment = value


def _skip_array(p: _Parser, key: str, depth: int) -> None:
    """Step over an array value, checking its declared length against the bytes left before looping."""
    at = p.pos
    element_type = p.u32("an array element type", key)
    count = p.length("an array length", key)
    if element_type in VALUE_SIZES:
        total = count * VALUE_SIZES[element_type]
        if total > p.remaining:
            raise _absurd_array(p, key, count, at, f"{total} bytes of elements")
        p.pos += total
        return
    if element_type == VALUE_STRING:
        if count * p.len_size > p.remaining:
            raise _absurd_array(p, key, count, at, "its strings")
        for index in range(count):
            p.tick()
            p.string_span(f"{key}[{index}]", key)
        return
    if element_type == VALUE_ARRAY:
        if depth >= MAX_ARRAY_DEPTH:
            raise p.stop(rules.MALFORMED, f"arrays nested more than {MAX_ARRAY_DEPTH} deep", key, offset=at)
        if count * (4 + p.len_size) > p.remaining:
            raise _absurd_array(p, key, count, at, "its nested arrays")
        for _ in range(count):
            p.tick()
            _skip_array(p, key, depth + 1)
        return
    raise p.stop(rules.MALFORMED, f"unknown array element type {element_type}", key, offset=at)


def _absurd_array(p: _Parser, key: str, count: int, at: int, what: str) -> _Stop:
    return p.stop(
        rules.ABSURD_COUNT,
        f"array of {count} elements declared; the {p.remaining} bytes left cannot hold {what}",
        key,
        offset=at,
        evidence=f"length {count}",
    )


def _scan_template(p: _Parser, key: str, at: int, start: int, n: int) -> Iterator[ScanEvent]:
    location = p.where(at, key)
    max_bytes = p.ctx.limits.max_template_bytes
    if n > max_bytes:
        yield ScanIssue(
            "limit",
            f"{key} is {n} bytes long; longer templates are not analysed (max_template_bytes {max_bytes})",
            location,
        )
        return
    raw = bytes(p.data[start : start + n])
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield rules.MALFORMED.at(location, f"{key} is not valid UTF-8 ({exc.reason})", severity=Severity.LOW)
        source = raw.decode("utf-8", "replace")
    yield from judge_template(source, location, what=key, max_chars=max_bytes)


def _scan_tensor_infos(p: _Parser, state: _ScanState) -> Iterator[ScanEvent]:
    tensors: list[TensorInfo] = []
    seen: set[bytes] = set()
    reported: dict[str, int] = {}
    for index in range(state.tensor_count):
        p.tick()
        info_at = p.pos
        start, n = p.string_span(f"the name of tensor #{index}", f"tensor #{index}")
        tensor = p.text(start, n, GGML_MAX_NAME * 2)
        if n >= GGML_MAX_NAME and _count(reported, rules.MALFORMED):
            yield rules.MALFORMED.at(
                p.where(info_at, tensor),
                f"tensor name of {n} bytes; llama.cpp refuses names of {GGML_MAX_NAME} bytes or more",
                severity=Severity.LOW,
            )
        digest = p.digest(start, n)
        if digest in seen and _count(reported, rules.DUPLICATE_NAME):
            yield rules.DUPLICATE_NAME.at(
                p.where(info_at, tensor), f"tensor {tensor!r} appears more than once"
            )
        seen.add(digest)
        dims_at = p.pos
        n_dims = p.u32("a dimension count", tensor)
        if n_dims > GGML_MAX_DIMS:
            raise p.stop(
                rules.TOO_MANY_DIMS,
                f"tensor {tensor!r} declares {n_dims} dimensions; ggml supports at most {GGML_MAX_DIMS}",
                tensor,
                offset=dims_at,
                evidence=f"n_dims={n_dims}",
            )
        dims = tuple(p.length("a dimension", tensor) for _ in range(n_dims))
        type_at = p.pos
        ggml_type = p.u32("a tensor type", tensor)
        data_offset = p.u64("a tensor offset", tensor)
        nbytes: int | None = None
        if ggml_type not in GGML_TYPES:
            if _count(reported, rules.UNKNOWN_TENSOR_TYPE):
                yield rules.UNKNOWN_TENSOR_TYPE.at(
                    p.where(type_at, tensor),
                    f"tensor {tensor!r} has ggml type {ggml_type}, which ggml does not define",
                    evidence=f"type={ggml_type}",
                )
        else:
            problem, nbytes = _tensor_size(dims, ggml_type)
            if problem is not None and _count(reported, rules.DIMENSION_OVERFLOW):
                yield rules.DIMENSION_OVERFLOW.at(
                    p.where(dims_at, tensor),
                    f"tensor {tensor!r}: {problem}",
                    evidence=f"dims={list(dims)} type={GGML_TYPES[ggml_type][0]}",
                )
        tensors.append(TensorInfo(tensor, info_at, data_offset, nbytes, ggml_type))
    state.tensors = tensors


def _deep_weights(p: _Parser, tensors: list[TensorInfo], data_start: int) -> Iterator[ScanEvent]:
    """`--deep`: the low bits of every float tensor that lies inside the file (ggml float types carry
    the file's byte order; a big-endian file is not analysed and says so)."""
    floats = [
        weights.FloatTensor(t.name, GGML_TYPES[t.ggml_type][0], data_start + t.data_offset, t.nbytes)
        for t in tensors
        if t.ggml_type in GGML_TYPES
        and GGML_TYPES[t.ggml_type][0] in weights.FLOAT_WIDTHS
        and t.nbytes
        and data_start + t.data_offset + t.nbytes <= p.size
    ]
    if floats and p.order != "<":
        yield ScanIssue("deep-unsupported", "--deep reads little-endian weights only", p.where(data_start))
        return
    yield from weights.scan_tensors(p.blob, p.ctx, floats)


def _tensor_size(dims: tuple[int, ...], ggml_type: int) -> tuple[str | None, int | None]:
    """The tensor's byte size the way ggml computes it, or why it cannot be computed safely."""
    _, block, block_bytes = GGML_TYPES[ggml_type]
    if any(d > INT64_MAX for d in dims):
        return "a dimension is negative when read as ggml's int64", None
    elements = 1
    for d in dims:
        elements *= d
    if elements > INT64_MAX:
        return f"{elements} elements overflow a signed 64-bit count", None
    first = dims[0] if dims else 1
    if first % block:
        return f"first dimension {first} is not a multiple of the block size {block}", None
    rows = elements // first if first else 0
    nbytes = (first // block) * block_bytes * rows
    if nbytes > INT64_MAX:
        return f"{nbytes} bytes overflow a signed 64-bit size", None
    return None, nbytes


def _count(reported: dict[str, int], rule: Rule) -> bool:
    """Whether another finding of `rule` may be reported for this file (hostile files repeat a flaw)."""
    reported[rule.id] = reported.get(rule.id, 0) + 1
    return reported[rule.id] <= MAX_FINDINGS_PER_RULE


def _align(offset: int, alignment: int) -> int:
    return offset + (-offset % alignment)


def _scan_layout(p: _Parser, state: _ScanState) -> Iterator[ScanEvent]:
    """Tensor data offsets: aligned, inside the file, not overlapping, nothing hidden between or after."""
    tensors = state.tensors or []
    alignment = state.alignment
    data_start = _align(p.pos, alignment)
    reported: dict[str, int] = {}
    sized: list[tuple[int, int, str]] = []
    layout_known = True
    for t in tensors:
        if state.alignment_valid and t.data_offset % alignment and _count(reported, rules.MISALIGNED_TENSOR):
            yield rules.MISALIGNED_TENSOR.at(
                p.where(t.info_offset, t.name),
                f"tensor {t.name!r} data offset {t.data_offset} is not a multiple of {alignment}",
                evidence=f"offset={t.data_offset} alignment={alignment}",
            )
        if t.nbytes is None:
            layout_known = False
            continue
        start = data_start + t.data_offset
        end = start + t.nbytes
        if end > p.size:
            layout_known = False
            if _count(reported, rules.TENSOR_OUT_OF_RANGE):
                yield rules.TENSOR_OUT_OF_RANGE.at(
                    p.where(t.info_offset, t.name),
                    f"tensor {t.name!r} occupies bytes {start}..{end} but the file has {p.size}",
                    evidence=f"offset={t.data_offset} nbytes={t.nbytes}",
                )
            continue
        if t.nbytes:
            sized.append((start, end, t.name))
    sized.sort()
    covered_end = data_start
    owner = ""
    for start, end, tensor in sized:
        if start < covered_end and owner:
            if _count(reported, rules.OVERLAPPING_TENSORS):
                yield rules.OVERLAPPING_TENSORS.at(
                    p.where(start, tensor),
                    f"tensor {tensor!r} (bytes {start}..{end}) overlaps {owner!r} (ending at {covered_end})",
                    evidence=f"{tensor} ∩ {owner}",
                )
        elif start - covered_end >= alignment and _count(reported, rules.DATA_GAP):
            # More unused bytes than any alignment padding.
            gap_at = _align(covered_end, alignment)
            yield rules.DATA_GAP.at(
                p.where(gap_at, tensor),
                f"{start - gap_at} bytes before tensor {tensor!r} belong to no tensor",
                evidence=repr(p.blob.read_at(gap_at, 32)),
            )
        if end > covered_end:
            covered_end, owner = end, tensor
    if p.ctx.deep:
        yield from _deep_weights(p, tensors, data_start)
    if not layout_known:
        return
    data_end = _align(covered_end, alignment) if sized else data_start
    if p.size > data_end:
        trailing = p.size - data_end
        yield rules.APPENDED_DATA.at(
            p.where(data_end, "(data after tensors)"),
            f"{trailing} bytes follow the end of the tensor data; GGUF readers ignore them",
            evidence=repr(p.blob.read_at(data_end, 32)),
        )
        yield BufferBlob(p.data[data_end:], p.blob.child_chain("(data after tensors)"))
