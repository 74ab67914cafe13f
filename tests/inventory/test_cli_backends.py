"""The inventory commands on each database backend, the URL given with --db as a user would."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from tests.inventory.folders import benign_pickle, malicious_pickle

from modelshield.cli import EXIT_FINDINGS, EXIT_OK, cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="modelshield")


def test_add_sync_gate_and_list_through_the_command_line(database_url: str, tmp_path: Path) -> None:
    root = tmp_path / "models"
    benign_pickle(root / "good" / "model.pkl")
    malicious_pickle(root / "bad" / "model.pkl", tmp_path / "marker")

    added = run("inventory", "--db", database_url, "add", str(root))
    synced = run("inventory", "--db", database_url, "sync", "--format", "json")
    good = run("gate", "--db", database_url, "good@latest")
    bad = run("gate", "--db", database_url, "bad@latest")
    listed = run("inventory", "--db", database_url, "list", "--format", "json")

    assert added.exit_code == EXIT_OK, added.output
    assert [(v["model"], v["verdict"]) for v in json.loads(synced.stdout)["versions"]] == [
        ("bad", "malicious"),
        ("good", "clean"),
    ]
    assert (good.exit_code, bad.exit_code) == (EXIT_OK, EXIT_FINDINGS)
    rows = {r["model"]: (r["verdict"], r["last_known_safe"] is not None) for r in json.loads(listed.stdout)}
    assert rows == {"bad": ("malicious", False), "good": ("clean", True)}
