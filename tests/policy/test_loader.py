"""Policy files: what a valid file becomes, and how every invalid one is refused with file, line and key."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

import modelshield
from modelshield.engine.findings import Severity
from modelshield.errors import PolicyError
from modelshield.policy.loader import load_policy
from modelshield.policy.model import Policy

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "policy-example.toml"
SHA = "ab" * 32


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_example_loads_with_every_section() -> None:
    policy = modelshield.load_policy(EXAMPLE)
    assert policy.fail_on is Severity.HIGH
    assert policy.disabled_rules == {"ZIP-TRAILING-DATA"}
    assert dict(policy.severity_overrides) == {
        "PICKLE-UNKNOWN-IMPORT": Severity.LOW,
        "NUMPY-APPENDED-DATA": Severity.INFO,
    }
    assert policy.allowed_callables == {"acme_models.layers.*", "acme_models.tokenizer.Tokenizer"}
    assert policy.denied_callables == {"acme_models.legacy.run_hook"}
    assert policy.denied_tensorflow_ops == {"ReadFile", "WriteFile"}
    assert policy.allowed_hydra_targets == {"acme_models.*"}
    first, second = policy.suppressions
    assert (first.rule, first.sha256, first.path, first.expires) == (
        "PICKLE-UNKNOWN-CALL",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        None,
        None,
    )
    assert (second.rule, second.path, second.expires) == (
        "PICKLE-UNKNOWN-IMPORT",
        "*/tokenizer/*.pkl",
        date(2026, 12, 31),
    )
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for entry in policy.suppressions:
        file_name, line = entry.source.rsplit(":", 1)
        assert file_name == str(EXAMPLE)
        assert lines[int(line) - 1].strip() == "[[suppress]]"


def test_a_minimal_file_keeps_every_other_default(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, 'fail_on = "Critical"\n'))
    assert policy == Policy(fail_on=Severity.CRITICAL, source=str(tmp_path / "policy.toml"))


def test_suppression_hash_is_normalised_and_reason_kept(tmp_path: Path) -> None:
    text = '[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\nreason = " known fixture "\n'
    text += f'sha256 = "{SHA.upper()}"\n'
    (entry,) = load_policy(write(tmp_path, text)).suppressions
    assert entry.sha256 == SHA
    assert entry.reason == "known fixture"
    assert entry.source == f"{tmp_path / 'policy.toml'}:1"


def test_the_policy_is_immutable(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, '[rules.severity]\n"PICKLE-UNKNOWN-CALL" = "low"\n'))
    with pytest.raises(TypeError):
        policy.severity_overrides["PICKLE-UNKNOWN-CALL"] = Severity.HIGH  # type: ignore[index]


SUPPRESS_OK = '[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\nreason = "fixture"\npath = "*.pkl"\n'

# (policy text, line the error must name, key the error must name, words the message must contain)
INVALID = [
    pytest.param('fial_on = "high"\n', 1, "fial_on", "unknown key", id="typo-top-level"),
    pytest.param('fail_on = "info"\n', 1, "fail_on", "must be one of", id="fail-on-info"),
    pytest.param("fail_on = 3\n", 1, "fail_on", "must be a string", id="fail-on-number"),
    pytest.param(
        '\n[rules]\ndisabel = ["ZIP-BAD-CRC"]\n', 3, "rules.disabel", "unknown key", id="rules-typo"
    ),
    pytest.param(
        '[rules]\ndisable = ["ZIP-BAD-CRC", "NO-SUCH-RULE"]\n',
        2,
        "rules.disable",
        "unknown rule id 'NO-SUCH-RULE'",
        id="disable-unknown-rule",
    ),
    pytest.param('[rules]\ndisable = "ZIP-BAD-CRC"\n', 2, "rules.disable", "array", id="disable-not-list"),
    pytest.param(
        '[rules]\n\n[rules.severity]\n"NOPE" = "low"\n',
        4,
        "rules.severity.NOPE",
        "unknown rule id",
        id="regrade-unknown",
    ),
    pytest.param(
        '[rules.severity]\nZIP-BAD-CRC = "urgent"\n',
        2,
        "rules.severity.ZIP-BAD-CRC",
        "must be one of",
        id="bad-level",
    ),
    pytest.param(
        '[rules]\ndisable = ["ZIP-BAD-CRC"]\nseverity = { ZIP-BAD-CRC = "low" }\n',
        3,
        "rules.severity.ZIP-BAD-CRC",
        "also disabled",
        id="disabled-and-regraded",
    ),
    pytest.param('[callables]\nalow = ["a.b"]\n', 2, "callables.alow", "unknown key", id="callables-typo"),
    pytest.param(
        '[callables]\nallow = ["ok.name", "not a name"]\n',
        2,
        "callables.allow",
        "not a qualified name",
        id="bad-name",
    ),
    pytest.param(
        '[callables]\ndeny = ["pkg.*.x"]\n', 2, "callables.deny", "not a qualified name", id="mid-star"
    ),
    pytest.param(
        "[tensorflow_ops]\nallow = [1]\n", 2, "tensorflow_ops.allow", "must be a string", id="tf-not-str"
    ),
    pytest.param(
        '[hydra_targets]\nreject = ["a.b"]\n', 2, "hydra_targets.reject", "unknown key", id="hydra-typo"
    ),
    pytest.param('callables = "x"\n', 1, "callables", "must be a table", id="section-not-table"),
    pytest.param(
        '[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\npath = "*.pkl"\n',
        1,
        "suppress[1].reason",
        "is required",
        id="no-reason",
    ),
    pytest.param(
        '[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\nreason = "  "\npath = "*.pkl"\n',
        3,
        "suppress[1].reason",
        "must not be empty",
        id="empty-reason",
    ),
    pytest.param(
        '[[suppress]]\nreason = "r"\npath = "*.pkl"\n', 1, "suppress[1].rule", "is required", id="no-rule"
    ),
    pytest.param(
        '[[suppress]]\nrule = "PICKLE-DANGEROUS-CAL"\nreason = "r"\npath = "*"\n',
        2,
        "suppress[1].rule",
        "unknown rule id 'PICKLE-DANGEROUS-CAL'",
        id="suppress-unknown-rule",
    ),
    pytest.param(
        '[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\nreason = "r"\n',
        1,
        "suppress[1]",
        "needs sha256 or path",
        id="no-selector",
    ),
    pytest.param(
        '[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\nreason = "r"\nsha256 = "abc"\n',
        4,
        "suppress[1].sha256",
        "64 hexadecimal",
        id="short-hash",
    ),
    pytest.param(
        '[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\nreason = "r"\npath = ""\n',
        4,
        "suppress[1].path",
        "empty",
        id="empty-glob",
    ),
    pytest.param(
        SUPPRESS_OK + 'expires = "2026-12-31"\n', 5, "suppress[1].expires", "TOML date", id="expires-string"
    ),
    pytest.param(
        SUPPRESS_OK + "expires = 2026-12-31T00:00:00\n",
        5,
        "suppress[1].expires",
        "date-time",
        id="expires-datetime",
    ),
    pytest.param(SUPPRESS_OK + 'paht = "x"\n', 5, "suppress[1].paht", "unknown key", id="suppress-typo"),
    pytest.param(
        SUPPRESS_OK + '\n[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\nreason = ""\npath = "*"\n',
        8,
        "suppress[2].reason",
        "must not be empty",
        id="second-entry",
    ),
    pytest.param('suppress = ["x"]\n', 1, "suppress[1]", "must be a table", id="suppress-not-tables"),
    pytest.param('fail_on = "high"\nfail_on = "low"\n', 2, "fail_on", "invalid TOML", id="duplicate-key"),
    pytest.param(
        '[rules]\ndisable = ["ZIP-BAD-CRC"\n', 2, "disable", "invalid TOML", id="syntax-unclosed-array"
    ),
    pytest.param("fail_on = medium\n", 1, "fail_on", "invalid TOML", id="syntax-bare-value"),
]


@pytest.mark.parametrize(("text", "line", "key", "words"), INVALID)
def test_an_invalid_file_is_refused_naming_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert key in message
    assert words in message


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing here\n")
    with pytest.raises(PolicyError, match=re.escape(f"{path}: policy file sets nothing")):
        load_policy(path)


def test_a_missing_file_or_a_directory_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy(tmp_path / "absent.toml")
    with pytest.raises(PolicyError, match="is a directory"):
        load_policy(tmp_path)


def test_a_file_that_is_not_utf8_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b'fail_on = "\xff"\n')
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(path)


def test_key_lines_skip_multiline_strings_and_follow_quoted_keys(tmp_path: Path) -> None:
    text = (
        '[[suppress]]\nrule = "PICKLE-DANGEROUS-CALL"\n'
        'reason = """\nfail_on = "not a key"\n"""\npath = "*"\n'
        '\n[rules.severity]\n"PICKLE-UNKNOWN-CALL" = "low"\n"ZIP-BAD-CRC" = "none"\n'
    )
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}:10: rules.severity.ZIP-BAD-CRC: ")
