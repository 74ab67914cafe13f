"""Rules about ONNX models: operators from outside the standard sets, external data, tensor integrity."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_ORT_CUSTOM_OPS = "https://onnxruntime.ai/docs/reference/operators/add-custom-op.html"
_EXTERNAL_DATA = "https://onnx.ai/onnx/repo-docs/ExternalData.html"
_DONT_LOAD = (
    "Do not load the model until you know where it comes from; obtain it from a trusted source or "
    "re-export it from trusted weights."
)

CUSTOM_DOMAIN = Rule(
    id="ONNX-CUSTOM-DOMAIN",
    title="ONNX node uses an operator from a custom domain",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    confidence=Confidence.MEDIUM,
    cwe="CWE-829",
    description=(
        "The node's operator belongs to a domain that is neither a standard ONNX operator set nor "
        "defined as a function inside the model. Running it needs a custom operator library, native "
        "or Python code that the runtime loads and executes; a model that asks for one is asking you "
        "to install and trust that code."
    ),
    remediation=(
        "Find out which library implements the domain and whether you trust it; do not register "
        "custom operator libraries shipped with the model."
    ),
    references=(_ORT_CUSTOM_OPS,),
)

CONTRIB_OP = Rule(
    id="ONNX-CONTRIB-OP",
    title="ONNX node uses an onnxruntime contrib operator",
    severity=Severity.INFO,
    category=Category.CODE_EXECUTION,
    confidence=Confidence.HIGH,
    description=(
        "The node's operator is in a Microsoft contrib domain (com.microsoft and its variants). These "
        "operators are implemented inside onnxruntime itself, not loaded from the model's author, so "
        "they are reported for information: the model only runs on onnxruntime."
    ),
    remediation="No action needed unless the model must run on a runtime other than onnxruntime.",
    references=("https://github.com/microsoft/onnxruntime/blob/main/docs/ContribOperators.md",),
)

UNKNOWN_OP = Rule(
    id="ONNX-UNKNOWN-OP",
    title="ONNX node uses an operator its standard domain does not define",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    confidence=Confidence.MEDIUM,
    cwe="CWE-20",
    description=(
        "The operator is not among the operators ONNX defines for the node's domain (any version) and "
        "no function in the model defines it. Standard runtimes refuse such a model unless a custom "
        "operator was registered under a standard domain name, which hides where the code comes from."
    ),
    remediation=_DONT_LOAD,
)

EXTERNAL_DATA = Rule(
    id="ONNX-EXTERNAL-DATA",
    title="ONNX tensor is stored in an external file",
    severity=Severity.INFO,
    category=Category.FILESYSTEM,
    confidence=Confidence.HIGH,
    description=(
        "The tensor's data lives in another file, read by onnx.load and onnxruntime from a path "
        "relative to the model. Reported so that you know which other files loading the model reads; "
        "scan them too."
    ),
    remediation="Make sure the referenced files are the ones shipped with the model, and scan them.",
    references=(_EXTERNAL_DATA,),
)

EXTERNAL_DATA_PATH = Rule(
    id="ONNX-EXTERNAL-DATA-PATH",
    title="ONNX external data path leaves the model's folder",
    severity=Severity.HIGH,
    category=Category.FILESYSTEM,
    confidence=Confidence.HIGH,
    cwe="CWE-22",
    description=(
        "An external data location is absolute, climbs with '..', or otherwise resolves outside the "
        "folder of the model. Loading the model then reads an arbitrary file of the host (keys, "
        "/etc/passwd) into a tensor that outputs may leak, or a device file that hangs the loader."
    ),
    remediation=_DONT_LOAD,
    references=("CVE-2022-25882", "CVE-2024-27318", _EXTERNAL_DATA),
)

EXTERNAL_DATA_RANGE = Rule(
    id="ONNX-EXTERNAL-DATA-RANGE",
    title="ONNX external data offset or length is invalid",
    severity=Severity.MEDIUM,
    category=Category.EXPLOIT,
    confidence=Confidence.HIGH,
    cwe="CWE-190",
    description=(
        "An external data entry declares an offset or length that is not a non-negative integer, "
        "or whose sum overflows a signed 64-bit integer. Readers that seek and allocate from such "
        "values misbehave."
    ),
    remediation=_DONT_LOAD,
    references=(_EXTERNAL_DATA,),
)

TENSOR_SIZE = Rule(
    id="ONNX-TENSOR-SIZE",
    title="ONNX tensor data does not match its declared shape",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    confidence=Confidence.HIGH,
    cwe="CWE-130",
    description=(
        "A tensor's raw data is shorter or longer than its dims and data type require, its dims are "
        "negative, or the declared size overflows or is larger than the whole file. Runtimes that "
        "trust the declared shape read out of bounds or allocate what the file claims."
    ),
    remediation=_DONT_LOAD,
)

MALFORMED = Rule(
    id="ONNX-MALFORMED",
    title="ONNX protobuf structure is malformed",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    confidence=Confidence.HIGH,
    cwe="CWE-20",
    description=(
        "The ModelProto could not be read to its end: a truncated field, an invalid wire type, a "
        "field of the wrong kind, or nesting deeper than real models use. Parts the scanner could not "
        "read may hold what a more lenient loader runs."
    ),
    remediation=_DONT_LOAD,
)

RULES: tuple[Rule, ...] = (
    CUSTOM_DOMAIN,
    CONTRIB_OP,
    UNKNOWN_OP,
    EXTERNAL_DATA,
    EXTERNAL_DATA_PATH,
    EXTERNAL_DATA_RANGE,
    TENSOR_SIZE,
    MALFORMED,
)
