"""Finding fingerprints, the imports read from pickle findings, and the policy fingerprint that keys reuse."""

from __future__ import annotations

from datetime import date

from modelshield.engine.findings import Category, Confidence, Finding, Location, Severity
from modelshield.engine.limits import Limits
from modelshield.inventory.fingerprints import (
    finding_fingerprint,
    fingerprint_of,
    imported_callable,
    normalised_location,
    scan_settings_hash,
)
from modelshield.policy.model import Policy, SuppressionRule


def finding(location: Location, evidence: str = "os.system('id')") -> Finding:
    return Finding(
        "PICKLE-DANGEROUS-CALL",
        Severity.CRITICAL,
        Category.CODE_EXECUTION,
        Confidence.HIGH,
        "m",
        location,
        evidence,
    )


def test_the_location_loses_the_file_name_and_byte_positions() -> None:
    here = Location(("a/model.pt", "model/data.pkl"), offset=48, opcode_index=4, opcode="REDUCE")
    moved = Location(("b/renamed.bin", "model/data.pkl"), offset=96, opcode_index=7, opcode="REDUCE")
    elsewhere = Location(("a/model.pt", "other/data.pkl"), offset=48, opcode_index=4, opcode="REDUCE")

    assert normalised_location(here) == "model/data.pkl"
    assert normalised_location(Location(("m.onnx",), detail="node Foo")) == "node Foo"
    assert normalised_location(Location(("m.zip", "x.pkl"), detail="key k")) == "x.pkl › key k"
    assert fingerprint_of(finding(here)) == fingerprint_of(finding(moved))
    assert fingerprint_of(finding(here)) != fingerprint_of(finding(elsewhere))
    assert fingerprint_of(finding(here)) != fingerprint_of(finding(here, "os.system('ls')"))
    assert fingerprint_of(finding(here)) == finding_fingerprint(
        "PICKLE-DANGEROUS-CALL", "model/data.pkl", "os.system('id')"
    )


def test_imports_are_read_from_pickle_findings_only() -> None:
    assert imported_callable("PICKLE-DANGEROUS-CALL", "posix.system('touch /tmp/x')") == "posix.system"
    assert imported_callable("PICKLE-UNKNOWN-CALL", "mypkg.build(1, 2)") == "mypkg.build"
    assert imported_callable("PICKLE-DANGEROUS-IMPORT", "builtins.eval") == "builtins.eval"
    assert imported_callable("PICKLE-UNKNOWN-IMPORT", "mypkg.helpers.Thing") == "mypkg.helpers.Thing"
    assert imported_callable("PICKLE-UNKNOWN-CLASS", "mypkg.Net") == "mypkg.Net"
    assert imported_callable("PICKLE-UNKNOWN-CALL", "<value only known at load time>(1)") is None
    assert imported_callable("PICKLE-CODE-OBJECT", "names and constants: system") is None
    assert imported_callable("GGUF-TEMPLATE-SSTI", "os.system") is None


def test_the_policy_fingerprint_follows_what_shapes_findings() -> None:
    base = Policy()
    suppression = SuppressionRule("PICKLE-UNKNOWN-CALL", "reviewed", "p.toml:3", path="*.pkl")

    assert base.fingerprint() == Policy(source="policy.toml").fingerprint()
    assert base.fingerprint() == Policy(fail_on=Severity.CRITICAL).fingerprint()
    assert (
        len(
            {
                base.fingerprint(),
                Policy(allowed_callables=frozenset({"mypkg.Net"})).fingerprint(),
                Policy(denied_callables=frozenset({"mypkg.Net"})).fingerprint(),
                Policy(disabled_rules=frozenset({"PICKLE-UNKNOWN-CALL"})).fingerprint(),
                Policy(severity_overrides={"PICKLE-UNKNOWN-CALL": Severity.LOW}).fingerprint(),
                Policy(suppressions=(suppression,)).fingerprint(),
                Policy(
                    suppressions=(
                        SuppressionRule(
                            "PICKLE-UNKNOWN-CALL",
                            "reviewed",
                            "p.toml:3",
                            path="*.pkl",
                            expires=date(2030, 1, 1),
                        ),
                    )
                ).fingerprint(),
            }
        )
        == 7
    )
    moved = SuppressionRule("PICKLE-UNKNOWN-CALL", "reviewed", "other.toml:9", path="*.pkl")
    assert Policy(suppressions=(suppression,)).fingerprint() == Policy(suppressions=(moved,)).fingerprint()


def test_limits_other_than_the_defaults_change_the_scan_settings_hash() -> None:
    policy = Policy(disabled_rules=frozenset({"PICKLE-UNKNOWN-CALL"}))

    assert scan_settings_hash(policy) == policy.fingerprint()
    assert scan_settings_hash(policy, Limits()) == policy.fingerprint()
    tighter = scan_settings_hash(policy, Limits(max_pickle_opcodes=10))
    assert tighter not in (policy.fingerprint(), scan_settings_hash(Policy(), Limits(max_pickle_opcodes=10)))
    assert tighter == scan_settings_hash(policy, Limits(max_pickle_opcodes=10))
