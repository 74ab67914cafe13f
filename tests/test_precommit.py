"""The pre-commit hook, run for real with `pre-commit try-repo` on a throw-away repository."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.samples import pickles as pk

REPO_ROOT = Path(__file__).resolve().parents[1]

# Only a missing git is a reason to skip; under CI=true even that fails, so the hook is always proven.
pytestmark = pytest.mark.skipif(
    shutil.which("git") is None and os.environ.get("CI") != "true", reason="git is not installed"
)


def test_hook_definition_scans_every_file_by_content() -> None:
    (hook,) = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "modelshield"
    assert hook["language"] == "python"
    assert hook["entry"] == "modelshield scan"
    assert hook["types"] == ["file"]
    assert "files" not in hook and "exclude" not in hook  # by content, never by name


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One hook environment for the module: try-repo installs modelshield into it once.
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(project: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(home),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "PIP_NO_INPUT": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    # The committed HEAD, not a shadow commit of the working tree: a tree that others are editing may
    # hold a tracked file that already imports a module not yet added.
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    command = ["try-repo", str(REPO_ROOT), "modelshield", "--ref", head, "--all-files"]
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *command],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def new_project(root: Path) -> Path:
    root.mkdir()
    git(root, "init", "-q")
    (root / "README.md").write_text("a project with a model\n", encoding="utf-8")
    (root / "clean.pkl").write_bytes(pickle.dumps({"weights": [0.5, 1.5], "epoch": 3}))
    git(root, "add", ".")
    return root


def test_hook_passes_a_clean_model(tmp_path: Path, pre_commit_home: Path) -> None:
    project = new_project(tmp_path / "clean")
    done = try_repo(project, pre_commit_home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Passed" in done.stdout


def test_hook_fails_on_a_malicious_pickle_and_names_the_rule(tmp_path: Path, pre_commit_home: Path) -> None:
    project = new_project(tmp_path / "evil")
    marker = tmp_path / "marker"
    # A misleading name: the hook must find the pickle by its content.
    (project / "notes.txt").write_bytes(pk.os_system(str(marker)))
    git(project, "add", "notes.txt")
    done = try_repo(project, pre_commit_home)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failed" in done.stdout
    assert "PICKLE-DANGEROUS-CALL" in done.stdout
    assert "notes.txt" in done.stdout
    assert not marker.exists()
