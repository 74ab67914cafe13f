"""The GitHub Action: its structure, and its scan step's script run for real outside GitHub."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.samples import pickles as pk

REPO_ROOT = Path(__file__).resolve().parents[1]


def action() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "action.yml").read_text(encoding="utf-8"))
    return document


def step(name: str) -> dict[str, Any]:
    (found,) = [s for s in action()["runs"]["steps"] if s.get("name") == name]
    return found


def test_inputs_and_defaults() -> None:
    inputs = action()["inputs"]
    assert {name: spec.get("default") for name, spec in inputs.items()} == {
        "path": ".",
        "fail-on": "medium",
        "sarif-file": "modelshield.sarif",
        "version": "",
        "python-version": "3.12",
        "upload-sarif": "true",
    }
    assert all(spec.get("description") for spec in inputs.values())
    assert action()["outputs"]["exit-code"]["value"] == "${{ steps.scan.outputs.exit-code }}"


def test_composite_steps_install_scan_upload_and_exit() -> None:
    runs = action()["runs"]
    assert runs["using"] == "composite"
    names = [s["name"] for s in runs["steps"]]
    assert names == [
        "Set up Python",
        "Install modelshield",
        "Scan",
        "Upload SARIF",
        "Exit with the scan's exit code",
    ]
    assert step("Set up Python")["uses"] == "actions/setup-python@v5"
    install = step("Install modelshield")
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert '"${MODELSHIELD_SPEC:-$ACTION_PATH}"' in install["run"]
    assert '--format sarif --output "$SARIF_FILE"' in step("Scan")["run"]
    upload = step("Upload SARIF")
    assert upload["uses"] == "github/codeql-action/upload-sarif@v3"
    assert upload["if"].startswith("always()")
    assert upload["with"]["sarif_file"] == "${{ inputs.sarif-file }}"
    exit_step = step("Exit with the scan's exit code")
    assert exit_step["if"].startswith("always()")
    assert exit_step["run"] == 'exit "$EXIT_CODE"'


def test_inputs_never_reach_a_script_as_text() -> None:
    # `${{ inputs.x }}` inside `run:` is spliced into the script before bash sees it: script injection.
    for s in action()["runs"]["steps"]:
        assert "${{" not in s.get("run", ""), s["name"]
        if "run" in s:
            assert s["shell"] == "bash"


def run_scan_step(workspace: Path, scan_path: str) -> dict[str, str]:
    output = workspace / "github_output"
    output.write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SCAN_PATH": scan_path,
        "FAIL_ON": "medium",
        "SARIF_FILE": "modelshield.sarif",
        "GITHUB_OUTPUT": str(output),
    }
    done = subprocess.run(
        ["bash", "-e", "-c", step("Scan")["run"]], cwd=workspace, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines())


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_scan_step_records_the_exit_code_and_writes_sarif(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "clean.pkl").write_bytes(pickle.dumps({"weights": [1.0]}))
    assert run_scan_step(tmp_path, "models") == {"exit-code": "0", "sarif": "true"}
    (models / "evil.pkl").write_bytes(pk.os_system(str(tmp_path / "marker")))
    assert run_scan_step(tmp_path, "models") == {"exit-code": "1", "sarif": "true"}
    sarif = json.loads((tmp_path / "modelshield.sarif").read_text(encoding="utf-8"))
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} == {"PICKLE-DANGEROUS-CALL"}
    assert run_scan_step(tmp_path, "missing")["exit-code"] == "3"
