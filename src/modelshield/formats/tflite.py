"""TensorFlow Lite models: a bounded FlatBuffer walk over operator codes, operators, tensors and buffers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from modelshield.analysis.flatbuffer import FlatBuffer, FlatBufferError, Table
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, Location, ScanIssue, Severity
from modelshield.engine.rules import Rule
from modelshield.formats.base import ScanEvent
from modelshield.formats.signatures import TFLITE_IDENTIFIER
from modelshield.formats.tensorflow import DEBUG_OPS, FILE_OPS, NETWORK_OPS, ORDINARY_OPS, PYTHON_OPS
from modelshield.rules import tflite as rules

name = "tflite"
version = "1"

IDENTIFIER = TFLITE_IDENTIFIER
BUILTIN_CUSTOM = 32
FLEX_PREFIX = "Flex"
MAX_FINDINGS_PER_RULE = 32
TIME_CHECK_EVERY = 4096
# Custom ops the TensorFlow Lite runtime itself ships (registered by its op resolvers).
SHIPPED_CUSTOM_OPS = frozenset(
    {
        "TFLite_Detection_PostProcess", "AudioSpectrogram", "Mfcc", "Atan2", "Rfft2d", "Sign",
        "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Convolution2DTransposeBias", "DensifyOp",
    }
)  # fmt: skip

# Slots of the TensorFlow Lite schema (schema.fbs) this handler reads.
MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, MODEL_BUFFERS = 1, 2, 4
CODE_DEPRECATED_BUILTIN, CODE_CUSTOM, CODE_BUILTIN = 0, 1, 3
SUBGRAPH_TENSORS, SUBGRAPH_OPERATORS = 0, 3
TENSOR_BUFFER = 2
OPERATOR_OPCODE_INDEX, OPERATOR_CUSTOM_OPTIONS = 0, 5
OPERATOR_LARGE_OPTIONS_OFFSET, OPERATOR_LARGE_OPTIONS_SIZE = 9, 10
"""The >2 GB layout: an operator's custom options lie after the FlatBuffer, at this offset of the file."""
MAX_OPTIONS_READ = 1 << 20
# PrintV2 writes into the file named by its output_stream attribute when it starts with this; the Flex
# delegate keeps the op's NodeDef verbatim (protobuf strings are raw bytes) in the custom options.
PRINT_TO_FILE = b"file://"
MAX_SHOWN_PATH = 200
BUFFER_OFFSET, BUFFER_SIZE = 1, 2


def sniff(blob: Blob) -> bool:
    head = blob.head(8)
    if len(head) < 8 or head[4:8] != IDENTIFIER:
        return False
    root = int.from_bytes(head[:4], "little")
    return 8 <= root <= blob.size - 4


@dataclass
class _Walk:
    blob: Blob
    ctx: ScanContext
    fb: FlatBuffer
    events: list[ScanEvent] = field(default_factory=list)
    reported: dict[str, int] = field(default_factory=dict)
    seen_ops: set[str] = field(default_factory=set)
    flex_print_codes: set[int] = field(default_factory=set)

    def report(self, rule: Rule, at: int, detail: str, message: str, **kw: object) -> None:
        self.reported[rule.id] = self.reported.get(rule.id, 0) + 1
        if self.reported[rule.id] <= MAX_FINDINGS_PER_RULE:
            where = Location(self.blob.chain, offset=at, detail=detail)
            self.events.append(rule.at(where, message, **kw))  # type: ignore[arg-type]


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    walk = _Walk(blob, ctx, FlatBuffer(blob.view()))
    try:
        model = walk.fb.root()
        op_count = _operator_codes(walk, model)
        buffer_count = _buffers(walk, model)
        _subgraphs(walk, model, op_count, buffer_count)
    except FlatBufferError as exc:
        finding: Finding = rules.MALFORMED.at(
            Location(blob.chain, offset=exc.offset), f"the FlatBuffer is malformed: {exc}"
        )
        walk.events.append(finding)
        walk.events.append(
            ScanIssue("partial", "the TensorFlow Lite model could not be read to its end", finding.location)
        )
    yield from walk.events


def _operator_codes(walk: _Walk, model: Table) -> int:
    codes = model.vector(MODEL_OPERATOR_CODES, 4, "operator_codes")
    if codes is None:
        return 0
    policy = walk.ctx.policy
    for index in range(codes.count):
        code = codes.table(index)
        builtin = max(
            code.scalar(CODE_DEPRECATED_BUILTIN, "b"), code.scalar(CODE_BUILTIN, "i")
        )  # the interpreter reads the larger of the two (the byte field saturates at 127)
        if builtin != BUILTIN_CUSTOM:
            continue
        custom = code.string(CODE_CUSTOM, "custom_code", limit=256) or ""
        if custom == f"{FLEX_PREFIX}PrintV2":
            walk.flex_print_codes.add(index)
        if custom in walk.seen_ops:
            continue
        walk.seen_ops.add(custom)
        detail = f"operator_codes[{index}]"
        if custom.startswith(FLEX_PREFIX) and len(custom) > len(FLEX_PREFIX):
            op = custom[len(FLEX_PREFIX) :]
            severity, why = _judge_flex(op, policy.allowed_tensorflow_ops, policy.denied_tensorflow_ops)
            walk.report(
                rules.FLEX_OP,
                code.at,
                detail,
                f"the model runs TensorFlow op {op!r} through the Flex delegate; the op {why}",
                evidence=custom,
                severity=severity,
            )
        else:
            shipped = custom in SHIPPED_CUSTOM_OPS
            walk.report(
                rules.CUSTOM_OP,
                code.at,
                detail,
                f"the model needs custom op {custom!r}"
                + (
                    ", which TensorFlow Lite ships"
                    if shipped
                    else ", run by whatever kernel the loader registers"
                ),
                evidence=custom,
                severity=Severity.LOW if shipped else None,
            )
    return codes.count


def _judge_flex(op: str, allowed: frozenset[str], denied: frozenset[str]) -> tuple[Severity, str]:
    for table in (PYTHON_OPS, FILE_OPS, NETWORK_OPS, DEBUG_OPS):
        if op in table:
            return Severity.HIGH, table[op]
    if op in denied:
        return Severity.HIGH, "is denied by the policy ([tensorflow_ops] deny)"
    if op in ORDINARY_OPS or op in allowed:
        return Severity.LOW, "is an ordinary TensorFlow op"
    return Severity.MEDIUM, "is not an ordinary TensorFlow op"


def _buffers(walk: _Walk, model: Table) -> int:
    buffers = model.vector(MODEL_BUFFERS, 4, "buffers")
    if buffers is None:
        return 0
    ranges: list[tuple[int, int, int]] = []
    size = walk.blob.size
    for index in range(buffers.count):
        if index % TIME_CHECK_EVERY == 0:
            walk.ctx.check_time()
        buffer = buffers.table(index)
        offset = buffer.scalar(BUFFER_OFFSET, "Q")
        length = buffer.scalar(BUFFER_SIZE, "Q")
        if offset <= 1:  # 0 and 1 mean "no external data" in the converter's layout
            continue
        if offset + length > size:
            walk.report(
                rules.BUFFER_LAYOUT,
                buffer.at,
                f"buffers[{index}]",
                f"buffer {index} spans bytes {offset}..{offset + length} but the file has {size}",
                evidence=f"offset={offset} size={length}",
            )
            continue
        if length:
            ranges.append((offset, offset + length, index))
    ranges.sort()
    end, owner = 0, -1
    for start, stop, index in ranges:
        if start < end:
            walk.report(
                rules.BUFFER_LAYOUT,
                start,
                f"buffers[{index}]",
                f"buffer {index} (bytes {start}..{stop}) overlaps buffer {owner}",
                evidence=f"buffers[{index}] ∩ buffers[{owner}]",
            )
        if stop > end:
            end, owner = stop, index
    return buffers.count


def _subgraphs(walk: _Walk, model: Table, op_count: int, buffer_count: int) -> None:
    subgraphs = model.vector(MODEL_SUBGRAPHS, 4, "subgraphs")
    if subgraphs is None:
        return
    steps = 0
    for s in range(subgraphs.count):
        graph = subgraphs.table(s)
        operators = graph.vector(SUBGRAPH_OPERATORS, 4, "operators")
        for o in range(operators.count if operators else 0):
            steps += 1
            if steps % TIME_CHECK_EVERY == 0:
                walk.ctx.check_time()
            assert operators is not None
            operator = operators.table(o)
            index = operator.scalar(OPERATOR_OPCODE_INDEX, "I")
            where = f"subgraphs[{s}].operators[{o}]"
            large = _large_options(walk, operator, where)
            if index in walk.flex_print_codes:
                options = operator.vector(OPERATOR_CUSTOM_OPTIONS, 1, "custom_options")
                if options is not None:
                    data = bytes(walk.fb.data[options.start : options.start + options.count])
                    _check_print_to_file(walk, data, options.start, where)
                if large is not None:
                    _check_print_to_file(walk, walk.blob.read_at(large[0], large[1]), large[0], where)
            if index >= op_count:
                walk.report(
                    rules.MALFORMED,
                    operator.at,
                    f"subgraphs[{s}].operators[{o}]",
                    f"operator {o} of subgraph {s} uses opcode_index {index}; the model has {op_count} codes",
                    evidence=f"opcode_index={index}",
                )
        tensors = graph.vector(SUBGRAPH_TENSORS, 4, "tensors")
        for t in range(tensors.count if tensors else 0):
            steps += 1
            if steps % TIME_CHECK_EVERY == 0:
                walk.ctx.check_time()
            assert tensors is not None
            tensor = tensors.table(t)
            buffer = tensor.scalar(TENSOR_BUFFER, "I")
            if buffer >= max(buffer_count, 1):
                walk.report(
                    rules.MALFORMED,
                    tensor.at,
                    f"subgraphs[{s}].tensors[{t}]",
                    f"tensor {t} of subgraph {s} uses buffer {buffer}; the model has {buffer_count} buffers",
                    evidence=f"buffer={buffer}",
                )


def _large_options(walk: _Walk, operator: Table, detail: str) -> tuple[int, int] | None:
    """(offset, bytes to read) of an operator's custom options in the large layout, when they lie in the
    file; options said to lie past its end are reported (the interpreter would read outside the model)."""
    offset = operator.scalar(OPERATOR_LARGE_OPTIONS_OFFSET, "Q")
    length = operator.scalar(OPERATOR_LARGE_OPTIONS_SIZE, "Q")
    if offset <= 1:  # 0 and 1 mean "no external data" in the converter's layout
        return None
    size = walk.blob.size
    if offset + length > size:
        walk.report(
            rules.BUFFER_LAYOUT,
            operator.at,
            detail,
            f"the operator's custom options span bytes {offset}..{offset + length} but the file has {size}",
            evidence=f"large_custom_options_offset={offset} large_custom_options_size={length}",
        )
        return None
    return offset, min(length, MAX_OPTIONS_READ)


def _check_print_to_file(walk: _Walk, data: bytes, start: int, detail: str) -> None:
    at = data.find(PRINT_TO_FILE)
    if at < 0:
        return
    target = bytes(data[at : at + min(_string_length(data, at), MAX_SHOWN_PATH)]).decode("utf-8", "replace")
    walk.report(
        rules.FLEX_OP,
        start + at,
        detail,
        f"the model runs TensorFlow op 'PrintV2' through the Flex delegate with output_stream {target!r}: "
        "it writes tensors into that file on the host",
        evidence=target,
        severity=Severity.HIGH,
    )


def _string_length(data: memoryview | bytes, at: int) -> int:
    """Length of the protobuf string starting at `at`, from the varint just before it (one or two
    bytes: a longer path is cut anyway); without one, the run of printable bytes."""
    if at >= 2 and data[at - 2] & 0x80 and data[at - 1] < 0x80:
        return (data[at - 2] & 0x7F) | (data[at - 1] << 7)
    if at >= 1 and data[at - 1] < 0x80:
        return data[at - 1]
    end = at
    while end < len(data) and end - at < MAX_SHOWN_PATH and 0x20 < data[end] < 0x7F:
        end += 1
    return end - at
