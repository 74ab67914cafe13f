"""Generate docs/rules.md from the rule registry: `python -m modelshield.docs_rules [--check] [PATH]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from itertools import groupby
from pathlib import Path

from modelshield.engine.rules import Rule, RuleRegistry, rule_family

DEFAULT_PATH = Path("docs/rules.md")
REGENERATE = "python -m modelshield.docs_rules"

_HEADER = f"""\
# Rules

<!-- Generated from the rule registry by `{REGENERATE}`; do not edit by hand. -->

Every finding names the rule that produced it. A rule id is stable and never reused: when a rule is
renamed, its old id keeps resolving to the new one (see the end of this page). Severity, category and
confidence below are each rule's defaults; a finding may grade its own case up or down and says so.
`modelshield rules` lists the same rules in a terminal (`--format json` for every field).
"""


def render_rules_markdown(registry: RuleRegistry) -> str:
    """The whole page: a summary per family, then one section per rule, families and rules sorted."""
    rules = sorted(registry.values(), key=lambda rule: (rule_family(rule.id), rule.id))
    families = [
        (family, list(members)) for family, members in groupby(rules, key=lambda r: rule_family(r.id))
    ]
    parts = [_HEADER, f"{len(rules)} rules in {len(families)} families.\n"]
    for family, members in families:
        parts.append("- " + f"**{family}**: " + ", ".join(f"[`{r.id}`](#{_anchor(r.id)})" for r in members))
    parts[-1] += "\n"
    for family, members in families:
        parts.append(f"## {family}\n")
        parts.extend(_section(rule) for rule in members)
    parts.append(_redirects(registry))
    return "\n".join(parts).rstrip("\n") + "\n"


def _section(rule: Rule) -> str:
    rows = [
        ("Severity", rule.severity.value),
        ("Category", rule.category.value),
        ("Confidence", rule.confidence.value),
        ("CWE", _cwe_link(rule.cwe) if rule.cwe else "none applies"),
        ("References", ", ".join(_reference_link(ref) for ref in rule.references) or "none"),
        ("Since", rule.since),
    ]
    if rule.previous_ids:
        rows.append(("Formerly", ", ".join(f"`{old}`" for old in rule.previous_ids)))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return (
        f"### {rule.id}\n\n**{rule.title}**\n\n| | |\n|---|---|\n{table}\n\n"
        f"{rule.description}\n\n**Remediation.** {rule.remediation}\n"
    )


def _redirects(registry: RuleRegistry) -> str:
    lines = ["## Renamed ids\n"]
    if not registry.redirects:
        lines.append("No rule has been renamed yet.\n")
        return "\n".join(lines)
    lines.append("| old id | current id |\n|---|---|")
    lines.extend(
        f"| `{old}` | [`{new}`](#{_anchor(new)}) |" for old, new in sorted(registry.redirects.items())
    )
    return "\n".join(lines) + "\n"


def _anchor(rule_id: str) -> str:
    return rule_id.lower()


def _cwe_link(cwe: str) -> str:
    number = cwe.removeprefix("CWE-")
    return f"[{cwe}](https://cwe.mitre.org/data/definitions/{number}.html)"


def _reference_link(reference: str) -> str:
    if reference.startswith("CVE-"):
        return f"[{reference}](https://www.cve.org/CVERecord?id={reference})"
    if reference.startswith("GHSA-"):
        return f"[{reference}](https://github.com/advisories/{reference})"
    return f"<{reference}>"


def _registry() -> RuleRegistry:
    from modelshield.rules import REGISTRY

    if not isinstance(REGISTRY, RuleRegistry):  # pragma: no cover - build_registry always makes one
        raise TypeError("modelshield.rules.REGISTRY is not a RuleRegistry")
    return REGISTRY


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page (default docs/rules.md); with --check, exit 1 if the file on disk is out of date."""
    return generated_page_main(
        argv,
        DEFAULT_PATH,
        REGENERATE,
        __doc__,
        lambda: (render_rules_markdown(_registry()), f"{len(_registry())} rules"),
    )


def generated_page_main(
    argv: Sequence[str] | None,
    default_path: Path,
    regenerate: str,
    description: str | None,
    render: Callable[[], tuple[str, str]],
) -> int:
    """The command line of a generated docs page: write it, or with --check exit 1 when the file on
    disk differs. `render` returns the page and what it counts ("42 rules")."""
    parser = argparse.ArgumentParser(prog=regenerate, description=description)
    parser.add_argument("path", nargs="?", type=Path, default=default_path, help="default: %(default)s")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when out of date")
    args = parser.parse_args(argv)
    text, counted = render()
    path: Path = args.path
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date; regenerate it with `{regenerate}`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({counted})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
