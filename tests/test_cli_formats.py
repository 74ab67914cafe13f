"""`scan --format … --output …` repeated: each report goes where its own --output says, validated up front."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from modelshield.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, cli, report_targets
from modelshield.errors import UsageError

MALICIOUS_PICKLE = b"cos\nsystem\n(S'true'\ntR."


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="modelshield")


@pytest.fixture
def evil(tmp_path: Path) -> Path:
    path = tmp_path / "evil.pkl"
    path.write_bytes(MALICIOUS_PICKLE)
    return path


def test_three_formats_two_files_and_stdout(tmp_path: Path, evil: Path) -> None:
    report_json, report_sarif = tmp_path / "r.json", tmp_path / "r.sarif"
    result = invoke(
        "scan", str(evil), "--format", "json", "-o", str(report_json),
        "--format", "sarif", "-o", str(report_sarif), "--format", "text",
    )  # fmt: skip
    assert result.exit_code == EXIT_FINDINGS, result.stderr
    assert json.loads(report_json.read_text())["verdict"] == "malicious"
    sarif = json.loads(report_sarif.read_text())
    assert sarif["runs"][0]["results"][0]["ruleId"] == "PICKLE-DANGEROUS-CALL"
    assert result.stdout.startswith("MALICIOUS")
    assert f"report written to {report_json}" in result.stderr
    assert f"report written to {report_sarif}" in result.stderr


@pytest.mark.parametrize("report_format", ["sarif", "html", "junit"])
def test_new_formats_render_to_stdout(evil: Path, report_format: str) -> None:
    result = invoke("scan", "--format", report_format, str(evil))
    assert result.exit_code == EXIT_FINDINGS, result.stderr
    assert "PICKLE-DANGEROUS-CALL" in result.stdout


def test_html_and_junit_files_with_json_on_stdout(tmp_path: Path, evil: Path) -> None:
    page, junit = tmp_path / "r.html", tmp_path / "r.xml"
    result = invoke(
        "scan", "--format", "html", "--output", str(page), "--format", "json",
        "--format", "junit", "--output", str(junit), str(evil),
    )  # fmt: skip
    assert result.exit_code == EXIT_FINDINGS, result.stderr
    assert json.loads(result.stdout)["verdict"] == "malicious"
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert ET.fromstring(junit.read_text()).attrib["failures"] == "1"


@pytest.mark.parametrize(
    "args",
    [
        ["-o", "out.json", "--format", "json"],
        ["--output", "out.json", "--format", "json"],
        ["--format", "json", "-o", "out.json"],
    ],
)
def test_single_format_and_output_pair_in_either_order(tmp_path: Path, evil: Path, args: list[str]) -> None:
    args = [str(tmp_path / a) if a == "out.json" else a for a in args]
    result = invoke("scan", *args, str(evil))
    assert result.exit_code == EXIT_FINDINGS, result.stderr
    assert result.stdout == ""
    assert json.loads((tmp_path / "out.json").read_text())["verdict"] == "malicious"


def test_output_without_format_is_the_text_report(tmp_path: Path, evil: Path) -> None:
    target = tmp_path / "report.txt"
    result = invoke("scan", "-o", str(target), str(evil))
    assert result.exit_code == EXIT_FINDINGS
    assert target.read_text().startswith("MALICIOUS")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "json", "--format", "text"], "at most one report can go to standard output"),
        (["--format", "json", "--format", "sarif", "--format", "html", "-o", "a"], "json and sarif"),
        (["-o", "a", "--format", "json", "--format", "text"], "comes before any --format"),
        (["--format", "json", "-o", "a", "-o", "b"], "already goes to"),
        (["--format", "json", "-o", "a", "--format", "sarif", "-o", "a"], "the same file"),
        (["--format", "json", "-o", "a", "--format", "xml"], "Invalid value for '--format'"),
    ],
    ids=["two-to-stdout", "three-to-stdout", "output-first", "two-outputs-one-format", "same-file", "bad"],
)
def test_bad_combinations_are_usage_errors_before_scanning(
    tmp_path: Path, evil: Path, args: list[str], message: str
) -> None:
    args = [str(tmp_path / a) if a in {"a", "b"} else a for a in args]
    result = invoke("scan", *args, str(evil))
    assert result.exit_code == EXIT_USAGE
    assert message in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unwritable_second_output_fails_before_any_report(tmp_path: Path, evil: Path) -> None:
    first = tmp_path / "r.json"
    result = invoke(
        "scan", "--format", "json", "-o", str(first),
        "--format", "sarif", "-o", str(tmp_path / "missing" / "r.sarif"), str(evil),
    )  # fmt: skip
    assert result.exit_code == EXIT_USAGE
    assert "output directory does not exist" in result.stderr
    assert not first.exists()


def test_same_format_to_two_files(tmp_path: Path, evil: Path) -> None:
    a, b = tmp_path / "a.sarif", tmp_path / "b.sarif"
    result = invoke("scan", "--format", "sarif", "-o", str(a), "--format", "sarif", "-o", str(b), str(evil))
    assert result.exit_code == EXIT_FINDINGS, result.stderr
    assert a.read_text() == b.read_text()


def test_pairing_follows_command_line_order() -> None:
    order = ["report_format", "report_format", "output", "report_format", "output"]
    assert report_targets(order, ("text", "json", "html"), ("r.json", "r.html")) == [
        ("text", None),
        ("json", "r.json"),
        ("html", "r.html"),
    ]
    assert report_targets(None, (), ()) == [("text", None)]
    with pytest.raises(UsageError):
        report_targets(None, ("json", "html"), ("a",))


def test_clean_scan_with_every_format_exits_ok(tmp_path: Path) -> None:
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(b"\x80\x04K\x01.")
    names = ("json", "sarif", "html", "junit")
    args = []
    for name in names:
        args += ["--format", name, "-o", str(tmp_path / f"report.{name}")]
    result = invoke("scan", *args, "--format", "text", str(clean))
    assert result.exit_code == EXIT_OK, result.stderr
    assert all((tmp_path / f"report.{name}").stat().st_size > 0 for name in names)


def test_json_only_scan_does_not_import_the_other_renderers(tmp_path: Path, evil: Path) -> None:
    code = (
        "import sys\n"
        "from modelshield.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in ('rich', 'modelshield.report.sarif', 'modelshield.report.html',"
        " 'modelshield.report.junit') if m in sys.modules]\n"
        "print(loaded, file=sys.stderr)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, "scan", "--format", "json", "-o", str(tmp_path / "r.json"), str(evil)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.stderr.strip().splitlines()[-1] == "[]"
