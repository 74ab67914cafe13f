"""Stable names for findings across scans, and the callables a pickle imports as its findings tell them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

from modelshield.engine.findings import Finding, Location
from modelshield.engine.limits import DEFAULT_LIMITS, Limits
from modelshield.policy.model import Policy

# Rules whose evidence is exactly the qualified name the pickle imports or rebuilds.
_EVIDENCE_IS_NAME = frozenset({"PICKLE-DANGEROUS-IMPORT", "PICKLE-UNKNOWN-IMPORT", "PICKLE-UNKNOWN-CLASS"})
# Rules whose evidence is a call, `module.name(arguments)`.
_EVIDENCE_IS_CALL = frozenset({"PICKLE-DANGEROUS-CALL", "PICKLE-UNKNOWN-CALL"})
_QUALIFIED_NAME = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_<>][\w<>]*)+")


def normalised_location(location: Location) -> str:
    """The location inside the file, without the file's own name (a blob is the same under any path)
    and without byte offsets or opcode numbers (they shift when unrelated bytes change)."""
    inner = " › ".join(location.chain[1:])
    if location.detail:
        return f"{inner} › {location.detail}" if inner else location.detail
    return inner


def finding_fingerprint(rule_id: str, location: str, evidence: str) -> str:
    """The same problem (rule, place inside the file, evidence) has the same fingerprint in every scan."""
    text = "\0".join((rule_id, location, evidence))
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def fingerprint_of(finding: Finding) -> str:
    return finding_fingerprint(finding.rule_id, normalised_location(finding.location), finding.evidence)


def imported_callable(rule_id: str, evidence: str) -> str | None:
    """The callable a pickle finding says the pickle imports, or None when the finding is of another kind.

    Only callables the policy does not allow produce findings, so these are the imports that matter
    for review; allowlisted framework imports (torch rebuild helpers, collections) are not listed."""
    if rule_id in _EVIDENCE_IS_NAME:
        name = evidence.strip()
    elif rule_id in _EVIDENCE_IS_CALL:
        name = evidence.split("(", 1)[0].strip()
    else:
        return None
    return name if _QUALIFIED_NAME.fullmatch(name) else None


def scan_settings_hash(policy: Policy, limits: Limits = DEFAULT_LIMITS) -> str:
    """The policy hash scans are stored and reused under: the policy's fingerprint, folded with the limits
    when they are not the defaults (a larger bound can make an incomplete scan complete)."""
    if limits == DEFAULT_LIMITS:
        return policy.fingerprint()
    bounds = json.dumps(dataclasses.asdict(limits), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{policy.fingerprint()}\0{bounds}".encode()).hexdigest()
