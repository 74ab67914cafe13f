"""Policy: the user's choices that shape verdicts and the exit threshold."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelshield.engine.findings import Severity


@dataclass(frozen=True)
class Policy:
    """A scan policy. The default trusts only the shipped allowlist and fails on medium and above.

    `allowed_callables` / `denied_callables` hold fully qualified names ("pkg.mod.Name") or module
    prefixes ending in ".*" that extend the shipped lists; a denial always wins over an allowance.
    """

    fail_on: Severity = Severity.MEDIUM
    allowed_callables: frozenset[str] = field(default_factory=frozenset)
    denied_callables: frozenset[str] = field(default_factory=frozenset)
    disabled_rules: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in self.allowed_callables | self.denied_callables:
            if not name or name.startswith(".") or " " in name:
                raise ValueError(f"not a qualified callable name: {name!r}")
