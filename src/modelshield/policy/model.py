"""Policy: the user's choices that shape verdicts and the exit threshold."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from modelshield.engine.findings import Severity

if TYPE_CHECKING:
    from datetime import date

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SuppressionRule:
    """A `[[suppress]]` entry: set aside findings of `rule` in files matching `sha256` and/or `path`.

    Both selectors, when given, must match. `path` is an fnmatch glob tried against the reported
    path and every element of the finding's location chain (so archive members can be named).
    `expires` is the last day the entry suppresses; after it the finding counts again, marked.
    `source` says where the entry was written ("policy.toml:12") for every report to show.
    """

    rule: str
    reason: str
    source: str
    sha256: str | None = None
    path: str | None = None
    expires: date | None = None

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("a suppression needs a non-empty reason")
        if self.sha256 is None and self.path is None:
            raise ValueError(
                "a suppression needs a sha256 or a path; disable the rule to silence it everywhere"
            )
        if self.sha256 is not None and not _SHA256.match(self.sha256):
            raise ValueError(f"not a lowercase hex SHA-256: {self.sha256!r}")
        if self.path is not None and not self.path:
            raise ValueError("a suppression path glob must not be empty")


@dataclass(frozen=True)
class Policy:
    """A scan policy. The default trusts only the shipped allowlist and fails on medium and above.

    `allowed_callables` / `denied_callables` hold fully qualified names ("pkg.mod.Name") or module
    prefixes ending in ".*" that extend the shipped lists; a denial always wins over an allowance.
    They act during the scan (they change what the pickle judge concludes); everything else here
    (`disabled_rules`, `severity_overrides`, `suppressions`) is applied to the finished result by
    `modelshield.policy.apply.apply_policy`. The TensorFlow op and Hydra target lists act during the
    scan too: the TensorFlow graph handler and the NeMo/Hydra config handlers consult them.
    """

    fail_on: Severity = Severity.MEDIUM
    allowed_callables: frozenset[str] = field(default_factory=frozenset)
    denied_callables: frozenset[str] = field(default_factory=frozenset)
    disabled_rules: frozenset[str] = field(default_factory=frozenset)
    severity_overrides: Mapping[str, Severity] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    allowed_tensorflow_ops: frozenset[str] = field(default_factory=frozenset)
    denied_tensorflow_ops: frozenset[str] = field(default_factory=frozenset)
    allowed_hydra_targets: frozenset[str] = field(default_factory=frozenset)
    denied_hydra_targets: frozenset[str] = field(default_factory=frozenset)
    suppressions: tuple[SuppressionRule, ...] = ()
    source: str | None = None

    def __post_init__(self) -> None:
        names = (
            self.allowed_callables
            | self.denied_callables
            | self.allowed_hydra_targets
            | self.denied_hydra_targets
        )
        for name in names:
            if not is_qualified_name_pattern(name):
                raise ValueError(f"not a qualified callable name: {name!r}")
        for op in self.allowed_tensorflow_ops | self.denied_tensorflow_ops:
            if not op or op != op.strip():
                raise ValueError(f"not a TensorFlow op name: {op!r}")
        # A read-only copy: the policy is frozen, and so must be what it holds.
        object.__setattr__(self, "severity_overrides", MappingProxyType(dict(self.severity_overrides)))

    def fingerprint(self) -> str:
        """SHA-256 of everything that shapes a scan's findings: equal for equal policies, whichever
        file (or none) they came from, so stored results can be reused only under the same policy.
        `fail_on` is left out: it judges findings after the scan and does not change them."""
        # Imported here: a scan that stores no result never needs them, and start-up is kept short.
        import hashlib
        import json

        document = {
            "allowed_callables": sorted(self.allowed_callables),
            "denied_callables": sorted(self.denied_callables),
            "disabled_rules": sorted(self.disabled_rules),
            "severity_overrides": {rule: sev.value for rule, sev in sorted(self.severity_overrides.items())},
            "allowed_tensorflow_ops": sorted(self.allowed_tensorflow_ops),
            "denied_tensorflow_ops": sorted(self.denied_tensorflow_ops),
            "allowed_hydra_targets": sorted(self.allowed_hydra_targets),
            "denied_hydra_targets": sorted(self.denied_hydra_targets),
            "suppressions": sorted(
                (
                    [s.rule, s.reason, s.sha256, s.path, s.expires.isoformat() if s.expires else None]
                    for s in self.suppressions
                ),
                key=json.dumps,
            ),
        }
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def is_qualified_name_pattern(name: str) -> bool:
    """Whether `name` is "pkg.mod.Name", "builtins.eval" or a module prefix "pkg.*"."""
    if not name or name.startswith(".") or name.endswith(".") or any(c.isspace() for c in name):
        return False
    parts = name.split(".")
    if parts[-1] == "*":
        parts = parts[:-1]
    return bool(parts) and all(part and "*" not in part for part in parts)
