"""The text report: readable without color, complete, and safe to print whatever a file contains."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

from hypothesis import example, given, settings
from hypothesis import strategies as st

from modelshield.engine.findings import Location, ScanIssue
from modelshield.engine.result import FileResult, FormatNode, ScanResult
from modelshield.report.text import human_size, printable, render_text, render_text_with_rich
from modelshield.rules.pickle import DANGEROUS_CALL

DANGEROUS = DANGEROUS_CALL.at(
    Location(("model.pt", "archive/data.pkl"), opcode_index=4, opcode="REDUCE"),
    "os.system is called when the pickle is loaded",
    evidence="os.system('true')",
)
MALICIOUS_FILE = FileResult(
    path="model.pt",
    size=2048,
    sha256="0123456789abcdef" * 4,
    tree=FormatNode("model.pt", "zip", 2048, (FormatNode("archive/data.pkl", "pickle", 300),)),
    findings=(DANGEROUS,),
    issues=(ScanIssue("limit", "member too large", Location(("model.pt", "archive/big.bin"))),),
)
CLEAN_FILE = FileResult("ok.npy", 128, None, FormatNode("ok.npy", "numpy", 128), (), ())


def make_result(*files: FileResult) -> ScanResult:
    return ScanResult(files, "0.1.0", "2026-01-01T00:00:00+00:00", 0.25)


def test_plain_text_has_no_escape_sequences() -> None:
    text = render_text(make_result(MALICIOUS_FILE, CLEAN_FILE))
    assert "\x1b" not in text


def test_color_output_is_styled() -> None:
    assert "\x1b[" in render_text(make_result(MALICIOUS_FILE), color=True)


def test_file_block_shows_verdict_path_short_hash_and_format_tree() -> None:
    text = render_text(make_result(MALICIOUS_FILE, CLEAN_FILE))
    assert "MALICIOUS  model.pt" in text
    assert "sha256 0123456789ab…" in text
    assert "zip model.pt" in text
    assert "└── pickle archive/data.pkl" in text
    assert "CLEAN      ok.npy" in text
    assert "sha256 not computed" in text


def test_finding_shows_severity_rule_message_location_evidence_and_remediation() -> None:
    text = render_text(make_result(MALICIOUS_FILE), width=400)
    assert "CRITICAL PICKLE-DANGEROUS-CALL  os.system is called when the pickle is loaded" in text
    assert f"at:          {DANGEROUS.location.render()}" in text
    assert "evidence:    os.system('true')" in text
    assert f"remediation: {DANGEROUS_CALL.remediation}" in text


def test_issues_are_shown_as_not_scanned() -> None:
    text = render_text(make_result(MALICIOUS_FILE))
    assert "NOT SCANNED (limit)  member too large" in text
    assert "model.pt › archive/big.bin" in text


def test_summary_line_gives_overall_verdict_and_counts() -> None:
    last_line = render_text(make_result(MALICIOUS_FILE, CLEAN_FILE)).rstrip("\n").splitlines()[-1]
    assert last_line.startswith("Verdict: MALICIOUS — 2 files (1 malicious, 0 suspicious, 0 error, 1 clean)")
    assert "1 finding," in last_line


def test_no_line_ends_in_blanks() -> None:
    text = render_text(make_result(MALICIOUS_FILE, CLEAN_FILE))
    assert all(line == line.rstrip() for line in text.splitlines())


def test_terminal_controls_in_scanned_content_are_escaped() -> None:
    hostile = "evil\x1b]0;owned\x07\u202e.pkl"
    file = FileResult(hostile, 1, None, FormatNode(hostile, "data", 1), (), ())
    text = render_text(make_result(file))
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert printable(hostile) in text
    assert printable(hostile) == "evil\\u001b]0;owned\\u0007\\u202e.pkl"


def test_line_breaks_in_scanned_content_cannot_fake_report_lines() -> None:
    hostile = "evil.pkl\nCLEAN      trusted.pkl"
    file = FileResult(hostile, 1, None, FormatNode(hostile, "data", 1), (), ())
    text = render_text(make_result(file))
    assert not any(line.startswith("CLEAN      trusted.pkl") for line in text.splitlines())
    assert "evil.pkl\\nCLEAN" in text


def test_undecodable_file_names_do_not_break_output() -> None:
    name = "weights-\udcff.bin"
    file = FileResult(name, 1, None, FormatNode(name, "data", 1), (), ())
    text = render_text(make_result(file))
    text.encode("utf-8")
    assert "weights-\\udcff.bin" in text


def test_a_result_from_the_result_cache_says_so() -> None:
    cached = FileResult("ok.npy", 128, None, FormatNode("ok.npy", "numpy", 128), (), (), from_cache=True)
    assert "ok.npy  128 B  sha256 not computed  (result cache)" in render_text(make_result(cached))
    assert "(result cache)" not in render_text(make_result(CLEAN_FILE))
    flagged = replace(cached, findings=MALICIOUS_FILE.findings)
    assert "(result cache)" in render_text(make_result(flagged))


def test_human_size() -> None:
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(5 * 1024**3) == "5.0 GiB"
    assert human_size(5 * 1024**4) == "5120.0 GiB"


# --- clean reports are written without rich, exactly as rich writes them ---------------------------

_ASCII_NAMES = st.text(alphabet="abcdefghij/._- ", max_size=20)
_ANY_NAMES = st.one_of(
    _ASCII_NAMES,
    st.text(max_size=12),  # anything: non-ASCII, wide and control characters send it to rich
    st.text(alphabet="x", min_size=60, max_size=140),  # lines that rich would wrap
)


def _trees(names: st.SearchStrategy[str], depth: int = 3) -> st.SearchStrategy[FormatNode]:
    formats = st.sampled_from(("pickle", "zip", "numpy"))
    leaf = st.builds(FormatNode, names, formats, st.integers(0, 1 << 33))
    if depth == 0:
        return leaf
    children = st.lists(_trees(names, depth - 1), max_size=3).map(tuple)
    return st.one_of(leaf, st.builds(FormatNode, names, formats, st.integers(0, 1 << 40), children))


def _clean_files(names: st.SearchStrategy[str]) -> st.SearchStrategy[FileResult]:
    sha256 = st.one_of(st.none(), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
    return st.builds(
        FileResult,
        names,
        st.integers(0, 1 << 40),
        sha256,
        _trees(names),
        st.just(()),
        st.just(()),
        from_cache=st.booleans(),
    )


_DEEP = FormatNode(
    "a", "tar", 9, (FormatNode("b", "zip", 5, (FormatNode("c", "pickle", 1),)), FormatNode("d", "zip", 2))
)
_DEEP_LAST = FormatNode("a", "tar", 9, (_DEEP.children[1], _DEEP.children[0]))


@settings(max_examples=300, deadline=None)
@given(
    files=st.one_of(
        st.lists(_clean_files(_ASCII_NAMES), max_size=3), st.lists(_clean_files(_ANY_NAMES), max_size=2)
    ),
    seconds=st.floats(0, 1e5),
    color=st.booleans(),
    width=st.one_of(st.just(100), st.integers(20, 200)),
)
@example(files=[CLEAN_FILE], seconds=0.25, color=True, width=100)
@example(files=[FileResult("m.tar", 9, None, _DEEP, (), ())], seconds=0.0, color=True, width=100)
@example(files=[FileResult("m.tar", 9, None, _DEEP_LAST, (), ())], seconds=0.0, color=True, width=100)
def test_a_clean_report_reads_exactly_as_rich_writes_it(
    files: list[FileResult], seconds: float, color: bool, width: int
) -> None:
    result = ScanResult(tuple(files), "0.1.0", "2026-01-01T00:00:00+00:00", seconds)
    assert render_text(result, color=color, width=width) == render_text_with_rich(
        result, color=color, width=width
    )


def test_a_report_with_findings_is_still_laid_out_by_rich() -> None:
    result = make_result(MALICIOUS_FILE, CLEAN_FILE)
    assert render_text(result, color=True) == render_text_with_rich(result, color=True)


def test_a_clean_report_does_not_import_rich() -> None:
    code = (
        "import sys\n"
        "from modelshield.engine.result import FileResult, FormatNode, ScanResult\n"
        "from modelshield.report.text import render_text\n"
        "tree = FormatNode('m.pt', 'pytorch', 9, (FormatNode('data.pkl', 'pickle', 5),))\n"
        "result = ScanResult((FileResult('m.pt', 9, None, tree, (), ()),), '0.1.0', 'now', 0.5)\n"
        "render_text(result, color=True)\n"
        "print('rich' in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout == "False\n"
