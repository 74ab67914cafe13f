"""Chat template analysis: real templates are clean; sandbox-escape shapes are found, however they are
spelled; templates are parsed only, never compiled or rendered (CVE-2024-34359)."""

from __future__ import annotations

import jinja2
import pytest
from tests.samples import chat_templates as templates

from modelshield.analysis.templates import (
    HazardKind,
    TemplateTooLarge,
    analyse_template,
    judge_template,
)
from modelshield.engine.findings import Finding, Location, ScanIssue
from modelshield.engine.limits import DEFAULT_LIMITS

MAX_TEMPLATE_CHARS = DEFAULT_LIMITS.max_template_bytes

RULE_OF_KIND = {
    HazardKind.GLOBALS_ROUTE: "CHAT-TEMPLATE-GLOBALS-ROUTE",
    HazardKind.DANGEROUS_NAME: "CHAT-TEMPLATE-DANGEROUS-NAME",
    HazardKind.DUNDER_ACCESS: "CHAT-TEMPLATE-DUNDER-ACCESS",
    HazardKind.DYNAMIC_ATTRIBUTE: "CHAT-TEMPLATE-DYNAMIC-ATTRIBUTE",
    HazardKind.INCLUDE: "CHAT-TEMPLATE-INCLUDE",
}


def kinds(source: str) -> set[str]:
    analysis = analyse_template(source)
    assert analysis.parsed, analysis.parse_error
    return {RULE_OF_KIND[h.kind] for h in analysis.hazards}


@pytest.mark.parametrize("name", sorted(templates.REAL_TEMPLATES))
def test_real_templates_are_clean(name: str) -> None:
    analysis = analyse_template(templates.REAL_TEMPLATES[name])
    assert analysis.parsed
    assert analysis.hazards == ()


@pytest.mark.parametrize("name", sorted(templates.HOSTILE_TEMPLATES))
def test_hostile_templates_fire_their_rule(name: str) -> None:
    source, rule_id = templates.HOSTILE_TEMPLATES[name]
    assert rule_id in kinds(source)


def test_cve_2024_34359_payload_evidence_carries_the_snippet() -> None:
    findings = list(
        judge_template(templates.CVE_2024_34359, Location(("m.gguf",), detail="tokenizer.chat_template"))
    )
    assert all(isinstance(f, Finding) for f in findings)
    dangerous = [
        f for f in findings if isinstance(f, Finding) and f.rule_id == "CHAT-TEMPLATE-DANGEROUS-NAME"
    ]
    assert len(dangerous) == 1
    assert "popen" in dangerous[0].evidence and "__import__" in dangerous[0].evidence
    assert dangerous[0].evidence.startswith("line 1: ")
    assert "CVE-2024-34359" in dangerous[0].references
    assert {f.rule_id for f in findings if isinstance(f, Finding)} == {
        "CHAT-TEMPLATE-DANGEROUS-NAME",
        "CHAT-TEMPLATE-DUNDER-ACCESS",
    }


def test_globals_route_names_the_route() -> None:
    (hazard,) = analyse_template(templates.CYCLER_GLOBALS).hazards
    assert hazard.kind is HazardKind.GLOBALS_ROUTE
    assert hazard.names[:3] == ("cycler", "__init__", "__globals__")
    assert "cycler.__init__.__globals__.os.popen" in hazard.snippet


def test_snippet_of_a_long_line_is_centred_on_the_payload() -> None:
    source = "{{ 'x' }}" * 200 + templates.CYCLER_GLOBALS + "{{ 'y' }}" * 200
    (hazard,) = analyse_template(source).hazards
    assert "__globals__" in hazard.snippet
    assert len(hazard.snippet) <= 210


def test_multi_line_template_reports_the_line() -> None:
    source = templates.QWEN25_TOOLS + "\n{{ lipsum.__globals__.os }}\n"
    (hazard,) = analyse_template(source).hazards
    assert hazard.line == templates.QWEN25_TOOLS.count("\n") + 2
    assert hazard.snippet == "{{ lipsum.__globals__.os }}"


@pytest.mark.parametrize(
    "source",
    [
        "{% set n = '__glo' ~ 'bals__' %}{{ cycler.__init__[n] }}",
        "{% set n = ['__glo', 'bals__']|join %}{{ joiner.__init__|attr(n) }}",
        "{{ cycler.__init__['__globals__'] }}",
        "{{ cycler['__init__'].__globals__ }}",
        "{{ cycler.__init__.__getattribute__('__glo' + 'bals__') }}",
    ],
)
def test_names_built_or_bound_elsewhere_are_resolved(source: str) -> None:
    assert "CHAT-TEMPLATE-GLOBALS-ROUTE" in kinds(source)


@pytest.mark.parametrize(
    "source",
    [
        "{{ '{0.__class__}'.format(messages) }}",
        "{% set n = '__class__' %}{{ messages|attr(n) }}",
        "{{ messages.__class__ }}",
        "{{ __loader__ }}",
        "{{ ('_' * 2 ~ 'mro' ~ '_' * 2) }}",
    ],
)
def test_dunders_anywhere_in_expressions(source: str) -> None:
    assert "CHAT-TEMPLATE-DUNDER-ACCESS" in kinds(source)


@pytest.mark.parametrize(
    "source",
    [
        "{{ os.popen('id').read() }}",
        "{{ messages.subprocess }}",
        "{{ messages['eval'] }}",
        "{{ __builtins__ }}",
        "{{ messages|attr('__import__') }}",
    ],
)
def test_dangerous_names_through_any_path(source: str) -> None:
    assert "CHAT-TEMPLATE-DANGEROUS-NAME" in kinds(source)


@pytest.mark.parametrize(
    "source",
    [
        "{{ messages|attr(name) }}",
        "{{ messages[prefix ~ 'x'] }}",
        "{{ messages[[a, b]|join] }}",
    ],
)
def test_computed_names_are_flagged(source: str) -> None:
    assert kinds(source) == {"CHAT-TEMPLATE-DYNAMIC-ATTRIBUTE"}


@pytest.mark.parametrize(
    "source",
    [
        "{{ messages[loop.index0 - 1].role }}",
        "{% set role = 'model' %}{% set role = message['role'] %}{{ messages[role] }}",
        "{{ message.content.split('</think>')[-1] | trim }}",
        "{% set ns = namespace(found=false) %}{% set ns.found = true %}{{ ns.found }}",
        "{% for k, v in tool.parameters.properties | items %}{{ k ~ ': ' ~ v.type }}{% endfor %}",
        "{% generation %}{{ message['content'] }}{% endgeneration %}",
        "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}{% endfor %}",
        "{{ '____' ~ message.content }}",
    ],
)
def test_ordinary_template_idioms_are_clean(source: str) -> None:
    assert kinds(source) == set()


def test_unparseable_template_is_a_finding_and_an_issue() -> None:
    events = list(judge_template(templates.BROKEN, Location(("m",), detail="tokenizer.chat_template")))
    assert [type(e) for e in events] == [Finding, ScanIssue]
    finding = events[0]
    assert isinstance(finding, Finding)
    assert finding.rule_id == "CHAT-TEMPLATE-UNPARSEABLE"
    assert finding.severity.value == "medium"


def test_deeply_nested_template_does_not_crash() -> None:
    analysis = analyse_template("{{ " + "(" * 50_000 + "1" + ")" * 50_000 + " }}")
    assert not analysis.parsed or analysis.hazards == ()


def test_too_large_template_is_not_parsed() -> None:
    with pytest.raises(TemplateTooLarge):
        analyse_template("x" * (MAX_TEMPLATE_CHARS + 1))
    events = list(judge_template("x" * (MAX_TEMPLATE_CHARS + 1), Location(("m",))))
    assert [e.kind for e in events if isinstance(e, ScanIssue)] == ["limit"]


def test_templates_are_never_compiled_or_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a template must never be compiled or rendered")

    monkeypatch.setattr(jinja2.Environment, "compile", refuse)
    monkeypatch.setattr(jinja2.Environment, "from_string", refuse)
    monkeypatch.setattr(jinja2.Template, "render", refuse)
    assert analyse_template(templates.CVE_2024_34359).hazards
    assert analyse_template(templates.LLAMA31_TOOLS).hazards == ()
