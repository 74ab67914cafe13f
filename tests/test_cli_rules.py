"""`modelshield rules`: every registered rule listed, as a table or as complete JSON, and quickly."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from click.testing import CliRunner

from modelshield.cli import EXIT_OK, EXIT_USAGE, cli
from modelshield.engine.rules import build_registry, rule_document
from modelshield.rules import REGISTRY

FIELDS = {
    "id", "family", "title", "severity", "category", "confidence", "cwe", "description", "remediation",
    "references", "since", "previous_ids",
}  # fmt: skip


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["rules", *args])
    return result.exit_code, result.output


def test_text_lists_every_rule_with_its_columns() -> None:
    code, output = run()
    assert code == EXIT_OK
    lines = output.splitlines()
    assert lines[0].split() == ["ID", "SEVERITY", "CATEGORY", "CONFIDENCE", "CWE", "TITLE"]
    rows = {line.split()[0]: line for line in lines[1 : 1 + len(REGISTRY)]}
    assert sorted(rows) == sorted(REGISTRY)
    for rule_id, line in rows.items():
        rule = REGISTRY[rule_id]
        expected = [rule.id, rule.severity.value, rule.category.value, rule.confidence.value]
        assert line.split(None, 5) == [*expected, rule.cwe or "-", rule.title]
    assert f"{len(REGISTRY)} rules" in output


def test_json_carries_every_field_of_every_rule() -> None:
    code, output = run("--format", "json")
    assert code == EXIT_OK
    document = json.loads(output)
    assert [r["id"] for r in document["rules"]] == sorted(REGISTRY)
    for entry in document["rules"]:
        assert set(entry) == FIELDS
        assert entry == json.loads(json.dumps(rule_document(REGISTRY[entry["id"]])))
    assert document["redirects"] == dict(REGISTRY.redirects)  # type: ignore[attr-defined]
    assert document["tool"]["name"] == "modelshield"


def test_renamed_ids_are_shown() -> None:
    from modelshield.cli_rules import render_rules_json, render_rules_text
    from modelshield.engine.findings import Category, Severity
    from modelshield.engine.rules import Rule

    renamed = Rule("A-NEW", "t", Severity.LOW, Category.INTEGRITY, "d", "r", previous_ids=("A-OLD",))
    registry = build_registry([renamed])
    assert "A-OLD is now A-NEW" in render_rules_text(registry)
    assert json.loads(render_rules_json(registry))["redirects"] == {"A-OLD": "A-NEW"}


def test_unknown_format_is_a_usage_error() -> None:
    code, _ = run("--format", "yaml")
    assert code == EXIT_USAGE


def test_json_listing_does_not_import_rich() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "modelshield", "rules", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert json.loads(done.stdout)["rules"]  # the content is compared in-process above
    imported = {m.group(1) for m in re.finditer(r"\|\s+(\S+)\s*$", done.stderr, re.MULTILINE)}
    assert "click" in imported  # the import log was read
    assert not {name for name in imported if name == "rich" or name.startswith("rich.")}
