"""Rule: the stable identity behind every finding, and the registry that refuses duplicates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from modelshield.engine.findings import Category, Confidence, Finding, Location, Severity


@dataclass(frozen=True)
class Rule:
    """A detection with a stable, never-reused id; findings are made from it with `at()`."""

    id: str
    title: str
    severity: Severity
    category: Category
    description: str
    remediation: str
    confidence: Confidence = Confidence.HIGH
    cwe: str | None = None
    references: tuple[str, ...] = field(default_factory=tuple)
    since: str = "0.1.0"

    def at(
        self,
        location: Location,
        message: str,
        *,
        evidence: str = "",
        severity: Severity | None = None,
        category: Category | None = None,
        confidence: Confidence | None = None,
        references: tuple[str, ...] = (),
    ) -> Finding:
        """A finding of this rule at `location`; severity, category and confidence may be graded per case."""
        return Finding(
            rule_id=self.id,
            severity=severity or self.severity,
            category=category or self.category,
            confidence=confidence or self.confidence,
            message=message,
            location=location,
            evidence=evidence,
            remediation=self.remediation,
            references=tuple(dict.fromkeys(self.references + references)),
        )


class DuplicateRuleError(RuntimeError):
    """Two rules claim the same id: a programming error that must fail loudly."""


def build_registry(rules: Iterable[Rule]) -> Mapping[str, Rule]:
    """Index rules by id, failing on any duplicate."""
    registry: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in registry:
            raise DuplicateRuleError(f"rule id {rule.id!r} is defined twice")
        registry[rule.id] = rule
    return registry
