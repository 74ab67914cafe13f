"""Rules about payloads hidden in the low bits of float weights (opt-in deep analysis)."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_EVILMODEL = "https://arxiv.org/abs/2107.08590"
_MALEFICNET = "https://arxiv.org/abs/2204.04367"
_REMEDIATION = (
    "Do not use this model's weights until they are explained: compare them with the publisher's hashes, "
    "and extract the low bytes of the named tensor to see what they hold. Re-export from a trusted source."
)

EMBEDDED_PAYLOAD = Rule(
    id="WEIGHTS-EMBEDDED-PAYLOAD",
    title="Tensor low bits spell an executable, archive or pickle",
    severity=Severity.HIGH,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    description=(
        "Taking the low byte (or low two or three bytes, or low nibble) of each weight of a float tensor "
        "yields the signature of an executable, an archive or a pickle. This is how EvilModel hides "
        "malware in a network that still works: the payload costs little accuracy, passes every "
        "format check, and is extracted and run by a loader the attacker ships separately."
    ),
    remediation=_REMEDIATION,
    references=(_EVILMODEL,),
)

LOW_BIT_ANOMALY = Rule(
    id="WEIGHTS-LOW-BIT-ANOMALY",
    title="Tensor low mantissa bits are structured where the bits above them are not",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    confidence=Confidence.LOW,
    cwe="CWE-506",
    description=(
        "The lowest mantissa bits of trained weights are near uniform, and so are the bits just above "
        "them. Here a region of the tensor has low bits far from uniform while the next bits up stay "
        "uniform: what overwriting the low bits with data (code, text, tables) does. Weights upcast "
        "from half precision or dequantised from integers are structured in both and do not fire; "
        "skew alone is not enough either (weights drawn at reduced precision skew the low byte), so the "
        "low bits must also repeat or form long printable runs, as code and text do. Confidence is medium "
        "when both are seen, low when one is. An encrypted or spread-spectrum payload (MaleficNet) is "
        "statistically invisible here; its absence is not proof of a clean model."
    ),
    remediation=_REMEDIATION,
    references=(_EVILMODEL, _MALEFICNET),
)

RULES = (EMBEDDED_PAYLOAD, LOW_BIT_ANOMALY)
