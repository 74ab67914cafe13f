"""`modelshield inventory ...` and `modelshield gate` through click's runner, on a SQLite inventory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.inventory.folders import benign_pickle, config, malicious_pickle, sha256_of

from modelshield.cli import EXIT_FINDINGS, EXIT_OK, EXIT_SCAN_ERROR, EXIT_USAGE, cli


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="modelshield", env=env)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'inventory.db'}"


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    benign_pickle(root / "good" / "model.pkl")
    config(root / "good" / "config.json")
    malicious_pickle(root / "bad" / "model.pkl", tmp_path / "marker")
    return root


def version_of(db: str, model: str, index: int = -1) -> str:
    shown = run("inventory", "--db", db, "show", model, "--format", "json")
    assert shown.exit_code == EXIT_OK, shown.output
    return str(json.loads(shown.stdout)["versions"][index]["version"])


def test_add_sync_list_show(db: str, models: Path) -> None:
    added = run("inventory", "--db", db, "add", str(models))
    again = run("inventory", "--db", db, "add", models.as_uri())
    synced = run("inventory", "--db", db, "sync")
    listed = run("inventory", "--db", db, "list", "--format", "json")
    shown = run("inventory", "--db", db, "show", "bad")

    source = models.resolve().as_uri()
    assert (added.exit_code, added.stdout) == (EXIT_OK, f"added source {source} (file)\n")
    assert (again.exit_code, again.stdout) == (EXIT_OK, f"source {source} is already registered\n")
    assert synced.exit_code == EXIT_OK, synced.output
    assert (
        "2 versions: 2 scanned, 0 reused, 0 unchanged, 0 errors; 3 files scanned, 0 reused" in synced.stdout
    )
    rows = json.loads(listed.stdout)
    assert [(r["source"], r["model"], r["versions"], r["verdict"], r["last_known_safe"]) for r in rows] == [
        (source, "bad", 1, "malicious", None),
        (source, "good", 1, "clean", None),
    ]
    assert shown.exit_code == EXIT_OK
    assert "malicious" in shown.stdout and "1/0/0/0/0" in shown.stdout
    assert "last known-safe version: none" in shown.stdout


def test_sync_json_reports_scanned_and_reused_blobs(db: str, models: Path) -> None:
    run("inventory", "--db", db, "add", str(models))
    first = run("inventory", "--db", db, "sync", "--format", "json")
    second = run("inventory", "--db", db, "sync", "--format", "json")

    files = [models / "bad" / "model.pkl", models / "good" / "config.json", models / "good" / "model.pkl"]
    document = json.loads(first.stdout)
    assert document["scanned_blobs"] == sorted(sha256_of(path) for path in files)
    assert [(v["model"], v["status"], v["verdict"], v["verdict_written"]) for v in document["versions"]] == [
        ("bad", "scanned", "malicious", False),
        ("good", "scanned", "clean", False),
    ]
    again = json.loads(second.stdout)
    assert (again["scanned_blobs"], again["reused_blobs"]) == ([], [])
    assert [v["status"] for v in again["versions"]] == ["unchanged", "unchanged"]


def test_gate_passes_benign_and_fails_malicious(db: str, models: Path) -> None:
    run("inventory", "--db", db, "add", str(models))
    run("inventory", "--db", db, "sync")
    good = version_of(db, "good")

    passed = run("gate", "--db", db, f"good@{good}")
    failed = run("gate", "--db", db, "bad@latest")
    lenient = run("gate", "--db", db, "--fail-on", "critical", "bad@latest")
    listed = run("inventory", "--db", db, "list", "--format", "json")

    assert (passed.exit_code, passed.stdout) == (
        EXIT_OK,
        f"good@{good[:12]} passes the gate: no finding at or above medium\n",
    )
    assert failed.exit_code == EXIT_FINDINGS
    assert failed.stdout.endswith("fails the gate: findings at or above medium: 1 critical\n")
    assert lenient.exit_code == EXIT_FINDINGS
    assert {r["model"]: r["last_known_safe"] for r in json.loads(listed.stdout)} == {
        "bad": None,
        "good": good,
    }


def test_gate_refuses_unknown_models_versions_and_targets(db: str, models: Path) -> None:
    run("inventory", "--db", db, "add", str(models))
    run("inventory", "--db", db, "sync")

    unknown_model = run("gate", "--db", db, "nope@1")
    unknown_version = run("gate", "--db", db, "good@ffff0000")
    no_version = run("gate", "--db", db, "good")

    assert unknown_model.exit_code == EXIT_USAGE
    assert "unknown model 'nope'" in unknown_model.stderr
    assert unknown_version.exit_code == EXIT_USAGE
    assert "unknown version 'ffff0000' of model 'good'" in unknown_version.stderr
    assert no_version.exit_code == EXIT_USAGE
    assert "expected MODEL@VERSION, got 'good'" in no_version.stderr


def test_gate_of_a_version_that_could_not_be_read_exits_with_the_scan_error_code(
    db: str, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    outside = benign_pickle(tmp_path / "outside.pkl")
    (root / "linked").mkdir(parents=True)
    (root / "linked" / "model.pkl").symlink_to(outside)
    run("inventory", "--db", db, "add", str(root))

    synced = run("inventory", "--db", db, "sync")
    gated = run("gate", "--db", db, "linked@latest")

    assert synced.exit_code == EXIT_SCAN_ERROR
    assert "error: linked" in synced.stdout and "model.pkl: link leaves the folder" in synced.stdout
    assert gated.exit_code == EXIT_SCAN_ERROR
    assert "the version could not be scanned: linked: model.pkl: link leaves the folder" in gated.stdout


def test_diff_against_the_last_known_safe_version_reports_new_findings_and_imports(
    db: str, tmp_path: Path
) -> None:
    from tests.samples import torch_samples as ts

    root = tmp_path / "models"
    folder = root / "classifier"
    folder.mkdir(parents=True)
    ts.state_dict_pt(folder, "model.pt")
    config(folder / "config.json")
    run("inventory", "--db", db, "add", str(root))
    run("inventory", "--db", db, "sync")
    assert run("gate", "--db", db, "classifier@latest").exit_code == EXIT_OK
    old_sha = sha256_of(folder / "model.pt")
    evil = ts.malicious_zip_pt(tmp_path, tmp_path / "marker")
    (folder / "model.pt").write_bytes(evil.read_bytes())
    config(folder / "extra.json", "{}")
    run("inventory", "--db", db, "sync")
    safe, new = version_of(db, "classifier", 0), version_of(db, "classifier", 1)

    text = run("inventory", "--db", db, "diff", "classifier", new)
    document = run("inventory", "--db", db, "diff", "classifier", new, "--format", "json")
    reverse = run("inventory", "--db", db, "diff", "classifier", new, safe, "--format", "json")

    assert text.exit_code == EXIT_FINDINGS
    assert f"classifier: {safe[:12]} → {new[:12]}" in text.stdout
    assert "  added file extra.json" in text.stdout
    assert "  changed file model.pt" in text.stdout
    assert "  new finding critical PICKLE-DANGEROUS-CALL in model.pt" in text.stdout
    assert "  new pickle import posix.system" in text.stdout
    assert f"{new[:12]} fails: 1 new findings at or above medium" in text.stdout
    diff = json.loads(document.stdout)
    assert document.exit_code == EXIT_FINDINGS
    assert (diff["old"], diff["new"], diff["passed"]) == (safe, new, False)
    assert [c["path"] for c in diff["added_files"]] == ["extra.json"]
    assert [(c["path"], c["old_sha256"], c["new_sha256"]) for c in diff["changed_files"]] == [
        ("model.pt", old_sha, sha256_of(evil))
    ]
    assert [(f["rule_id"], f["severity"], f["path"]) for f in diff["new_findings"]] == [
        ("PICKLE-DANGEROUS-CALL", "critical", "model.pt")
    ]
    assert diff["resolved_findings"] == []
    assert (diff["added_imports"], diff["removed_imports"]) == (["posix.system"], [])
    back = json.loads(reverse.stdout)
    assert reverse.exit_code == EXIT_OK
    assert [f["rule_id"] for f in back["resolved_findings"]] == ["PICKLE-DANGEROUS-CALL"]
    assert (back["new_findings"], back["added_imports"], back["removed_imports"]) == (
        [],
        [],
        ["posix.system"],
    )
    assert [c["path"] for c in back["removed_files"]] == ["extra.json"]


def test_diff_without_a_known_safe_version_compares_with_nothing(db: str, models: Path) -> None:
    run("inventory", "--db", db, "add", str(models))
    run("inventory", "--db", db, "sync")

    result = run("inventory", "--db", db, "diff", "bad", "latest", "--format", "json")

    diff = json.loads(result.stdout)
    assert result.exit_code == EXIT_FINDINGS
    assert diff["old"] is None
    assert [c["path"] for c in diff["added_files"]] == ["model.pkl"]
    assert diff["added_imports"] == ["os.system"]


def test_the_database_comes_from_the_environment_when_no_db_is_given(tmp_path: Path, models: Path) -> None:
    env = {"MODELSHIELD_DB": f"sqlite:///{tmp_path / 'from-env.db'}"}

    added = run("inventory", "add", str(models), env=env)

    assert added.exit_code == EXIT_OK
    assert (tmp_path / "from-env.db").is_file()
    listed = run("inventory", "list", "--format", "json", env=env)
    assert json.loads(listed.stdout) == []


def test_remove_forgets_a_source_and_its_models(db: str, models: Path) -> None:
    run("inventory", "--db", db, "add", str(models))
    run("inventory", "--db", db, "sync")

    removed = run("inventory", "--db", db, "remove", str(models))
    missing = run("inventory", "--db", db, "remove", str(models))

    assert (removed.exit_code, removed.stdout) == (EXIT_OK, f"removed source {models.resolve().as_uri()}\n")
    assert json.loads(run("inventory", "--db", db, "list", "--format", "json").stdout) == []
    assert missing.exit_code == EXIT_USAGE


def test_an_unreachable_database_is_an_error_not_a_pass(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:9/none"

    result = run("gate", "--db", url, "model@1")

    assert result.exit_code == EXIT_SCAN_ERROR
    assert (
        "cannot open the inventory database postgresql+psycopg://nobody:***@127.0.0.1:9/none" in result.stderr
    )
    assert "secret" not in result.stderr


def test_without_the_extra_the_error_names_it(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        m for m in sys.modules if m == "sqlalchemy" or m.startswith(("sqlalchemy.", "modelshield.inventory"))
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)

    result = run("inventory", "--db", db, "list")

    assert result.exit_code == EXIT_USAGE
    assert result.stderr == (
        "modelshield: error: the inventory needs its extra: pip install 'modelshield[inventory]'\n"
    )


def test_importing_the_cli_does_not_import_the_database_libraries() -> None:
    code = (
        "import sys, modelshield.cli; print(sorted(m for m in ('sqlalchemy', 'alembic') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout == "[]\n"


def test_a_policy_file_with_limits_is_its_own_key_for_sync_and_gate(
    db: str, models: Path, tmp_path: Path
) -> None:
    strict = tmp_path / "strict.toml"
    strict.write_text("[limits]\nmax_pickle_opcodes = 3\n", encoding="utf-8")
    run("inventory", "--db", db, "add", str(models))
    run("inventory", "--db", db, "sync")
    good = version_of(db, "good")
    assert run("gate", "--db", db, f"good@{good}").exit_code == EXIT_OK

    never = run("gate", "--db", db, "--policy", str(strict), f"good@{good}")
    synced = run("inventory", "--db", db, "sync", "--policy", str(strict), "--format", "json")
    gated = run("gate", "--db", db, "--policy", str(strict), f"good@{good}")
    listed = run("inventory", "--db", db, "list", "--format", "json")

    assert never.exit_code == EXIT_SCAN_ERROR
    assert "never scanned under this policy" in never.stdout
    document = json.loads(synced.stdout)
    assert [(v["model"], v["status"]) for v in document["versions"]] == [
        ("bad", "scanned"),
        ("good", "scanned"),
    ]
    assert synced.exit_code == EXIT_OK
    assert gated.exit_code == EXIT_SCAN_ERROR
    assert gated.stdout.startswith(f"good@{good[:12]} fails the gate: not fully scanned: model.pkl: limit: ")
    assert "max_pickle_opcodes" in gated.stdout
    assert {r["model"]: r["last_known_safe"] for r in json.loads(listed.stdout)} == {
        "bad": None,
        "good": None,
    }


def test_sync_of_one_source_leaves_the_others_and_refuses_unknown_ones(db: str, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    benign_pickle(first / "a" / "model.pkl")
    benign_pickle(second / "b" / "model.pkl", epoch=9)
    run("inventory", "--db", db, "add", str(first))
    run("inventory", "--db", db, "add", str(second))

    only_second = run("inventory", "--db", db, "sync", "--source", str(second), "--format", "json")
    unknown = run("inventory", "--db", db, "sync", "--source", str(tmp_path / "elsewhere"))

    assert [v["model"] for v in json.loads(only_second.stdout)["versions"]] == ["b"]
    assert unknown.exit_code == EXIT_USAGE
    assert f"no registered source '{tmp_path / 'elsewhere'}'" in unknown.stderr


def test_names_from_a_registry_are_shown_as_written_not_as_markup(db: str, tmp_path: Path) -> None:
    root = tmp_path / "models"
    malicious_pickle(root / "[red]evil" / "[bold]model.pkl", tmp_path / "marker")
    run("inventory", "--db", db, "add", str(root))

    synced = run("inventory", "--db", db, "sync")
    shown = run("inventory", "--db", db, "show", "[red]evil")
    diffed = run("inventory", "--db", db, "diff", "[red]evil", "latest")

    assert synced.exit_code == EXIT_OK, synced.output
    assert "[red]evil" in synced.stdout
    assert f"[red]evil ({root.resolve().as_uri()})" in shown.stdout
    assert "  added file [bold]model.pkl" in diffed.stdout
    assert "  new finding critical PICKLE-DANGEROUS-CALL in [bold]model.pkl" in diffed.stdout


def test_usage_errors_exit_with_the_usage_code(db: str, tmp_path: Path) -> None:
    missing_model = run("inventory", "--db", db, "show")
    missing_target = run("gate", "--db", db)
    bad_format = run("inventory", "--db", db, "sync", "--format", "xml")
    three_versions = run("inventory", "--db", db, "diff", "m", "1", "2", "3")
    no_folder = run("inventory", "--db", db, "add", str(tmp_path / "absent"))

    assert [r.exit_code for r in (missing_model, missing_target, bad_format, no_folder)] == [EXIT_USAGE] * 4
    assert "Missing argument 'MODEL'" in missing_model.stderr
    assert "Missing argument 'MODEL@VERSION'" in missing_target.stderr
    assert three_versions.exit_code == EXIT_USAGE
    assert "give at most two versions: [V1] V2" in three_versions.stderr
    assert f"not a folder of models: {tmp_path / 'absent'}" in no_folder.stderr
