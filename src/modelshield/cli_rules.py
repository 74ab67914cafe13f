"""The `modelshield rules` command: every rule the scanner can report, as a table or as JSON."""

from __future__ import annotations

import json

import click

from modelshield.engine.rules import Rule, RuleRegistry, rule_document

RULES_FORMATS = ("text", "json")
_COLUMNS = ("ID", "SEVERITY", "CATEGORY", "CONFIDENCE", "CWE", "TITLE")


def _registry() -> RuleRegistry:
    from modelshield.rules import REGISTRY

    if not isinstance(REGISTRY, RuleRegistry):  # pragma: no cover - build_registry always makes one
        raise TypeError("modelshield.rules.REGISTRY is not a RuleRegistry")
    return REGISTRY


def sorted_rules(registry: RuleRegistry) -> list[Rule]:
    """Rules in a stable order: by id, so families stay together."""
    return sorted(registry.values(), key=lambda rule: rule.id)


def render_rules_text(registry: RuleRegistry) -> str:
    """One aligned line per rule (id, severity, category, confidence, CWE, title), then the redirects."""
    rows = [_COLUMNS] + [_row(rule) for rule in sorted_rules(registry)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS) - 1)]
    lines = [_line(row, widths) for row in rows]
    lines.append("")
    lines.append(f"{len(registry)} rules. Details: docs/rules.md or `modelshield rules --format json`.")
    for old, new in sorted(registry.redirects.items()):
        lines.append(f"{old} is now {new}")
    return "\n".join(lines) + "\n"


def _line(row: tuple[str, ...], widths: list[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
    return "  ".join([*padded, row[-1]])


def _row(rule: Rule) -> tuple[str, ...]:
    confidence = rule.confidence.value
    return (rule.id, rule.severity.value, rule.category.value, confidence, rule.cwe or "-", rule.title)


def render_rules_json(registry: RuleRegistry) -> str:
    """Every field of every rule, plus the renamed ids and where they lead."""
    from modelshield import __version__

    document = {
        "tool": {"name": "modelshield", "version": __version__},
        "rules": [rule_document(rule) for rule in sorted_rules(registry)],
        "redirects": dict(sorted(registry.redirects.items())),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@click.command("rules")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(RULES_FORMATS),
    default="text",
    show_default=True,
    help="Output format: an aligned table, or JSON with every field of every rule.",
)
def rules_command(output_format: str) -> None:
    """List every rule: id, severity, category, confidence, CWE and title."""
    registry = _registry()
    if output_format == "json":
        click.echo(render_rules_json(registry), nl=False)
    else:
        click.echo(render_rules_text(registry), nl=False)
