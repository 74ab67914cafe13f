"""The policy pass over real scan results: suppression by hash and by glob, expiry, re-grading, disabling."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import date
from importlib import resources
from pathlib import Path

import jsonschema

import modelshield
from modelshield.engine.findings import Severity, Suppression, Verdict
from modelshield.engine.result import ScanResult
from modelshield.policy.apply import apply_policy
from modelshield.policy.loader import load_policy
from modelshield.report.json import render_json
from modelshield.report.text import render_text

# Loading this would run `os.system("true")`; scanning only reads it.
MALICIOUS_PICKLE = b"cos\nsystem\n(S'true'\ntR."
RULE = "PICKLE-DANGEROUS-CALL"
TODAY = date(2026, 6, 1)


def policy_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy" / "policy.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def evil_file(tmp_path: Path, name: str = "evil.pkl") -> Path:
    path = tmp_path / "models" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(MALICIOUS_PICKLE)
    return path


def suppress(selector: str, reason: str = "known test fixture", extra: str = "", rule: str = RULE) -> str:
    return f'[[suppress]]\nrule = "{rule}"\nreason = "{reason}"\n{selector}\n{extra}'


def dangerous_calls(result: ScanResult) -> list[modelshield.Finding]:
    return [finding for finding in result.findings if finding.rule_id == RULE]


def test_suppression_by_sha256_marks_the_finding_and_it_no_longer_counts(tmp_path: Path) -> None:
    evil = evil_file(tmp_path)
    digest = hashlib.sha256(MALICIOUS_PICKLE).hexdigest()
    path = policy_file(tmp_path, suppress(f'sha256 = "{digest}"'))
    plain = modelshield.scan(evil)
    result = apply_policy(plain, load_policy(path), TODAY)

    (finding,) = dangerous_calls(result)
    assert finding.suppression == Suppression("known test fixture", f"{path}:1", None, False)
    assert finding.severity is Severity.CRITICAL  # still what it is; only set aside
    assert not finding.counts
    assert result.verdict is Verdict.CLEAN
    assert not result.has_findings_at_or_above(Severity.LOW)
    # The pass returns a new result; the one it was given is unchanged.
    assert dangerous_calls(plain)[0].suppression is None
    assert plain.verdict is Verdict.MALICIOUS


def test_another_files_hash_does_not_suppress(tmp_path: Path) -> None:
    evil = evil_file(tmp_path)
    path = policy_file(tmp_path, suppress(f'sha256 = "{"0" * 64}"'))
    result = modelshield.scan(evil, policy=load_policy(path))
    assert dangerous_calls(result)[0].suppression is None
    assert result.verdict is Verdict.MALICIOUS


def test_without_hashes_a_sha256_entry_cannot_match(tmp_path: Path) -> None:
    evil = evil_file(tmp_path)
    digest = hashlib.sha256(MALICIOUS_PICKLE).hexdigest()
    policy = load_policy(policy_file(tmp_path, suppress(f'sha256 = "{digest}"')))
    result = modelshield.scan(evil, policy=policy, compute_hash=False)
    assert result.verdict is Verdict.MALICIOUS


def test_suppression_needs_the_same_rule(tmp_path: Path) -> None:
    evil = evil_file(tmp_path)
    policy = load_policy(policy_file(tmp_path, suppress('path = "*"', rule="PICKLE-UNKNOWN-CALL")))
    assert modelshield.scan(evil, policy=policy).verdict is Verdict.MALICIOUS


def test_suppression_by_path_glob_on_the_reported_path(tmp_path: Path) -> None:
    evil_file(tmp_path, "fixture.pkl")
    evil_file(tmp_path, "upload.pkl")
    policy = load_policy(policy_file(tmp_path, suppress('path = "*/models/fixture.pkl"')))
    result = modelshield.scan(tmp_path / "models", policy=policy)
    by_file = {Path(file.path).name: file for file in result.files}
    assert by_file["fixture.pkl"].verdict is Verdict.CLEAN
    assert by_file["upload.pkl"].verdict is Verdict.MALICIOUS
    assert result.verdict is Verdict.MALICIOUS


def test_sha256_and_path_together_must_both_match(tmp_path: Path) -> None:
    evil = evil_file(tmp_path)
    digest = hashlib.sha256(MALICIOUS_PICKLE).hexdigest()
    wrong_path = load_policy(policy_file(tmp_path, suppress(f'sha256 = "{digest}"\npath = "*.bin"')))
    assert modelshield.scan(evil, policy=wrong_path).verdict is Verdict.MALICIOUS
    right = load_policy(policy_file(tmp_path, suppress(f'sha256 = "{digest}"\npath = "*.pkl"')))
    assert modelshield.scan(evil, policy=right).verdict is Verdict.CLEAN


def test_suppression_by_glob_on_an_archive_member_in_the_chain(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("vendor/tokenizer.pkl", MALICIOUS_PICKLE)
        archive.writestr("payload/run.pkl", MALICIOUS_PICKLE)
    path = policy_file(tmp_path, suppress('path = "vendor/*.pkl"', reason="vendored, reviewed"))
    result = modelshield.scan(bundle, policy=load_policy(path))

    members = {finding.location.chain[-1]: finding for finding in dangerous_calls(result)}
    assert set(members) == {"vendor/tokenizer.pkl", "payload/run.pkl"}
    assert members["vendor/tokenizer.pkl"].suppression is not None
    assert members["vendor/tokenizer.pkl"].suppression.reason == "vendored, reviewed"
    assert members["payload/run.pkl"].suppression is None
    assert result.verdict is Verdict.MALICIOUS  # the other member still counts

    document = json.loads(render_json(result))
    schema = json.loads(
        resources.files("modelshield").joinpath("schemas/scan-result.schema.json").read_text("utf-8")
    )
    jsonschema.Draft202012Validator(schema).validate(document)
    (suppressed,) = [f for f in document["files"][0]["findings"] if f["suppression"] is not None]
    assert suppressed["location"]["chain"] == [str(bundle), "vendor/tokenizer.pkl"]
    assert suppressed["suppression"] == {
        "reason": "vendored, reviewed",
        "source": f"{path}:1",
        "expires": None,
        "expired": False,
    }


def test_a_suppression_applies_through_its_expiry_day_and_not_after(tmp_path: Path) -> None:
    evil = evil_file(tmp_path)
    path = policy_file(tmp_path, suppress('path = "*.pkl"', extra="expires = 2026-06-01\n"))
    policy = load_policy(path)
    plain = modelshield.scan(evil)

    on_the_day = apply_policy(plain, policy, date(2026, 6, 1))
    assert dangerous_calls(on_the_day)[0].suppression == Suppression(
        "known test fixture", f"{path}:1", "2026-06-01", False
    )
    assert on_the_day.verdict is Verdict.CLEAN

    after = apply_policy(plain, policy, date(2026, 6, 2))
    (finding,) = dangerous_calls(after)
    assert finding.suppression == Suppression("known test fixture", f"{path}:1", "2026-06-01", True)
    assert finding.counts
    assert after.verdict is Verdict.MALICIOUS
    text = render_text(after)
    assert "suppression expired on 2026-06-01" in text
    assert "1 finding," in text.splitlines()[-1]


def test_an_entry_in_force_wins_over_an_expired_one(tmp_path: Path) -> None:
    evil = evil_file(tmp_path)
    text = suppress('path = "*.pkl"', reason="old", extra="expires = 2020-01-01\n") + suppress(
        'path = "*"', reason="renewed"
    )
    result = apply_policy(modelshield.scan(evil), load_policy(policy_file(tmp_path, text)), TODAY)
    suppression = dangerous_calls(result)[0].suppression
    assert suppression is not None
    assert (suppression.reason, suppression.expired) == ("renewed", False)


def test_regrading_changes_the_verdict(tmp_path: Path) -> None:
    evil = evil_file(tmp_path)
    for level, verdict in (
        ("medium", Verdict.SUSPICIOUS),
        ("low", Verdict.CLEAN),
        ("critical", Verdict.MALICIOUS),
    ):
        path = policy_file(tmp_path, f'[rules.severity]\n"{RULE}" = "{level}"\n')
        result = modelshield.scan(evil, policy=load_policy(path))
        assert [f.severity for f in dangerous_calls(result)] == [Severity(level)]
        assert result.verdict is verdict, level


def test_a_disabled_rule_is_kept_out_of_the_result(tmp_path: Path) -> None:
    evil = evil_file(tmp_path)
    policy = load_policy(policy_file(tmp_path, f'[rules]\ndisable = ["{RULE}"]\n'))
    assert dangerous_calls(modelshield.scan(evil, policy=policy)) == []
    # ...also when the pass runs over a result made under another policy.
    later = apply_policy(modelshield.scan(evil), policy, TODAY)
    assert dangerous_calls(later) == []
    assert all(finding.rule_id != RULE for finding in later.findings)


def test_callable_lists_act_during_the_scan(tmp_path: Path) -> None:
    # Calls a class of the user's own package: unknown to the shipped lists.
    own = tmp_path / "models" / "own.pkl"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"cacme_models.layers\nBlock\n(tR.")
    assert [f.rule_id for f in modelshield.scan(own).findings] == ["PICKLE-UNKNOWN-CALL"]

    allowed = load_policy(policy_file(tmp_path, '[callables]\nallow = ["acme_models.*"]\n'))
    assert modelshield.scan(own, policy=allowed).findings == ()

    denied = load_policy(policy_file(tmp_path, '[callables]\ndeny = ["acme_models.layers.Block"]\n'))
    (finding,) = modelshield.scan(own, policy=denied).findings
    assert (finding.rule_id, finding.severity) == (RULE, Severity.CRITICAL)
    assert "denied by policy" in finding.message
