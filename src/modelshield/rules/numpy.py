"""Rules about NumPy .npy and .npz files."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

OBJECT_ARRAY = Rule(
    id="NUMPY-OBJECT-ARRAY",
    title="NumPy array of Python objects: its data is a pickle",
    severity=Severity.INFO,
    category=Category.UNSAFE_MODULE,
    references=("CVE-2019-6446",),
    cwe="CWE-502",
    description=(
        "The array's dtype holds Python objects, so np.save stored the data as a pickle and np.load "
        "only reads it with allow_pickle=True, which runs whatever that pickle calls. The pickle is "
        "scanned as a child of this file; its own findings say whether it does anything dangerous."
    ),
    remediation=(
        "Load it with allow_pickle=False unless the source is trusted, and prefer numeric dtypes for "
        "data that is shared."
    ),
)

MALFORMED_HEADER = Rule(
    id="NUMPY-MALFORMED-HEADER",
    title="NumPy header is malformed",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    description=(
        "The .npy header is not what np.save writes (bad version, a header that is not a literal "
        "dict, missing or extra keys, an unknown dtype). np.load refuses most of these; a scanner "
        "that reads them differently from numpy could miss what numpy would load."
    ),
    remediation="Re-create the file with np.save from trusted data.",
)

OVERSIZED_HEADER = Rule(
    id="NUMPY-HEADER-OVERSIZED",
    title="NumPy header is larger than numpy accepts by default",
    severity=Severity.MEDIUM,
    category=Category.DECOMPRESSION,
    cwe="CWE-400",
    description=(
        "np.load refuses headers over 10,000 characters unless allow_pickle=True is passed, because "
        "evaluating a huge literal exhausts memory and time. Real arrays have short headers."
    ),
    remediation="Do not load the file with allow_pickle=True; re-create it from trusted data.",
)

ABSURD_SHAPE = Rule(
    id="NUMPY-ABSURD-SHAPE",
    title="NumPy header declares an impossible or absurd shape",
    severity=Severity.MEDIUM,
    category=Category.DECOMPRESSION,
    cwe="CWE-789",
    description=(
        "Negative dimensions, more dimensions than numpy supports, or a declared size so large that "
        "allocating it exhausts memory (or overflows a size computation in a native reader)."
    ),
    remediation="Do not load the file; re-create it from trusted data.",
)

TRUNCATED = Rule(
    id="NUMPY-TRUNCATED",
    title="NumPy data is shorter than the header declares",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    description="The file ends before shape × itemsize bytes of data; np.load fails on it.",
    remediation="Re-download the file and compare its hash with the publisher's.",
)

APPENDED_DATA = Rule(
    id="NUMPY-APPENDED-DATA",
    title="Data follows the array in a NumPy file",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    confidence=Confidence.MEDIUM,
    description=(
        "Bytes after shape × itemsize are never read by np.load; np.save does not write them. They "
        "are a place to smuggle a payload past review (they are scanned as a child of this file)."
    ),
    remediation="Find out what wrote the extra bytes; re-create the file from trusted data.",
)

RULES: tuple[Rule, ...] = (
    OBJECT_ARRAY,
    MALFORMED_HEADER,
    OVERSIZED_HEADER,
    ABSURD_SHAPE,
    TRUNCATED,
    APPENDED_DATA,
)
