"""ONNX models: a bounded walk of the ModelProto (graphs, subgraphs, functions, tensors) without
reading tensor data: operators outside the standard sets, external data paths, tensor integrity. With
`--deep`, float tensors inline and in external data files inside the model's folder are analysed."""

from __future__ import annotations

import ntpath
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from modelshield.analysis import weights
from modelshield.analysis.protobuf import LEN, VARINT, ProtobufError, WireField, WireReader, signed64
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, Location, ScanIssue, Severity
from modelshield.engine.rules import Rule
from modelshield.formats.base import ScanEvent
from modelshield.formats.signatures import ONNX_MODEL_FIELDS, onnx_model_start
from modelshield.rules import onnx as rules

name = "onnx"
version = "1"

INT64_MAX = (1 << 63) - 1
MAX_DIMS = 64
MAX_NAME = 512
MAX_FINDINGS_PER_RULE = 32
MAX_SNIFF_FIELDS = 4096
MAX_UNKNOWN_FIELDS = 8

# Operators of the standard domains, every version ONNX has defined (generated from onnx.defs, plus
# the experimental operators removed in ONNX 1.5 that old exports still carry).
_AI_ONNX = """
Abs Acos Acosh Add AffineGrid And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
BatchNormalization Bernoulli BitCast BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor
BlackmanWindow Cast CastLike CausalConvWithState Ceil Celu CenterCropPad Clip Col2Im Compress Concat
ConcatFromSequence Constant ConstantOfShape Conv ConvInteger ConvTranspose Cos Cosh CumProd CumSum
DFT DeformConv DepthToSpace DequantizeLinear Det Div Dropout DynamicQuantizeLinear Einsum Elu Equal
Erf Exp Expand EyeLike Flatten Floor GRU Gather GatherElements GatherND Gelu Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization HammingWindow
HannWindow HardSigmoid HardSwish Hardmax Identity If ImageDecoder InstanceNormalization IsInf IsNaN
LRN LSTM LayerNormalization LeakyRelu Less LessOrEqual LinearAttention Log LogSoftmax Loop
LpNormalization LpPool MatMul MatMulInteger Max MaxPool MaxRoiPool MaxUnpool Mean
MeanVarianceNormalization MelWeightMatrix Min Mish Mod Mul Multinomial Neg NegativeLogLikelihoodLoss
NonMaxSuppression NonZero Not OneHot Optional OptionalGetElement OptionalHasElement Or PRelu Pad Pow
QLinearConv QLinearMatMul QuantizeLinear RMSNormalization RNN RandomNormal RandomNormalLike
RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare RegexFullMatch Relu Reshape
Resize ReverseSequence RoiAlign RotaryEmbedding Round STFT Scan Scatter ScatterElements ScatterND
Selu SequenceAt SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength
SequenceMap Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax SoftmaxCrossEntropyLoss Softplus
Softsign SpaceToDepth Split SplitToSequence Sqrt Squeeze StringConcat StringNormalizer StringSplit
Sub Sum SwiGLU Swish Tan Tanh TensorScatter TfIdfVectorizer ThresholdedRelu Tile TopK Transpose
Trilu Unique Unsqueeze Upsample Where Xor
ATen Affine ConstantFill Crop DynamicSlice GRUUnit GivenTensorFill ImageScaler ParametricSoftplus
Scale ScaledTanh
"""
_AI_ONNX_ML = """
ArrayFeatureExtractor Binarizer CastMap CategoryMapper DictVectorizer FeatureVectorizer Imputer
LabelEncoder LinearClassifier LinearRegressor Normalizer OneHotEncoder SVMClassifier SVMRegressor
Scaler TreeEnsemble TreeEnsembleClassifier TreeEnsembleRegressor ZipMap
"""
STANDARD_OPS: dict[str, frozenset[str]] = {
    "": frozenset(_AI_ONNX.split()),
    "ai.onnx.ml": frozenset(_AI_ONNX_ML.split()),
    "ai.onnx.preview": frozenset({"FlexAttention"}),
    "ai.onnx.preview.training": frozenset({"Adagrad", "Adam", "Gradient", "Momentum"}),
    "ai.onnx.training": frozenset({"Adagrad", "Adam", "Gradient", "Momentum"}),
}
CONTRIB_DOMAINS = frozenset(
    {"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental", "com.ms.internal.nhwc"}
)

# TensorProto.DataType -> bits per element (STRING, UNDEFINED and unknown types have no fixed size).
DTYPE_BITS: dict[int, int] = {
    1: 32, 2: 8, 3: 8, 4: 16, 5: 16, 6: 32, 7: 64, 9: 8, 10: 16, 11: 64, 12: 32, 13: 64, 14: 64,
    15: 128, 16: 16, 17: 8, 18: 8, 19: 8, 20: 8, 21: 4, 22: 4, 23: 4, 24: 8, 25: 2, 26: 2, 27: 6, 28: 6,
}  # fmt: skip
EXTERNAL = 1
FLOAT_DTYPES = {1: "F32", 10: "F16", 16: "BF16"}
"""ONNX TensorProto data types that `--deep` analyses, in the weight analysis' spelling."""

# Field numbers of onnx.proto.
MODEL_IR_VERSION, MODEL_GRAPH, MODEL_OPSET, MODEL_TRAINING, MODEL_FUNCTIONS = 1, 7, 8, 20, 25
_MODEL_FIELDS = ONNX_MODEL_FIELDS
_GRAPH_FIELDS = {1: LEN, 2: LEN, 5: LEN, 10: LEN, 11: LEN, 12: LEN, 13: LEN, 14: LEN, 15: LEN, 16: LEN}
_MODEL_TEXT = frozenset({2, 3, 4, 6})
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def sniff(blob: Blob) -> bool:
    """A ModelProto: ModelProto fields of the right kinds only, an ir_version, UTF-8 text fields and a
    graph whose first field is a GraphProto field. Other protobufs and random bytes fail one of these;
    a model truncated or damaged after its ir_version is still claimed (and reported malformed)."""
    if blob.size < 4 or not onnx_model_start(blob):
        return False
    reader = WireReader(blob, max_fields=MAX_SNIFF_FIELDS * 4)
    seen: dict[int, WireField] = {}
    unknown = 0
    try:
        for count, f in enumerate(reader.fields(0, blob.size)):
            if count >= MAX_SNIFF_FIELDS:
                break  # many functions or metadata entries: judge by what came first
            expected = _MODEL_FIELDS.get(f.number)
            if expected is None:
                # Fields this version does not know are skipped by protobuf loaders, so a few
                # must not hide a model from the scan; many are not a ModelProto.
                unknown += 1
                if unknown > MAX_UNKNOWN_FIELDS:
                    return False
                continue
            if expected != f.wire_type:
                return False
            if f.number in _MODEL_TEXT and not _is_text(reader.raw(f, 4096), f.length > 4096):
                return False
            seen.setdefault(f.number, f)
        if not _plausible_version(seen) or MODEL_GRAPH not in seen:
            return False
        return _graph_ok(reader, seen[MODEL_GRAPH])
    except ProtobufError as exc:
        if not _plausible_version(seen):
            return False
        if MODEL_GRAPH in seen:
            return _graph_ok(reader, seen[MODEL_GRAPH])
        return blob.read_at(exc.offset, 1) == bytes([(MODEL_GRAPH << 3) | LEN]) and _graph_starts_well(
            reader, exc.offset + 1
        )


def _graph_starts_well(reader: WireReader, at: int) -> bool:
    """Whether a truncated graph field begins like a GraphProto: a known field whose payload fits."""
    try:
        _, start = reader.varint(at, reader.size)
        key, pos = reader.varint(start, reader.size)
        if _GRAPH_FIELDS.get(key >> 3) != key & 7:
            return False
        length, pos = reader.varint(pos, reader.size)
    except ProtobufError:
        return False
    return pos + length <= reader.size


def _graph_ok(reader: WireReader, graph: WireField) -> bool:
    """Whether the graph field's payload begins with a GraphProto field of the right kind."""
    if graph.length == 0:
        return True
    try:
        first = next(reader.fields(graph.value, graph.length, 1))
    except ProtobufError:
        return False
    return _GRAPH_FIELDS.get(first.number) == first.wire_type


def _plausible_version(seen: dict[int, WireField]) -> bool:
    return MODEL_IR_VERSION in seen and 1 <= seen[MODEL_IR_VERSION].value <= 64


def _is_text(raw: bytes, cut: bool) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return cut and exc.start >= len(raw) - 3  # a character split by the cut
    return True


@dataclass
class _Op:
    """One distinct operator finding, reported once with the first place it was seen."""

    rule: Rule
    location: Location
    message: str
    evidence: str
    count: int = 1


@dataclass
class _Walk:
    """State of one model's walk: findings so far, budgets, what functions the model defines."""

    blob: Blob
    reader: WireReader
    functions: set[tuple[str, str]] = field(default_factory=set)
    ops: dict[tuple[str, str, str], _Op] = field(default_factory=dict)
    external: dict[str, tuple[Location, int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    reported: dict[str, int] = field(default_factory=dict)
    deep: bool = False
    floats: list[weights.FloatTensor] = field(default_factory=list)
    """With `--deep`: the float tensors stored inline (raw_data), for the weight analysis."""
    external_floats: list[tuple[str, weights.FloatTensor]] = field(default_factory=list)
    """With `--deep`: (location, tensor) of float tensors stored in a side file inside the model's folder,
    their offset counted in that file."""

    def where(self, offset: int, detail: str) -> Location:
        return Location(self.blob.chain, offset=offset, detail=detail)

    def report(self, rule: Rule, location: Location, message: str, **kwargs: object) -> None:
        self.reported[rule.id] = self.reported.get(rule.id, 0) + 1
        if self.reported[rule.id] <= MAX_FINDINGS_PER_RULE:
            self.findings.append(rule.at(location, message, **kwargs))  # type: ignore[arg-type]


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    reader = WireReader(blob, max_depth=ctx.limits.max_protobuf_depth, tick=ctx.check_time)
    walk = _Walk(blob, reader, deep=ctx.deep)
    issue: ScanIssue | None = None
    try:
        _walk_model(walk)
    except ProtobufError as exc:
        walk.findings.append(
            rules.MALFORMED.at(
                Location(blob.chain, offset=exc.offset), f"the ONNX protobuf cannot be read: {exc.reason}"
            )
        )
        issue = ScanIssue(
            "partial",
            "the ONNX model could not be read to its end; the rest of it was not analysed",
            Location(blob.chain, offset=exc.offset),
        )
    yield from walk.findings
    for op in walk.ops.values():
        evidence = op.evidence + (f" ({op.count} nodes)" if op.count > 1 else "")
        yield op.rule.at(op.location, op.message, evidence=evidence)
    for location_text, (location, count) in walk.external.items():
        yield rules.EXTERNAL_DATA.at(
            location,
            f"{count} tensor(s) are read from the external file {location_text!r} when the model is loaded",
            evidence=location_text,
        )
    if walk.floats:
        yield from weights.scan_tensors(blob, ctx, walk.floats)
    if walk.external_floats:
        yield from _deep_external(blob, ctx, walk.external_floats)
    if issue is not None:
        yield issue


def _walk_model(walk: _Walk) -> None:
    r = walk.reader
    graphs: list[tuple[WireField, int, str]] = []
    functions: list[WireField] = []
    for f in r.fields(0, r.size):
        _expect(f, _MODEL_FIELDS.get(f.number, f.wire_type))
        if f.number == MODEL_GRAPH:
            graphs.append((f, 1, "graph"))
        elif f.number == MODEL_FUNCTIONS:
            functions.append(f)
        elif f.number == MODEL_TRAINING:
            graphs.extend(
                (t, 2, "training graph") for t in r.message(f, 1) if t.number in (1, 2) and t.wire_type == LEN
            )
    bodies: list[tuple[WireField, str]] = []
    for f in functions:
        fname, fdomain = "", ""
        for g in r.message(f, 1):
            if g.number == 1 and g.wire_type == LEN:
                fname = r.text(g, MAX_NAME)
            elif g.number == 10 and g.wire_type == LEN:
                fdomain = r.text(g, MAX_NAME)
        walk.functions.add((_domain(fdomain), fname))
        bodies.append((f, f"function {fdomain}:{fname}"))
    for f, label in bodies:
        for g in r.message(f, 1):
            if g.number == 7 and g.wire_type == LEN:
                graphs.extend(_walk_node(walk, g, 2, label))
    while graphs:
        graph, depth, label = graphs.pop()
        graphs.extend(_walk_graph(walk, graph, depth, label))


def _expect(f: WireField, wire_type: int) -> None:
    if f.wire_type != wire_type:
        raise ProtobufError(f"field {f.number} has wire type {f.wire_type}, expected {wire_type}", f.offset)


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def _walk_graph(walk: _Walk, graph: WireField, depth: int, label: str) -> list[tuple[WireField, int, str]]:
    """Check a graph's nodes and initializers; returns the subgraphs found in node attributes."""
    r = walk.reader
    subgraphs: list[tuple[WireField, int, str]] = []
    for f in r.message(graph, depth):
        if f.number == 1:
            _expect(f, LEN)
            subgraphs.extend(_walk_node(walk, f, depth + 1, label))
        elif f.number == 5:
            _expect(f, LEN)
            _check_tensor(walk, f, depth + 1, f"initializer of {label}")
        elif f.number == 15:
            _expect(f, LEN)
            for s in r.message(f, depth + 1):
                if s.number in (1, 2) and s.wire_type == LEN:
                    _check_tensor(walk, s, depth + 2, f"sparse initializer of {label}")
    return subgraphs


def _walk_node(walk: _Walk, node: WireField, depth: int, label: str) -> list[tuple[WireField, int, str]]:
    r = walk.reader
    node_name, op_type, domain = "", "", ""
    attributes: list[WireField] = []
    for f in r.message(node, depth):
        if f.number == 3:
            _expect(f, LEN)
            node_name = r.text(f, MAX_NAME)
        elif f.number == 4:
            _expect(f, LEN)
            op_type = r.text(f, MAX_NAME)
        elif f.number == 7:
            _expect(f, LEN)
            domain = r.text(f, MAX_NAME)
        elif f.number == 5:
            _expect(f, LEN)
            attributes.append(f)
    detail = node_name or f"{op_type} node at byte {node.offset}"
    _judge_op(walk, walk.where(node.offset, detail), op_type, domain, label)
    subgraphs: list[tuple[WireField, int, str]] = []
    inner = f"{label} › node {detail!r}"  # subgraphs are named by the path of nodes that hold them
    for a in attributes:
        for f in r.message(a, depth + 1):
            if f.number in (6, 11) and f.wire_type == LEN:  # g, graphs
                subgraphs.append((f, depth + 2, inner))
            elif f.number in (5, 10) and f.wire_type == LEN:  # t, tensors
                _check_tensor(walk, f, depth + 2, f"attribute tensor of {inner}")
    return subgraphs


def _judge_op(walk: _Walk, location: Location, op_type: str, raw_domain: str, label: str) -> None:
    domain = _domain(raw_domain)
    qualified = f"{raw_domain}:{op_type}" if raw_domain else op_type
    if (domain, op_type) in walk.functions:
        return
    if domain in STANDARD_OPS:
        if op_type in STANDARD_OPS[domain]:
            return
        rule = rules.UNKNOWN_OP
        message = (
            f"operator {qualified!r} ({label}) is not defined by ONNX for domain {raw_domain or 'ai.onnx'!r}"
        )
    elif domain in CONTRIB_DOMAINS:
        rule = rules.CONTRIB_OP
        message = f"operator {qualified!r} ({label}) is an onnxruntime contrib operator"
    else:
        rule = rules.CUSTOM_DOMAIN
        message = (
            f"operator {qualified!r} ({label}) is from the custom domain {raw_domain!r}, "
            "implemented by code outside the model and the ONNX standard"
        )
    key = (rule.id, domain, op_type)
    if key in walk.ops:
        walk.ops[key].count += 1
    elif sum(1 for k in walk.ops if k[0] == rule.id) < MAX_FINDINGS_PER_RULE:
        walk.ops[key] = _Op(rule, location, message, qualified)


@dataclass
class _Tensor:
    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw: WireField | None = None
    segmented: bool = False
    location_kind: int = 0
    external: dict[str, str] = field(default_factory=dict)


def _check_tensor(walk: _Walk, tensor: WireField, depth: int, label: str) -> None:
    r = walk.reader
    t = _Tensor()
    for f in r.message(tensor, depth):
        if f.number == 1:
            if len(t.dims) >= MAX_DIMS:
                raise ProtobufError(f"tensor has more than {MAX_DIMS} dims", f.offset)
            t.dims.extend(signed64(v) for v in r.packed_varints(f, MAX_DIMS - len(t.dims)))
        elif f.number == 2:
            _expect(f, VARINT)
            t.data_type = f.value
        elif f.number == 3:
            t.segmented = True
        elif f.number == 8:
            _expect(f, LEN)
            t.name = r.text(f, MAX_NAME)
        elif f.number == 9:
            _expect(f, LEN)
            t.raw = f
        elif f.number == 14:
            _expect(f, VARINT)
            t.location_kind = f.value
        elif f.number == 13:
            _expect(f, LEN)
            key, value = "", ""
            for kv in r.message(f, depth + 1):
                if kv.number == 1 and kv.wire_type == LEN:
                    key = r.text(kv, MAX_NAME)
                elif kv.number == 2 and kv.wire_type == LEN:
                    value = r.text(kv, 4096)
            t.external[key] = value
    detail = t.name or f"tensor at byte {tensor.offset}"
    location = walk.where(tensor.offset, detail)
    expected = _expected_bytes(walk, t, location, label)
    if t.location_kind == EXTERNAL:
        _check_external(walk, t, location, label, expected)
    elif t.raw is not None and expected is not None and not t.segmented and t.raw.length != expected:
        walk.report(
            rules.TENSOR_SIZE,
            location,
            f"tensor {detail!r} ({label}) holds {t.raw.length} bytes of raw data; dims {t.dims} of type "
            f"{t.data_type} need {expected}",
            evidence=f"dims={t.dims} data_type={t.data_type} raw_data={t.raw.length}",
        )
    elif walk.deep and t.raw is not None and t.raw.length == expected and t.data_type in FLOAT_DTYPES:
        walk.floats.append(weights.FloatTensor(detail, FLOAT_DTYPES[t.data_type], t.raw.value, t.raw.length))
    elif t.raw is None and expected is not None and expected > walk.reader.size:
        walk.report(
            rules.TENSOR_SIZE,
            location,
            f"tensor {detail!r} ({label}) declares {expected} bytes, more than the whole file "
            f"({walk.reader.size} bytes)",
            evidence=f"dims={t.dims} data_type={t.data_type}",
        )


def _expected_bytes(walk: _Walk, t: _Tensor, location: Location, label: str) -> int | None:
    """The byte size the dims and type declare, or None (and maybe a finding) when there is none."""
    if any(d < 0 for d in t.dims):
        walk.report(
            rules.TENSOR_SIZE,
            location,
            f"tensor {location.detail!r} ({label}) has a negative dimension",
            evidence=f"dims={t.dims}",
        )
        return None
    elements = 1
    for d in t.dims:
        elements *= d
    bits = DTYPE_BITS.get(t.data_type)
    if bits is None:
        return None
    nbytes = (elements * bits + 7) // 8
    if elements > INT64_MAX or nbytes > INT64_MAX:
        walk.report(
            rules.TENSOR_SIZE,
            location,
            f"tensor {location.detail!r} ({label}) declares {elements} elements, overflowing 64-bit sizes",
            evidence=f"dims={t.dims}",
            severity=Severity.HIGH,
        )
        return None
    return nbytes


def _check_external(walk: _Walk, t: _Tensor, location: Location, label: str, expected: int | None) -> None:
    path = t.external.get("location", "")
    detail = location.detail
    if path not in walk.external:
        walk.external[path] = (location, 0)
    first, count = walk.external[path]
    walk.external[path] = (first, count + 1)
    problem = _path_problem(path)
    if not path:
        walk.report(
            rules.MALFORMED,
            location,
            f"tensor {detail!r} ({label}) is stored externally but names no location",
            evidence=repr(t.external),
        )
    elif problem is not None:
        walk.report(
            rules.EXTERNAL_DATA_PATH,
            location,
            f"tensor {detail!r} ({label}) reads its data from {path!r}, {problem}",
            evidence=path,
        )
    numbers: dict[str, int] = {}
    for key in ("offset", "length"):
        if key not in t.external:
            continue
        text = t.external[key].strip()
        if not text.isdigit() or int(text) > INT64_MAX:
            walk.report(
                rules.EXTERNAL_DATA_RANGE,
                location,
                f"tensor {detail!r} ({label}) has external data {key} {t.external[key]!r}, "
                "not a non-negative 64-bit integer",
                evidence=f"{key}={t.external[key]}",
            )
            return
        numbers[key] = int(text)
    if numbers.get("offset", 0) + numbers.get("length", 0) > INT64_MAX:
        walk.report(
            rules.EXTERNAL_DATA_RANGE,
            location,
            f"tensor {detail!r} ({label}): external offset + length overflows a signed 64-bit integer",
            evidence=f"offset={numbers['offset']} length={numbers['length']}",
        )
    elif "length" in numbers and expected is not None and numbers["length"] != expected:
        walk.report(
            rules.TENSOR_SIZE,
            location,
            f"tensor {detail!r} ({label}) declares {numbers['length']} external bytes; dims {t.dims} of "
            f"type {t.data_type} need {expected}",
            evidence=f"dims={t.dims} data_type={t.data_type} length={numbers['length']}",
        )
    elif walk.deep and path and problem is None and expected and t.data_type in FLOAT_DTYPES:
        dtype = FLOAT_DTYPES[t.data_type]
        walk.external_floats.append(
            (path, weights.FloatTensor(detail or t.name, dtype, numbers.get("offset", 0), expected))
        )


def _deep_external(
    blob: Blob, ctx: ScanContext, tensors: list[tuple[str, weights.FloatTensor]]
) -> Iterator[ScanEvent]:
    """`--deep` over external data: each side file is opened only inside the model's folder (the file
    itself or a link that stays inside it) and read in bounded chunks, counted in the file's read budget."""
    by_file: dict[str, list[weights.FloatTensor]] = {}
    for location, tensor in tensors:
        by_file.setdefault(location, []).append(tensor)
    for location, floats in by_file.items():
        chain = blob.child_chain(location)
        side = ctx.side_file(blob, location)
        if side is None:
            yield ScanIssue(
                "deep-unsupported",
                f"--deep did not read the external data file {location!r}: not a regular file inside the "
                "model's folder on disk",
                Location(chain),
            )
            continue
        with open(side, "rb") as fh:
            fd, size = fh.fileno(), os.fstat(fh.fileno()).st_size

            def read_at(offset: int, n: int, fd: int = fd) -> bytes:
                data = os.pread(fd, n, offset)
                ctx.reads.spend(len(data))
                return data

            inside = [replace(t, read_at=read_at, chain=chain) for t in floats if t.offset + t.nbytes <= size]
            yield from weights.scan_tensors(blob, ctx, inside)


def _path_problem(path: str) -> str | None:
    """Why an external data location escapes the model's folder (on POSIX or Windows), or None."""
    if not path:
        return "an empty location"
    if "\x00" in path:
        return "a location containing a NUL byte"
    if path.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(path) or ntpath.isabs(path):
        return "an absolute path"
    unified = path.replace("\\", "/")
    if ".." in unified.split("/"):
        return "a path that climbs out of the model's folder with '..'"
    normal = posixpath.normpath(unified)
    if normal.startswith("../") or normal == "..":
        return "a path that resolves outside the model's folder"
    return None
