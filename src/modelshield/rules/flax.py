"""Rules about Flax msgpack checkpoints (flax.serialization): extension types and the msgpack structure."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_DONT_LOAD = (
    "Do not restore the checkpoint; obtain it from a trusted source or re-save it from trusted weights."
)

UNKNOWN_EXT = Rule(
    id="FLAX-UNKNOWN-EXT",
    title="Flax msgpack checkpoint holds an extension type flax does not write",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    confidence=Confidence.MEDIUM,
    cwe="CWE-502",
    description=(
        "flax.serialization encodes arrays as msgpack extension types 1 (ndarray), 2 (native complex) "
        "and 3 (numpy scalar). Another extension type is meant for a different reader: msgpack "
        "extension hooks of other libraries rebuild objects from such bytes, and flax passes them "
        "through unchecked."
    ),
    remediation=_DONT_LOAD,
)

MALFORMED = Rule(
    id="FLAX-MALFORMED",
    title="Flax msgpack checkpoint is malformed",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-20",
    description=(
        "A length or count runs past the end of the data, a byte starts no msgpack value, values nest "
        "deeper than any checkpoint, an array extension is not the (shape, dtype, bytes) triple flax "
        "writes, or data follows the checkpoint (scanned as a child). Readers differ on such input and "
        "trailing bytes are a place to hide a payload."
    ),
    remediation=_DONT_LOAD,
)

RULES: tuple[Rule, ...] = (UNKNOWN_EXT, MALFORMED)
