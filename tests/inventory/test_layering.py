"""The scanning core never reaches the inventory, the database libraries or the connectors."""

from __future__ import annotations

import ast
from pathlib import Path

import modelshield

PACKAGE = Path(modelshield.__file__).parent
CORE = ("engine", "formats", "analysis")
FORBIDDEN = ("modelshield.inventory", "modelshield.connectors", "modelshield.cli", "sqlalchemy", "alembic")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_core_module_imports_the_inventory_or_a_database() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for part in CORE
        for path in sorted((PACKAGE / part).rglob("*.py"))
        for name in imported_modules(path)
        if any(name == banned or name.startswith(f"{banned}.") for banned in FORBIDDEN)
    }
    assert offenders == set()


def test_the_check_sees_an_import_of_the_inventory(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("from modelshield.inventory import store\nimport sqlalchemy.orm\n", encoding="utf-8")
    assert imported_modules(planted) == {
        "modelshield.inventory",
        "modelshield.inventory.store",
        "sqlalchemy.orm",
    }
