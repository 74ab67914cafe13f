"""The `modelshield` command: exit codes, report delivery and options, run as a user would run it."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
from click.testing import CliRunner, Result

import modelshield
from modelshield import __version__
from modelshield.cli import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_SCAN_ERROR,
    EXIT_USAGE,
    LAZY_COMMANDS,
    cli,
    exit_code_for,
)
from modelshield.engine.findings import Category, Confidence, Finding, Location, ScanIssue, Severity
from modelshield.engine.result import FileResult, FormatNode, ScanResult
from modelshield.report import REPORT_FORMATS, renderer_for

# Loading this would run `os.system("true")`; the scanner must flag it without loading it.
MALICIOUS_PICKLE = b"cos\nsystem\n(S'true'\ntR."


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelshield", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="modelshield")


def scan_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("scan", "--format", "json", *args)
    return result.exit_code, json.loads(result.stdout)


def report_schema() -> dict[str, Any]:
    text = resources.files("modelshield").joinpath("schemas/scan-result.schema.json").read_text("utf-8")
    return json.loads(text)


@pytest.fixture
def benign_pickle(tmp_path: Path) -> Path:
    path = tmp_path / "weights.pkl"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "name": "demo"}))
    return path


@pytest.fixture
def malicious_pickle(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(MALICIOUS_PICKLE)
    return path


@pytest.fixture
def model_tree(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "empty.bin").write_bytes(b"")
    (root / "README.txt").write_text("not a model\n")
    (root / "nested" / "state.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    (root / "nested" / "deeper" / "config.json").write_text('{"layers": 2}\n')
    return root


@pytest.fixture
def tree_with_escaping_link(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"secret")
    root = tmp_path / "scanned"
    root.mkdir()
    (root / "ok.txt").write_text("fine\n")
    (root / "escape.bin").symlink_to(outside / "secret.bin")
    return root


# --- as a user runs it: a subprocess of `python -m modelshield` ---------------------------------


def test_version(tmp_path: Path) -> None:
    completed = run_module("--version", cwd=tmp_path)
    assert completed.returncode == EXIT_OK
    assert completed.stdout.strip() == f"modelshield {__version__}"


def test_benign_pickle_exits_ok_with_clean_verdict(tmp_path: Path, benign_pickle: Path) -> None:
    completed = run_module("scan", benign_pickle.name, cwd=tmp_path)
    assert completed.returncode == EXIT_OK, completed.stderr
    assert "CLEAN" in completed.stdout
    assert "weights.pkl" in completed.stdout
    assert completed.stdout.rstrip().splitlines()[-1].startswith("Verdict: CLEAN")


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    completed = run_module("scan", "no-such-model.pt", cwd=tmp_path)
    assert completed.returncode == EXIT_USAGE
    assert "no such file or directory: no-such-model.pt" in completed.stderr
    assert completed.stdout == ""


def test_unknown_option_is_a_usage_error_not_clicks_2(tmp_path: Path, benign_pickle: Path) -> None:
    completed = run_module("scan", "--bogus", str(benign_pickle), cwd=tmp_path)
    assert completed.returncode == EXIT_USAGE
    assert "No such option" in completed.stderr


def test_json_to_a_pipe_has_no_progress_output(tmp_path: Path, benign_pickle: Path) -> None:
    completed = run_module("scan", "--format", "json", str(benign_pickle), cwd=tmp_path)
    assert completed.returncode == EXIT_OK
    assert completed.stderr == ""
    jsonschema.validate(json.loads(completed.stdout), report_schema())


def test_malicious_pickle_exits_with_findings(tmp_path: Path, malicious_pickle: Path) -> None:
    completed = run_module("scan", str(malicious_pickle), cwd=tmp_path)
    assert completed.returncode == EXIT_FINDINGS
    assert "MALICIOUS" in completed.stdout


# --- exit codes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", [b"", b"plain text, not a model\n", pickle.dumps({"a": 1})], ids=["empty", "text", "pickle"]
)
def test_harmless_files_exit_ok(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "file.bin"
    path.write_bytes(content)
    assert invoke("scan", str(path)).exit_code == EXIT_OK


def test_directory_is_walked_recursively(model_tree: Path) -> None:
    code, report = scan_json(str(model_tree))
    assert code == EXIT_OK
    assert sorted(Path(file["path"]).relative_to(model_tree).as_posix() for file in report["files"]) == [
        "README.txt",
        "empty.bin",
        "nested/deeper/config.json",
        "nested/state.pkl",
    ]


def test_link_leaving_the_scanned_tree_is_a_scan_error(tree_with_escaping_link: Path) -> None:
    code, report = scan_json(str(tree_with_escaping_link))
    assert code == EXIT_SCAN_ERROR
    assert report["verdict"] == "error"
    assert report["fully_scanned"] is False
    refused = next(file for file in report["files"] if file["path"].endswith("escape.bin"))
    assert refused["verdict"] == "error"
    assert "outside the scanned tree" in refused["errors"][0]["message"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_path_that_is_not_a_regular_file_is_a_scan_error(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert invoke("scan", str(fifo)).exit_code == EXIT_SCAN_ERROR


def test_text_report_of_an_unscanned_file_says_so(tree_with_escaping_link: Path) -> None:
    result = invoke("scan", str(tree_with_escaping_link))
    assert result.exit_code == EXIT_SCAN_ERROR
    assert "ERROR" in result.stdout
    assert "NOT SCANNED" in result.stdout


def test_one_missing_path_among_several_fails_before_scanning(benign_pickle: Path, tmp_path: Path) -> None:
    result = invoke("scan", "--format", "json", str(benign_pickle), str(tmp_path / "missing.pt"))
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["scan"],
        ["scan", "--format", "xml", "x"],
        ["scan", "--fail-on", "info", "x"],
        ["scan", "--output"],
        ["frobnicate"],
        ["--bogus"],
    ],
    ids=["no-paths", "bad-format", "bad-threshold", "output-without-file", "unknown-command", "bad-global"],
)
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    assert invoke(*args).exit_code == EXIT_USAGE


def test_fail_on_is_case_insensitive(benign_pickle: Path) -> None:
    assert invoke("scan", "--fail-on", "HIGH", str(benign_pickle)).exit_code == EXIT_OK


@pytest.mark.parametrize("threshold", ["critical", "high", "medium", "low"])
def test_malicious_pickle_fails_at_every_threshold(malicious_pickle: Path, threshold: str) -> None:
    code, report = scan_json("--fail-on", threshold, str(malicious_pickle))
    assert code == EXIT_FINDINGS
    assert report["verdict"] == "malicious"


def _result_with(severity: Severity | None, *, fully_scanned: bool) -> ScanResult:
    findings = ()
    if severity is not None:
        findings = (
            Finding("TEST-RULE", severity, Category.CODE_EXECUTION, Confidence.HIGH, "m", Location(("f",))),
        )
    issues = () if fully_scanned else (ScanIssue("limit", "too big", Location(("f",))),)
    file = FileResult("f", 1, None, FormatNode("f", "data", 1), findings, issues)
    return ScanResult((file,), __version__, "2026-01-01T00:00:00+00:00", 0.0)


@pytest.mark.parametrize(
    ("severity", "fully_scanned", "fail_on", "expected"),
    [
        (None, True, Severity.MEDIUM, EXIT_OK),
        (Severity.INFO, True, Severity.LOW, EXIT_OK),
        (Severity.HIGH, True, Severity.MEDIUM, EXIT_FINDINGS),
        (Severity.MEDIUM, True, Severity.MEDIUM, EXIT_FINDINGS),
        (Severity.LOW, True, Severity.MEDIUM, EXIT_OK),
        (Severity.HIGH, True, Severity.CRITICAL, EXIT_OK),
        (Severity.HIGH, False, Severity.CRITICAL, EXIT_SCAN_ERROR),
        (None, False, Severity.MEDIUM, EXIT_SCAN_ERROR),
        (Severity.CRITICAL, False, Severity.MEDIUM, EXIT_FINDINGS),
    ],
)
def test_exit_code_scheme(
    severity: Severity | None, fully_scanned: bool, fail_on: Severity, expected: int
) -> None:
    assert exit_code_for(_result_with(severity, fully_scanned=fully_scanned), fail_on) == expected


def test_exit_codes_are_distinct() -> None:
    assert len({EXIT_OK, EXIT_FINDINGS, EXIT_SCAN_ERROR, EXIT_USAGE}) == 4


# --- reports and options -----------------------------------------------------------------------


def test_json_output_validates_against_the_schema(model_tree: Path, tree_with_escaping_link: Path) -> None:
    _, report = scan_json(str(model_tree), str(tree_with_escaping_link))
    jsonschema.Draft202012Validator(report_schema()).validate(report)
    assert report["summary"]["files"] == len(report["files"]) == 6


def test_hash_is_the_sha256_of_the_file(benign_pickle: Path) -> None:
    _, report = scan_json(str(benign_pickle))
    assert report["files"][0]["sha256"] == hashlib.sha256(benign_pickle.read_bytes()).hexdigest()
    assert report["files"][0]["size"] == benign_pickle.stat().st_size


def test_no_hash_reports_null_sha256(benign_pickle: Path) -> None:
    _, report = scan_json("--no-hash", str(benign_pickle))
    assert report["files"][0]["sha256"] is None


def test_output_writes_the_report_to_a_file_and_nothing_to_stdout(
    benign_pickle: Path, tmp_path: Path
) -> None:
    target = tmp_path / "report.json"
    result = invoke("scan", "--format", "json", "--output", str(target), str(benign_pickle))
    assert result.exit_code == EXIT_OK
    assert result.stdout == ""
    jsonschema.validate(json.loads(target.read_text("utf-8")), report_schema())


def test_output_replaces_an_existing_report_and_leaves_no_temporary_files(
    benign_pickle: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    target = reports / "report.txt"
    target.write_text("old report\n")
    result = invoke("scan", "-o", str(target), str(benign_pickle))
    assert result.exit_code == EXIT_OK
    text = target.read_text("utf-8")
    assert "old report" not in text
    assert "CLEAN" in text
    assert "\x1b" not in text
    assert [path.name for path in reports.iterdir()] == ["report.txt"]


@pytest.mark.parametrize("where", ["missing-dir", "a-directory"])
def test_unwritable_output_is_a_usage_error_before_scanning(
    benign_pickle: Path, tmp_path: Path, where: str
) -> None:
    target = tmp_path / "nowhere" / "report.json" if where == "missing-dir" else tmp_path
    result = invoke("scan", "--output", str(target), str(benign_pickle))
    assert result.exit_code == EXIT_USAGE
    assert "output" in result.stderr


def test_text_report_shows_verdict_path_and_format(benign_pickle: Path) -> None:
    result = invoke("scan", str(benign_pickle))
    assert result.exit_code == EXIT_OK
    assert result.stdout.startswith("CLEAN")
    assert str(benign_pickle) in result.stdout
    assert "\x1b" not in result.stdout


def test_empty_directory_exits_ok_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke("scan", str(tmp_path / "empty"))
    assert result.exit_code == EXIT_OK
    assert "no files found" in result.stderr


def test_terminal_without_unicode_gets_a_report_not_a_crash(tmp_path: Path, benign_pickle: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "modelshield", "scan", str(benign_pickle)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        encoding="ascii",
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        timeout=120,
        check=False,
    )
    assert completed.returncode == EXIT_OK, completed.stderr
    assert "Verdict: CLEAN" in completed.stdout


@pytest.mark.parametrize("report_format", REPORT_FORMATS)
def test_every_report_format_is_offered_and_renders(benign_pickle: Path, report_format: str) -> None:
    result = invoke("scan", "--format", report_format, str(benign_pickle))
    assert result.exit_code == EXIT_OK
    assert benign_pickle.name in result.stdout
    assert benign_pickle.name in renderer_for(report_format)(modelshield.scan(benign_pickle))


def test_unknown_report_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown report format"):
        renderer_for("sarif-next")


# --- start-up: a scan imports only what a scan needs (guards a measured win without timing it) --

# Runs the command as the console script does, then prints which of the named modules it imported.
_PRINT_IMPORTS = """
import json, sys
watched = json.loads(sys.argv.pop(1))
from modelshield.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(name for name in watched if name in sys.modules)), file=sys.stderr)
"""

# Needed by other commands, a policy file or a remote address only; a local scan must not pay for them.
_NOT_FOR_A_LOCAL_SCAN = (
    "modelshield.cli_inventory",
    "modelshield.cli_rules",
    "modelshield.cli_webhook",
    "modelshield.policy.loader",
    "modelshield.connectors",
    "modelshield.inventory",
    "modelshield.remote",
    "sqlalchemy",
    "rich",
    "click.testing",
    "importlib.resources",  # the shipped allow/deny lists are read through pkgutil
    "tempfile",
)

# Besides the above, a re-scan answered from the result cache reads no TOML and runs no handler.
_NOT_FOR_A_CACHED_RESCAN = (
    *_NOT_FOR_A_LOCAL_SCAN,
    "tomllib",
    "modelshield.formats.pickle",
    "modelshield.analysis.pickle_vm",
)


def imported_modules(watched: tuple[str, ...], *args: str, cache: Path, cwd: Path | None = None) -> list[str]:
    env = {**os.environ, "MODELSHIELD_CACHE_DIR": str(cache)}
    completed = subprocess.run(
        [sys.executable, "-c", _PRINT_IMPORTS, json.dumps(watched), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=cwd,
    )
    last_line = completed.stderr.strip().splitlines()[-1]
    loaded: list[str] = json.loads(last_line)
    return loaded


def test_a_local_scan_imports_no_other_command_nor_policy_reader(benign_pickle: Path, tmp_path: Path) -> None:
    args = ("scan", "--no-hash", "--format", "json", str(benign_pickle))
    assert imported_modules(_NOT_FOR_A_LOCAL_SCAN, *args, cache=tmp_path / "cache") == []


def test_the_text_report_of_a_clean_file_imports_no_rich(benign_pickle: Path, tmp_path: Path) -> None:
    # A short path: a line longer than the report's width is wrapped, and only rich wraps.
    args = ("scan", "--no-hash", benign_pickle.name)
    loaded = imported_modules(("rich",), *args, cache=tmp_path / "cache", cwd=benign_pickle.parent)
    assert loaded == []


def test_a_rescan_answered_from_the_cache_parses_nothing(benign_pickle: Path, tmp_path: Path) -> None:
    args = ("scan", "--format", "json", str(benign_pickle))
    time.sleep(2.5)  # the result cache keeps only content that settled (unchanged for 2 s) before its scan
    imported_modules((), *args, cache=tmp_path / "cache")  # the first scan fills the cache
    assert imported_modules(_NOT_FOR_A_CACHED_RESCAN, *args, cache=tmp_path / "cache") == []


def test_a_policy_file_is_still_read(benign_pickle: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('fail_on = "high"\n', encoding="utf-8")
    args = ("scan", "--no-hash", "--policy", str(policy), str(benign_pickle))
    loaded = imported_modules(("modelshield.policy.loader",), *args, cache=tmp_path / "cache")
    assert loaded == ["modelshield.policy.loader"]


def test_help_lists_every_command_with_its_short_help() -> None:
    result = CliRunner().invoke(cli, ["--help"], prog_name="modelshield", terminal_width=200)
    assert result.exit_code == 0, result.output
    context = click.Context(cli, info_name="modelshield")
    names = cli.list_commands(context)
    assert {"scan", *LAZY_COMMANDS} == set(names)
    command_lines = result.output.split("Commands:")[1].splitlines()
    listed = dict(line.strip().split(None, 1) for line in command_lines if line)
    for name in names:
        command = cli.get_command(context, name)
        assert command is not None
        assert listed[name] == command.get_short_help_str(limit=1000)


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_every_lazy_command_resolves_to_the_command_of_that_name(name: str) -> None:
    command = cli.get_command(click.Context(cli, info_name="modelshield"), name)
    assert isinstance(command, click.Command)
    assert command.name == name


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_every_lazy_command_runs_from_the_command_line(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"], prog_name="modelshield")
    assert result.exit_code == 0, result.output
    assert f"Usage: modelshield {name}" in result.output


def test_an_unknown_command_is_still_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["nonesuch"], prog_name="modelshield")
    assert result.exit_code == EXIT_USAGE
    assert "No such command 'nonesuch'" in result.output


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_a_quick_scan_on_a_terminal_does_not_import_rich(benign_pickle: Path, tmp_path: Path) -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        env = {**os.environ, "MODELSHIELD_CACHE_DIR": str(tmp_path / "cache")}
        args = ["scan", "--no-hash", "--format", "json", "-o", str(tmp_path / "r.json"), str(benign_pickle)]
        completed = subprocess.run(
            [sys.executable, "-c", _PRINT_IMPORTS, json.dumps(["rich"]), *args],
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        os.close(terminal)
        terminal = -1
        shown = _read_all(controller)
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert completed.returncode == EXIT_OK, shown
    assert shown.strip().splitlines()[-1] == "[]"


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_scan_still_running_after_the_delay_gets_a_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    import rich.progress

    from modelshield import cli as cli_module

    shown: list[str] = []
    monkeypatch.setattr(rich.progress.Progress, "start", lambda self: shown.append("start"))
    monkeypatch.setattr(
        rich.progress.Progress, "stop", lambda self: shown.append(f"stop at {self.tasks[0].completed:g}")
    )
    file = FileResult("a.pkl", 1, None, FormatNode("a.pkl", "pickle", 1), (), ())
    with cli_module._progress_bar(3, delay=0.0) as advance:
        advance(file)
        deadline = time.monotonic() + 30
        while not shown and time.monotonic() < deadline:
            time.sleep(0.01)
        advance(file)
    assert shown == ["start", "stop at 2"]


def test_a_scan_done_before_the_delay_shows_no_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    import rich.progress

    from modelshield import cli as cli_module

    shown: list[str] = []
    monkeypatch.setattr(rich.progress.Progress, "start", lambda self: shown.append("start"))
    with cli_module._progress_bar(1, delay=60.0) as advance:
        advance(FileResult("a.pkl", 1, None, FormatNode("a.pkl", "pickle", 1), (), ()))
    assert shown == []
