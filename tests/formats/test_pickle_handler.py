"""The pickle handler: limits end the analysis as an issue (never clean), keeping what was seen."""

from __future__ import annotations

import pickle
from pathlib import Path

from modelshield import Verdict
from modelshield.engine.limits import Limits
from modelshield.engine.scanner import ScanOptions, scan_paths

PAYLOAD = b"cos\nsystem\n(S'true'\ntR"


def test_an_opcode_limit_is_an_issue_and_the_file_is_not_clean(tmp_path: Path) -> None:
    path = tmp_path / "big.pkl"
    path.write_bytes(pickle.dumps(list(range(5000)), protocol=4))
    result = scan_paths([path], options=ScanOptions(limits=Limits(max_pickle_opcodes=100)))
    (file,) = result.files
    assert [(i.kind, i.location.detail) for i in file.issues] == [("limit", "max_pickle_opcodes")]
    assert file.verdict is Verdict.ERROR


def test_what_ran_before_the_limit_is_still_reported(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"(" + PAYLOAD + b"0" + b"I1\n0" * 200 + b".")
    result = scan_paths([path], options=ScanOptions(limits=Limits(max_pickle_opcodes=50)))
    (file,) = result.files
    assert "PICKLE-DANGEROUS-CALL" in {f.rule_id for f in file.findings}
    assert file.verdict is Verdict.MALICIOUS
    assert file.issues and file.issues[0].kind == "limit"
