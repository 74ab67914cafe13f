"""The rule registry's invariants, renamed ids that still resolve, and docs/rules.md kept in step."""

from __future__ import annotations

from pathlib import Path

import pytest

import modelshield
from modelshield.docs_rules import REGENERATE, main, render_rules_markdown
from modelshield.engine.findings import Category, Severity
from modelshield.engine.rules import (
    DuplicateRuleError,
    Rule,
    RuleRegistry,
    UnknownRuleError,
    build_registry,
    registry_problems,
)
from modelshield.rules import REGISTRY

DOCS = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def rule(rule_id: str, **fields: object) -> Rule:
    values: dict[str, object] = {
        "title": "A title",
        "severity": Severity.HIGH,
        "category": Category.CODE_EXECUTION,
        "description": "What it is.",
        "remediation": "What to do.",
    }
    values.update(fields)
    return Rule(id=rule_id, **values)  # type: ignore[arg-type]


# -- the product's registry -----------------------------------------------------------------------------


def test_registry_keeps_every_invariant() -> None:
    assert isinstance(REGISTRY, RuleRegistry)
    assert registry_problems(REGISTRY.values(), REGISTRY.redirects) == []


def test_no_rule_claims_a_version_after_this_one() -> None:
    def version(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))

    late = [r.id for r in REGISTRY.values() if version(r.since) > version(modelshield.__version__)]
    assert late == []


def test_docs_are_up_to_date() -> None:
    current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    assert current == render_rules_markdown(REGISTRY), (
        f"docs/rules.md is out of date with the rule registry; regenerate it with `{REGENERATE}` "
        "(from the repository root) and commit it"
    )


def test_docs_name_every_rule_once() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for rule_id in REGISTRY:
        assert text.count(f"\n### {rule_id}\n") == 1, rule_id


def test_docs_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "rules.md"
    assert main(["--check", str(target)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main([str(target)]) == 0
    assert main(["--check", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render_rules_markdown(REGISTRY)


# -- invariants caught ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (rule("lower-case"), "id does not match"),
        (rule("NOPREFIX"), "id does not match"),
        (rule("TRAILING-"), "id does not match"),
        (rule("X-Y", title=" "), "title is empty"),
        (rule("X-Y", description=""), "description is empty"),
        (rule("X-Y", remediation=""), "remediation is empty"),
        (rule("X-Y", cwe="502"), "CWE '502'"),
        (rule("X-Y", cwe="CWE-abc"), "CWE 'CWE-abc'"),
        (rule("X-Y", since="soon"), "since 'soon'"),
        (rule("X-Y", references=("CVE-24-1",)), "reference 'CVE-24-1'"),
        (rule("X-Y", references=("CVE-2024-0450", "CVE-2024-0450")), "references repeat"),
    ],
)
def test_each_broken_invariant_is_named(bad: Rule, problem: str) -> None:
    problems = registry_problems([bad])
    assert len(problems) == 1 and problem in problems[0], problems


def test_good_references_pass() -> None:
    refs = ("CVE-2025-1944", "GHSA-53q9-r3pm-6pq6", "https://example.invalid/advisory")
    assert registry_problems([rule("X-Y", references=refs, cwe="CWE-502")]) == []


def test_duplicate_ids_are_named_and_refused() -> None:
    assert registry_problems([rule("X-Y"), rule("X-Y")]) == ["X-Y: id is defined twice"]
    with pytest.raises(DuplicateRuleError):
        build_registry([rule("X-Y"), rule("X-Y")])


def test_redirect_problems_are_named() -> None:
    assert registry_problems([rule("X-Y", previous_ids=("X-Y",))]) == [
        "X-Y: renamed id is reused by a current rule"
    ]
    assert registry_problems([rule("X-Y")], {"X-OLD": "X-GONE"}) == [
        "X-OLD: redirects to 'X-GONE', which is no rule"
    ]
    assert registry_problems([rule("X-Y")], {"x-old": "X-Y"})[0].startswith(
        "x-old: renamed id does not match"
    )


# -- renamed ids ------------------------------------------------------------------------------------------


def test_renamed_id_resolves_to_its_rule() -> None:
    registry = build_registry([rule("ZIP-NEW-NAME", previous_ids=("ZIP-OLD-NAME",)), rule("ZIP-OTHER")])
    assert registry.lookup("ZIP-OLD-NAME") is registry["ZIP-NEW-NAME"]
    assert registry.lookup("ZIP-NEW-NAME") is registry["ZIP-NEW-NAME"]
    assert registry.resolve("ZIP-OLD-NAME") == "ZIP-NEW-NAME"
    assert registry.redirects == {"ZIP-OLD-NAME": "ZIP-NEW-NAME"}
    # an old id is not a second rule: it does not iterate, count or index
    assert sorted(registry) == ["ZIP-NEW-NAME", "ZIP-OTHER"] and len(registry) == 2
    assert "ZIP-OLD-NAME" not in registry
    with pytest.raises(KeyError):
        registry["ZIP-OLD-NAME"]


def test_explicit_redirects_and_chains_lead_to_the_current_rule() -> None:
    registry = build_registry(
        [rule("A-THIRD", previous_ids=("A-SECOND",))],
        redirects={"A-FIRST": "A-SECOND", "A-MERGED": "A-THIRD"},
    )
    assert registry.redirects == {"A-SECOND": "A-THIRD", "A-FIRST": "A-THIRD", "A-MERGED": "A-THIRD"}
    assert registry.lookup("A-FIRST").id == "A-THIRD"


def test_unknown_id_is_an_unknown_rule_error() -> None:
    registry = build_registry([rule("A-B")])
    with pytest.raises(UnknownRuleError):
        registry.lookup("A-NOPE")
    with pytest.raises(KeyError):  # UnknownRuleError is a KeyError, for callers that catch that
        registry.lookup("A-NOPE")


@pytest.mark.parametrize(
    ("rules", "redirects", "error"),
    [
        ([rule("A-B"), rule("A-C", previous_ids=("A-B",))], {}, DuplicateRuleError),  # reused id
        ([rule("A-B")], {"A-OLD": "A-MISSING"}, UnknownRuleError),  # leads nowhere
        ([rule("A-B")], {"A-X": "A-Y", "A-Y": "A-X"}, UnknownRuleError),  # a cycle
        (
            [rule("A-B", previous_ids=("A-OLD",)), rule("A-C")],
            {"A-OLD": "A-C"},
            DuplicateRuleError,
        ),  # two targets
    ],
    ids=["reused", "dangling", "cycle", "two-targets"],
)
def test_bad_redirects_fail_when_the_registry_is_built(
    rules: list[Rule], redirects: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        build_registry(rules, redirects)
