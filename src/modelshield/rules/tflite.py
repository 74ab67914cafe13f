"""Rules about TensorFlow Lite models: custom and Flex (select TensorFlow) ops, broken FlatBuffers."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_REVIEW = (
    "Load the model only with an interpreter whose registered custom ops you trust, or obtain it from "
    "a trusted source; re-convert it from a trusted SavedModel when in doubt."
)
_DONT_LOAD = "Do not load the file; obtain the model from a trusted source or re-convert it."

CUSTOM_OP = Rule(
    id="TFLITE-CUSTOM-OP",
    title="TensorFlow Lite model uses a custom op",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    confidence=Confidence.MEDIUM,
    cwe="CWE-829",
    description=(
        "An operator code is CUSTOM with a name that is not a Flex op. The interpreter runs whatever "
        "native kernel the loading application registered under that name; the model chooses which. "
        "Custom ops that TensorFlow Lite itself ships (detection post-processing, audio features) are "
        "reported at low severity."
    ),
    remediation=_REVIEW,
)

FLEX_OP = Rule(
    id="TFLITE-FLEX-OP",
    title="TensorFlow Lite model runs a TensorFlow op through the Flex delegate",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-829",
    description=(
        "A custom op named Flex<Op> runs the full TensorFlow kernel <Op> (SELECT_TF_OPS). It is judged "
        "like a TensorFlow graph node: ops that read or write files, call Python or reach the network "
        "are high, and so is an operator running PrintV2 into a file:// output stream; ops that are not "
        "ordinary TensorFlow ops are medium; ordinary ops are low."
    ),
    remediation=_REVIEW,
)

MALFORMED = Rule(
    id="TFLITE-MALFORMED",
    title="TensorFlow Lite FlatBuffer is malformed or indexes out of range",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-125",
    description=(
        "An offset, vtable or vector of the FlatBuffer lies outside the file, or an operator's "
        "opcode_index or a tensor's buffer index names no entry. Interpreters that do not verify the "
        "buffer read out of bounds on such input."
    ),
    remediation=_DONT_LOAD,
)

BUFFER_LAYOUT = Rule(
    id="TFLITE-BUFFER-LAYOUT",
    title="TensorFlow Lite buffer lies outside the file or overlaps another",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-125",
    description=(
        "In the large-model layout a buffer names an offset and size in the file after the FlatBuffer. "
        "A range past the end of the file makes the loader read out of bounds; overlapping ranges are "
        "never written by the converter."
    ),
    remediation=_DONT_LOAD,
)

RULES: tuple[Rule, ...] = (CUSTOM_OP, FLEX_OP, MALFORMED, BUFFER_LAYOUT)
