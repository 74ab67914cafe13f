"""`modelshield scan --policy FILE`: exit codes, reports, and a policy is never picked up by itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from modelshield.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, cli

# Loading this would run `os.system("true")`; the scanner must flag it without loading it.
MALICIOUS_PICKLE = b"cos\nsystem\n(S'true'\ntR."
RULE = "PICKLE-DANGEROUS-CALL"
SUPPRESS_ALL = f'[[suppress]]\nrule = "{RULE}"\nreason = "planted by the attacker"\npath = "*"\n'


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["scan", *args])


@pytest.fixture
def models(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    (directory / "evil.pkl").write_bytes(MALICIOUS_PICKLE)
    return directory


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_suppression_passes_the_gate_and_the_json_keeps_its_reason(tmp_path: Path, models: Path) -> None:
    policy = write_policy(
        tmp_path, SUPPRESS_ALL.replace("planted by the attacker", "CI fixture, never loaded")
    )
    assert run(str(models)).exit_code == EXIT_FINDINGS

    result = run(str(models), "--policy", str(policy), "--format", "json")
    assert result.exit_code == EXIT_OK, result.output
    document = json.loads(result.stdout)
    assert document["verdict"] == "clean"
    assert document["summary"]["findings"] == 0
    assert document["summary"]["by_severity"]["critical"] == 0
    (finding,) = [f for f in document["files"][0]["findings"] if f["rule_id"] == RULE]
    assert finding["severity"] == "critical"
    assert finding["suppression"] == {
        "reason": "CI fixture, never loaded",
        "source": f"{policy}:1",
        "expires": None,
        "expired": False,
    }


def test_the_text_report_marks_suppressed_findings_and_leaves_them_out_of_the_count(
    tmp_path: Path, models: Path
) -> None:
    policy = write_policy(tmp_path, SUPPRESS_ALL.replace("planted by the attacker", "CI fixture"))
    result = run(str(models), "--policy", str(policy))
    assert result.exit_code == EXIT_OK
    # Long temporary paths wrap; read the report as one line of words.
    words = " ".join(result.stdout.split())
    assert f"{RULE} " in words
    assert "[suppressed] suppressed: CI fixture (" in words
    assert words.endswith(" s") and "0 findings, 1 suppressed," in words.split("Verdict: ")[-1]


def test_an_expired_suppression_fails_the_gate_again_and_says_so(tmp_path: Path, models: Path) -> None:
    policy = write_policy(tmp_path, SUPPRESS_ALL + "expires = 2000-01-01\n")
    result = run(str(models), "--policy", str(policy), "--format", "json")
    assert result.exit_code == EXIT_FINDINGS
    (finding,) = [f for f in json.loads(result.stdout)["files"][0]["findings"] if f["rule_id"] == RULE]
    assert finding["suppression"]["expired"] is True
    text = run(str(models), "--policy", str(policy)).stdout
    assert "suppression expired on 2000-01-01" in text


def test_regrading_changes_the_exit_code(tmp_path: Path, models: Path) -> None:
    policy = write_policy(tmp_path, f'[rules.severity]\n"{RULE}" = "low"\n')
    assert run(str(models), "--policy", str(policy)).exit_code == EXIT_OK
    assert run(str(models), "--policy", str(policy), "--fail-on", "low").exit_code == EXIT_FINDINGS


def test_disabling_a_rule_keeps_its_findings_out_of_the_report(tmp_path: Path, models: Path) -> None:
    policy = write_policy(tmp_path, f'[rules]\ndisable = ["{RULE}"]\n')
    result = run(str(models), "--policy", str(policy), "--format", "json")
    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout)["files"][0]["findings"] == []


def test_fail_on_comes_from_the_file_unless_the_command_line_gives_it(tmp_path: Path, models: Path) -> None:
    policy = write_policy(tmp_path, f'fail_on = "critical"\n[rules.severity]\n"{RULE}" = "high"\n')
    assert run(str(models), "--policy", str(policy)).exit_code == EXIT_OK
    assert run(str(models), "--policy", str(policy), "--fail-on", "high").exit_code == EXIT_FINDINGS
    strict = write_policy(tmp_path, f'fail_on = "low"\n[rules.severity]\n"{RULE}" = "low"\n')
    assert run(str(models), "--policy", str(strict)).exit_code == EXIT_FINDINGS
    assert run(str(models), "--policy", str(strict), "--fail-on", "medium").exit_code == EXIT_OK


def test_an_invalid_policy_exits_with_the_usage_code_naming_line_and_key(
    tmp_path: Path, models: Path
) -> None:
    policy = write_policy(tmp_path, '[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\nreason = ""\npath = "*"\n')
    result = run(str(models), "--policy", str(policy))
    assert result.exit_code == EXIT_USAGE
    assert f"modelshield: error: {policy}:3: suppress[1].reason: must not be empty" in result.stderr
    assert result.stdout == ""  # nothing was judged


def test_a_missing_policy_exits_with_the_usage_code(tmp_path: Path, models: Path) -> None:
    result = run(str(models), "--policy", str(tmp_path / "nope.toml"))
    assert result.exit_code == EXIT_USAGE
    assert "policy file not found" in result.stderr


@pytest.mark.parametrize("name", ["policy.toml", "modelshield.toml", ".modelshield.toml", "pyproject.toml"])
def test_a_policy_inside_the_scanned_tree_is_never_used_unless_passed(models: Path, name: str) -> None:
    planted = models / name
    planted.write_text(SUPPRESS_ALL + f'\n[rules]\ndisable = ["{RULE}"]\n', encoding="utf-8")
    result = run(str(models), "--format", "json")
    assert result.exit_code == EXIT_FINDINGS
    document = json.loads(result.stdout)
    assert document["verdict"] == "malicious"
    findings = [f for file in document["files"] for f in file["findings"] if f["rule_id"] == RULE]
    assert [f["suppression"] for f in findings] == [None]
    # The same file does take effect when the user names it: it was ignored, not unreadable.
    assert run(str(models), "--policy", str(planted)).exit_code == EXIT_OK
