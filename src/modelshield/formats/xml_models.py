"""OpenVINO IR networks and PMML documents: streamed XML, refused when it declares a DTD or entities, with
non-standard layers, embedded scripts and code-calling functions reported."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.analysis.callables import CallableJudge, Judgement
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue, Severity
from modelshield.engine.limits import MiB
from modelshield.engine.rules import Rule
from modelshield.formats.base import ScanEvent
from modelshield.rules import xml_models as rules

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET  # noqa: S405

name = "xml-model"
version = "1"

MAX_XML_BYTES = 256 * MiB
CHUNK = 1 * MiB
MAX_FINDINGS_PER_RULE = 32
MAX_EXTENSION_TEXT = 64 * 1024
TIME_CHECK_EVERY = 1 << 14
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_OPSET = re.compile(r"^opset[0-9]+$")
_QUALIFIED = re.compile(r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+$")
_CODE = re.compile(
    r"(<\s*script|\bimport\s+[A-Za-z_]|\bfrom\s+[A-Za-z_][\w.]*\s+import\b|\b(exec|eval|compile|__import__)\s*\("
    r"|\bsubprocess\b|\bos\.(system|popen|exec)|Runtime\s*\.\s*getRuntime|ProcessBuilder|java\.lang\."
    r"|#!\s*/|\bfunction\s*\w*\s*\(|\bdef\s+\w+\s*\(|\blambda\b)",
    re.IGNORECASE,
)
_SCRIPT_LANGUAGE = re.compile(
    r"^(x-|text/|application/)?(python|javascript|js|java|groovy|ruby|sh|bash|r)\b|^x-", re.I
)

_OPENVINO_OPS = """
Abs Acos Acosh AdaptiveAvgPool AdaptiveMaxPool Add Asin Asinh Assign Atan Atanh AvgPool BatchNormInference
BatchToSpace BinaryConvolution BitwiseAnd BitwiseLeftShift BitwiseNot BitwiseOr BitwiseRightShift BitwiseXor
Broadcast Bucketize CTCGreedyDecoder CTCGreedyDecoderSeqLen CTCLoss Ceiling Clamp Col2Im Concat Constant
Convert ConvertLike ConvertPromoteTypes Convolution ConvolutionBackpropData Cos Cosh CumSum DFT
DeformableConvolution DeformablePSROIPooling DepthToSpace DetectionOutput Divide Einsum Elu
EmbeddingBagOffsets EmbeddingBagOffsetsSum EmbeddingBagPacked EmbeddingBagPackedSum EmbeddingSegmentsSum Equal
Erf Exp ExperimentalDetectronDetectionOutput ExperimentalDetectronGenerateProposalsSingleImage
ExperimentalDetectronPriorGridGenerator ExperimentalDetectronROIFeatureExtractor ExperimentalDetectronTopKROIs
ExtractImagePatches Eye FakeConvert FakeQuantize Floor FloorMod GRN GRUCell GRUSequence Gather
GatherElements GatherND GatherTree Gelu GenerateProposals Greater GreaterEqual GridSample GroupConvolution
GroupConvolutionBackpropData GroupNormalization HSigmoid HSwish HardSigmoid I420toBGR I420toRGB IDFT IRDFT
ISTFT Identity If Interpolate Inverse IsFinite IsInf IsNaN LRN LSTMCell LSTMSequence Less LessEqual Log
LogSoftmax LogicalAnd LogicalNot LogicalOr LogicalXor Loop MVN MatMul MatrixNms MaxPool Maximum Minimum Mish
Mod MulticlassNms Multinomial Multiply NV12toBGR NV12toRGB Negative NonMaxSuppression NonZero NormalizeL2
NotEqual OneHot PRelu PSROIPooling Pad Parameter Power PriorBox PriorBoxClustered Proposal RDFT RNNCell
RNNSequence ROIAlign ROIAlignRotated ROIPooling RandomUniform Range ReadValue ReduceL1 ReduceL2
ReduceLogicalAnd ReduceLogicalOr ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum RegionYolo Relu ReorgYolo
Reshape Result Reverse ReverseSequence Roll Round STFT ScaledDotProductAttention ScatterElementsUpdate
ScatterNDUpdate ScatterUpdate SearchSorted SegmentMax Select Selu ShapeOf ShuffleChannels Sigmoid Sign Sin
Sinh Slice SliceScatter SoftPlus SoftSign Softmax SpaceToBatch SpaceToDepth SparseFillEmptyRows Split Sqrt
SquaredDifference Squeeze StridedSlice StringTensorPack StringTensorUnpack Subtract Swish Tan Tanh
TensorIterator Tile TopK Transpose Unique Unsqueeze VariadicSplit
"""
IR_TYPE_NAMES = frozenset({"Const", "PReLU", "ReLU", "SoftMax"})
"""How the IR writer spells Constant, PRelu, Relu and Softmax (every model with weights has a Const)."""
OPENVINO_OPS = frozenset(_OPENVINO_OPS.split()) | IR_TYPE_NAMES
"""Operations of the standard OpenVINO opsets (opset1 to opset16), as the IR names them."""
_LEGACY_IR_LAYERS = """
Input Const Output Convolution Deconvolution Pooling ReLU Activation FullyConnected ScaleShift Eltwise Power
Norm SoftMax Permute Flatten Reshape Concat Split Crop Tile BatchNormalization PReLU Clamp Interp Resample
Squeeze Unsqueeze Gather Pad StridedSlice TopK Priorbox PriorBoxClustered DetectionOutput RegionYolo ReorgYolo
Proposal PSROIPooling ROIPooling Normalize MVN GRN LRN Sigmoid TanH Elu Exp Log Erf Select Range OneHot
"""
LEGACY_IR_LAYERS = frozenset(_LEGACY_IR_LAYERS.split())
"""Layer types of the IR v7 format that predates opsets."""
INTERNAL_OPSETS = frozenset({"ie_internal_opset", "internal"})

PMML_SCRIPT_TAGS = frozenset({"script", "code", "python", "javascript", "java", "groovy"})


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def sniff(blob: Blob) -> bool:
    head = blob.head(2048).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") and (b"<PMML" in head or b"<net " in head)


@dataclass
class _State:
    blob: Blob
    ctx: ScanContext
    events: list[ScanEvent] = field(default_factory=list)
    reported: dict[str, int] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    root: str = ""
    ir_version: int = 0
    applied: dict[str, str] = field(default_factory=dict)
    defined: set[str] = field(default_factory=set)
    extensions: int = 0
    weights_size: int | None = None
    """Size of the .bin beside an OpenVINO .xml on disk (what the runtime maps), when there is one."""

    def report(
        self, rule: Rule, detail: str, message: str, evidence: str, severity: Severity | None = None
    ) -> None:
        key = (rule.id, evidence)
        if key in self.seen:
            return
        self.seen.add(key)
        self.reported[rule.id] = self.reported.get(rule.id, 0) + 1
        if self.reported[rule.id] <= MAX_FINDINGS_PER_RULE:
            where = Location(self.blob.chain, detail=detail[:200])
            self.events.append(rule.at(where, message, evidence=evidence[:300], severity=severity))


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    if blob.size > MAX_XML_BYTES:
        yield ScanIssue(
            "limit", f"XML model larger than {MAX_XML_BYTES} bytes not analysed", Location(blob.chain)
        )
        return
    import xml.etree.ElementTree as ET  # noqa: S405 - only after any DTD/entity is refused (below)

    state = _State(blob, ctx, weights_size=_weights_size(blob, ctx))
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))  # noqa: S314 - fed only bytes with no DTD (below)
    stack: list[ET.Element] = []
    capture = 0  # depth inside elements whose text is judged at their end (PMML Extension)
    carry = b""
    steps = 0
    with blob.stream() as reader:
        while True:
            chunk = reader.read(CHUNK)
            if not chunk:
                break
            window = carry + chunk
            match = _DTD.search(window)
            if match is not None:
                offset = _position(blob, match.group(0))
                yield rules.DOCTYPE.at(
                    Location(blob.chain, offset=offset),
                    "the document declares a DTD or an entity; it was not parsed, so no entity was expanded",
                    evidence=window[match.start() : match.start() + 80].decode("utf-8", "replace"),
                )
                yield ScanIssue(
                    "unparsed", "XML with a DTD is not parsed", Location(blob.chain, offset=offset)
                )
                return
            carry = window[-16:]
            try:
                parser.feed(chunk)
                for event, element in parser.read_events():  # type: ignore[misc]
                    assert isinstance(element, ET.Element)
                    steps += 1
                    if steps % TIME_CHECK_EVERY == 0:
                        ctx.check_time()
                    capture = _on_event(state, event, element, stack, capture)
            except (ET.ParseError, LookupError) as exc:  # LookupError: an encoding Python does not know
                yield from state.events
                yield ScanIssue("unparsed", f"XML does not parse: {exc}", Location(blob.chain))
                return
    try:
        parser.close()
    except (ET.ParseError, LookupError) as exc:
        yield from state.events
        yield ScanIssue("unparsed", f"XML does not parse: {exc}", Location(blob.chain))
        return
    _judge_functions(state)
    yield from state.events


def _position(blob: Blob, needle: bytes) -> int | None:
    head = blob.head(CHUNK)
    at = head.find(needle)
    return at if at >= 0 else None


def _on_event(state: _State, event: str, element: ET.Element, stack: list[ET.Element], capture: int) -> int:
    tag = _local(element.tag)
    if event == "start":
        if not stack:
            state.root = tag
            if tag == "net":
                state.ir_version = _int(element.get("version"))
        stack.append(element)
        if state.root == "net" and tag == "data" and len(stack) > 1 and _local(stack[-2].tag) == "layer":
            _const_range(state, stack[-2], element)  # read at its start: children are cleared at their end
        if state.root == "PMML":
            _pmml_start(state, tag, element)
            if tag == "Extension":
                capture += 1
        return capture
    stack.pop()
    if state.root == "net" and tag == "layer":
        _openvino_layer(state, element)
    if state.root == "PMML" and tag == "Extension":
        capture -= 1
        _pmml_extension(state, element)
    if capture == 0 and stack:
        parent = stack[-1]
        element.clear()
        if len(parent) and parent[-1] is element:
            del parent[-1]  # keeps memory flat on documents with millions of elements
    return capture


def _int(text: str | None) -> int:
    try:
        return int(text or "0")
    except ValueError:
        return 0


def _weights_size(blob: Blob, ctx: ScanContext) -> int | None:
    """The size of `<name>.bin` beside a scanned `<name>.xml`, where read_model finds it by default."""
    try:
        weights = ctx.side_file(blob, Path(blob.chain[0]).with_suffix(".bin").name)
        return weights.stat().st_size if weights is not None else None
    except (OSError, ValueError):
        return None


def _const_range(state: _State, layer: ET.Element, data: ET.Element) -> None:
    if layer.get("type") != "Const" or (data.get("offset") is None and data.get("size") is None):
        return
    detail = f"layer {layer.get('name', '') or 'id ' + layer.get('id', '?')!r} (Const)"
    raw = f"offset={data.get('offset')!s} size={data.get('size')!s}"
    try:
        offset, size = int(data.get("offset", "")), int(data.get("size", ""))
    except ValueError:
        offset = size = -1
    if offset < 0 or size < 0:
        state.report(
            rules.OPENVINO_WEIGHTS_RANGE, detail, "the constant's byte range is not two whole numbers", raw
        )
    elif state.weights_size is not None and offset + size > state.weights_size:
        state.report(
            rules.OPENVINO_WEIGHTS_RANGE,
            detail,
            f"the constant reads bytes {offset}..{offset + size} of a {state.weights_size}-byte weights file",
            raw,
        )


def _openvino_layer(state: _State, layer: ET.Element) -> None:
    op = layer.get("type", "")
    op_version = layer.get("version")
    layer_name = layer.get("name", "") or f"id {layer.get('id', '?')}"
    detail = f"layer {layer_name!r} ({op})"
    if state.ir_version and state.ir_version < 10:
        if op not in LEGACY_IR_LAYERS and op not in OPENVINO_OPS:
            state.report(
                rules.OPENVINO_CUSTOM_LAYER,
                detail,
                f"IR v{state.ir_version} layer type {op!r} is not standard",
                op,
            )
        return
    if op_version is not None and not _OPSET.match(op_version) and op_version not in INTERNAL_OPSETS:
        state.report(
            rules.OPENVINO_CUSTOM_LAYER,
            detail,
            f"layer {layer_name!r} has type {op!r} from {op_version!r}, an extension, not a standard opset",
            f"{op_version}::{op}",
        )
    elif op not in OPENVINO_OPS:
        state.report(
            rules.OPENVINO_CUSTOM_LAYER,
            detail,
            f"layer {layer_name!r} has type {op!r}, which no standard OpenVINO opset defines",
            op,
        )


def _pmml_start(state: _State, tag: str, element: ET.Element) -> None:
    if tag.lower() in PMML_SCRIPT_TAGS:
        state.report(rules.PMML_SCRIPT, f"<{tag}>", f"the document holds a <{tag}> element", f"<{tag}>")
    for attribute, value in element.attrib.items():
        if _local(attribute).lower() in ("language", "scriptlanguage", "lang") and _SCRIPT_LANGUAGE.match(
            value
        ):
            state.report(
                rules.PMML_SCRIPT,
                f"<{tag} {_local(attribute)}={value!r}>",
                f"<{tag}> names script language {value!r}",
                value,
            )
    if tag == "DefineFunction" and element.get("name"):
        state.defined.add(element.get("name", ""))
    if tag == "Apply":
        function = element.get("function", "")
        if _QUALIFIED.match(function):
            state.applied.setdefault(function, f"<Apply function={function!r}>")


def _pmml_extension(state: _State, extension: ET.Element) -> None:
    state.extensions += 1
    pieces: list[str] = []
    size = 0
    for text in extension.itertext():
        pieces.append(text)
        size += len(text)
        if size > MAX_EXTENSION_TEXT:
            break
    values = [v for e in extension.iter() for v in e.attrib.values()]
    content = "\n".join(pieces + values)[:MAX_EXTENSION_TEXT]
    match = _CODE.search(content)
    if match is not None:
        label = extension.get("name") or extension.get("extender") or f"#{state.extensions}"
        start = max(0, match.start() - 40)
        state.report(
            rules.PMML_SCRIPT,
            f"Extension {label}",
            f"Extension {label} holds code ({match.group(0).strip()!r})",
            content[start : start + 200],
        )


def _judge_functions(state: _State) -> None:
    judge: CallableJudge | None = None
    for function, detail in state.applied.items():
        if function in state.defined:
            continue
        judge = judge or CallableJudge(state.ctx.policy)
        verdict = judge.judge(function)
        if verdict.judgement is Judgement.SAFE:
            continue
        dangerous = verdict.judgement is Judgement.DANGEROUS or function.startswith(
            ("java.lang.", "java.io.")
        )
        state.report(
            rules.PMML_CODE_FUNCTION,
            detail,
            f"Apply calls {function!r}, which the document does not define; evaluators resolve it to code"
            + (f" ({verdict.reason})" if dangerous else ""),
            function,
            severity=Severity.CRITICAL if dangerous else None,
        )
