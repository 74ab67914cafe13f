"""Rule: the stable identity behind every finding, and the registry that refuses duplicates."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    previous_ids: tuple[str, ...] = field(default_factory=tuple)
    """Ids this rule had before a rename; they redirect here and are never given to another rule."""

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


def rule_family(rule_id: str) -> str:
    """The family an id belongs to: its first component (PICKLE, ZIP, TORCHSCRIPT, …)."""
    return rule_id.split("-", 1)[0]


def rule_document(rule: Rule) -> dict[str, Any]:
    """Everything a rule declares, as plain data (for `modelshield rules --format json` and the docs)."""
    return {
        "id": rule.id,
        "family": rule_family(rule.id),
        "title": rule.title,
        "severity": rule.severity.value,
        "category": rule.category.value,
        "confidence": rule.confidence.value,
        "cwe": rule.cwe,
        "description": rule.description,
        "remediation": rule.remediation,
        "references": list(rule.references),
        "since": rule.since,
        "previous_ids": list(rule.previous_ids),
    }


class DuplicateRuleError(RuntimeError):
    """Two rules claim the same id: a programming error that must fail loudly."""


class UnknownRuleError(KeyError):
    """An id that names no rule, current or renamed."""


# Patterns, not compiled ones: only `registry_problems` (the registry tests) matches them, and compiling
# them at import cost every scan's start-up; `re` compiles each once, on first use, and keeps it.
RULE_ID_PATTERN = r"^[A-Z0-9]+(-[A-Z0-9]+)+$"
CWE_PATTERN = r"^CWE-[1-9][0-9]*$"
VERSION_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+$"
REFERENCE_PATTERN = r"^(CVE-[0-9]{4}-[0-9]{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|https://\S+)$"


class RuleRegistry(Mapping[str, Rule]):
    """Rules by current id; `lookup` also follows the redirects left behind by renamed ids.

    Iterating, `in` and `[]` see current ids only, so a renamed id never shows up as a second rule.
    """

    def __init__(self, rules: Mapping[str, Rule], redirects: Mapping[str, str]) -> None:
        self._rules = dict(rules)
        self._redirects = dict(redirects)

    def __getitem__(self, rule_id: str) -> Rule:
        return self._rules[rule_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    @property
    def redirects(self) -> Mapping[str, str]:
        """Old id -> current id, for every id a rule has been renamed from."""
        return dict(self._redirects)

    def resolve(self, rule_id: str) -> str:
        """The current id for `rule_id` (itself when current), or UnknownRuleError."""
        if rule_id in self._rules:
            return rule_id
        if rule_id in self._redirects:
            return self._redirects[rule_id]
        raise UnknownRuleError(rule_id)

    def lookup(self, rule_id: str) -> Rule:
        """The rule an id names today: a current id, or one it was renamed from (e.g. in a policy file)."""
        return self._rules[self.resolve(rule_id)]


def build_registry(rules: Iterable[Rule], redirects: Mapping[str, str] | None = None) -> RuleRegistry:
    """Index rules by id, failing on any duplicate; renamed ids redirect to the rule that replaced them.

    Redirects come from each rule's `previous_ids` and from `redirects` (old id -> new id, for an id
    whose rule was merged into another). Chains are followed to the current id; an old id may never be
    a current id again, and every redirect must end at a rule.
    """
    registry: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in registry:
            raise DuplicateRuleError(f"rule id {rule.id!r} is defined twice")
        registry[rule.id] = rule
    declared: dict[str, str] = {}
    for rule in registry.values():
        for old in rule.previous_ids:
            _add_redirect(declared, old, rule.id)
    for old, new in (redirects or {}).items():
        _add_redirect(declared, old, new)
    resolved: dict[str, str] = {}
    for old in declared:
        if old in registry:
            raise DuplicateRuleError(f"rule id {old!r} was renamed and must not be reused")
        resolved[old] = _follow(old, declared, registry)
    return RuleRegistry(registry, resolved)


def _add_redirect(redirects: dict[str, str], old: str, new: str) -> None:
    if redirects.get(old, new) != new:
        raise DuplicateRuleError(f"renamed id {old!r} redirects to both {redirects[old]!r} and {new!r}")
    redirects[old] = new


def _follow(old: str, redirects: Mapping[str, str], registry: Mapping[str, Rule]) -> str:
    seen = {old}
    target = redirects[old]
    while target not in registry:
        if target not in redirects or target in seen:
            raise UnknownRuleError(f"renamed id {old!r} does not lead to a rule (stops at {target!r})")
        seen.add(target)
        target = redirects[target]
    return target


def registry_problems(rules: Iterable[Rule], redirects: Mapping[str, str] | None = None) -> list[str]:
    """Every way the rules break the registry's invariants, as messages; empty when all hold.

    Checked: unique ids, id format, non-empty title/description/remediation, CWE, reference and
    `since` formats, and redirects that leave from an unused id and end at a rule.
    """
    problems: list[str] = []
    seen: set[str] = set()
    rules = list(rules)
    for rule in rules:
        problems.extend(f"{rule.id}: {problem}" for problem in _rule_problems(rule))
        if rule.id in seen:
            problems.append(f"{rule.id}: id is defined twice")
        seen.add(rule.id)
    for old, new in _all_redirects(rules, redirects or {}):
        if not re.match(RULE_ID_PATTERN, old):
            problems.append(f"{old}: renamed id does not match {RULE_ID_PATTERN}")
        if old in seen:
            problems.append(f"{old}: renamed id is reused by a current rule")
        if new not in seen and new not in dict(redirects or {}):
            problems.append(f"{old}: redirects to {new!r}, which is no rule")
    return problems


def _all_redirects(rules: list[Rule], redirects: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs = [(old, rule.id) for rule in rules for old in rule.previous_ids]
    return pairs + list(redirects.items())


def _rule_problems(rule: Rule) -> Iterator[str]:
    if not re.match(RULE_ID_PATTERN, rule.id):
        yield f"id does not match {RULE_ID_PATTERN}"
    for name in ("title", "description", "remediation"):
        if not getattr(rule, name).strip():
            yield f"{name} is empty"
    if rule.cwe is not None and not re.match(CWE_PATTERN, rule.cwe):
        yield f"CWE {rule.cwe!r} is not of the form CWE-<number>"
    if not re.match(VERSION_PATTERN, rule.since):
        yield f"since {rule.since!r} is not a version like 0.1.0"
    for reference in rule.references:
        if not re.match(REFERENCE_PATTERN, reference):
            yield f"reference {reference!r} is not a CVE id, a GHSA id or an https URL"
    if len(set(rule.references)) != len(rule.references):
        yield "references repeat"
