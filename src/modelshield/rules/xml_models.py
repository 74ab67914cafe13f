"""Rules about XML model formats: OpenVINO IR networks and PMML documents, and DTDs in either."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_DONT_LOAD = "Do not load the model; obtain it from a trusted source or re-export it from a trusted original."

DOCTYPE = Rule(
    id="XML-DOCTYPE",
    title="Model XML declares a DTD or entities",
    severity=Severity.HIGH,
    category=Category.EXPLOIT,
    cwe="CWE-776",
    description=(
        "The document carries a <!DOCTYPE> or <!ENTITY> declaration. Neither OpenVINO IR nor PMML "
        "needs one; entity definitions expand exponentially (billion laughs) or pull in local files and "
        "URLs (XXE) in parsers that resolve them. The document is not parsed further."
    ),
    remediation=_DONT_LOAD,
    references=("https://cwe.mitre.org/data/definitions/611.html",),
)

OPENVINO_CUSTOM_LAYER = Rule(
    id="OPENVINO-CUSTOM-LAYER",
    title="OpenVINO IR layer is not a standard opset operation",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    confidence=Confidence.MEDIUM,
    cwe="CWE-829",
    description=(
        "A layer's type is not an operation of the standard OpenVINO opsets, or its version names an "
        "extension rather than an opset. The runtime runs such layers with whatever extension library "
        "the application loads for them."
    ),
    remediation="Review which extension implements the layer before loading the model.",
)

OPENVINO_WEIGHTS_RANGE = Rule(
    id="OPENVINO-WEIGHTS-RANGE",
    title="OpenVINO IR constant lies outside its weights file",
    severity=Severity.MEDIUM,
    category=Category.EXPLOIT,
    confidence=Confidence.MEDIUM,
    cwe="CWE-125",
    description=(
        "A Const layer's data names a byte range (offset, size) of the .bin weights file that is not a "
        "pair of whole numbers, or that runs past the end of the .bin beside the .xml. The runtime reads "
        "constants by these numbers from the mapped weights: openvino checks the range and refuses the "
        "model; an IR reader that trusts the numbers reads past the file. Converters never write it."
    ),
    remediation=_DONT_LOAD,
)

PMML_SCRIPT = Rule(
    id="PMML-SCRIPT",
    title="PMML document embeds a script",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    description=(
        "A PMML Extension holds code (Python, Java, JavaScript, shell), a Script element, or an "
        "attribute names a script language. Standard PMML has no code; vendor evaluators that honour "
        "such extensions run it when the model is loaded or scored."
    ),
    remediation=_DONT_LOAD,
)

PMML_CODE_FUNCTION = Rule(
    id="PMML-CODE-FUNCTION",
    title="PMML applies a Java or Python function by its qualified name",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-470",
    description=(
        "An Apply element (in a DerivedField or elsewhere) calls a function named like a Java class "
        "or Python module member that the document does not define. Evaluators such as JPMML resolve "
        "such names to code on the class path and call it; a dangerous callable is critical."
    ),
    remediation=_DONT_LOAD,
)

RULES: tuple[Rule, ...] = (
    DOCTYPE,
    OPENVINO_CUSTOM_LAYER,
    OPENVINO_WEIGHTS_RANGE,
    PMML_SCRIPT,
    PMML_CODE_FUNCTION,
)
