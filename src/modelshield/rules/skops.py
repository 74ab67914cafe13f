"""Rules about skops persistence files (sklearn models saved with skops.io): the types they rebuild."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_REVIEW = (
    "Do not pass the listed types to skops.io.load(trusted=...); load only files whose types are all "
    "trusted, or obtain the model from a trusted source."
)

DANGEROUS_TYPE = Rule(
    id="SKOPS-DANGEROUS-TYPE",
    title="skops file rebuilds a dangerous type or calls a dangerous function",
    severity=Severity.CRITICAL,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    description=(
        "schema.json names a type, function or method that runs commands, evaluates code, imports "
        "modules or reaches the file system or the network. skops refuses it by default, but a user "
        "who trusts the types get_untrusted_types() lists gives the file code execution."
    ),
    remediation=_REVIEW,
    references=("https://skops.readthedocs.io/en/stable/persistence.html",),
)

UNKNOWN_TYPE = Rule(
    id="SKOPS-UNKNOWN-TYPE",
    title="skops file rebuilds a type that is not known to be safe",
    severity=Severity.HIGH,
    category=Category.UNSAFE_MODULE,
    confidence=Confidence.MEDIUM,
    cwe="CWE-502",
    description=(
        "schema.json names a type, function or loader outside the allowlist of what scikit-learn, "
        "numpy, scipy and the standard containers emit. Loading it requires trusting the type, and "
        "its construction runs the module's code."
    ),
    remediation=_REVIEW,
    references=("https://skops.readthedocs.io/en/stable/persistence.html",),
)

RULES: tuple[Rule, ...] = (DANGEROUS_TYPE, UNKNOWN_TYPE)
