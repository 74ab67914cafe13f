"""docs/limits.md is generated from the Limits fields' docstrings and kept in step with them."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from modelshield.docs_limits import REGENERATE, format_default, limit_docs, main, render_limits_markdown
from modelshield.engine.limits import DEFAULT_LIMITS, Limits, parse_limit_value

DOCS = Path(__file__).resolve().parents[1] / "docs" / "limits.md"


def test_docs_are_up_to_date() -> None:
    current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    assert current == render_limits_markdown(limit_docs()), (
        f"docs/limits.md is out of date with engine/limits.py; regenerate it with `{REGENERATE}` "
        "(from the repository root) and commit it"
    )


def test_every_limit_has_a_docstring_and_one_section() -> None:
    docs = limit_docs()
    assert [d.name for d in docs] == [f.name for f in fields(Limits)]
    text = DOCS.read_text(encoding="utf-8")
    for doc in docs:
        assert len(doc.text) > 30, doc.name
        assert text.count(f"\n## {doc.name}\n") == 1, doc.name


def test_every_default_is_shown_as_a_value_the_parser_reads_back() -> None:
    for doc in limit_docs():
        shown = format_default(doc.unit, doc.default)
        assert parse_limit_value(doc.name, shown) == getattr(DEFAULT_LIMITS, doc.name), doc.name


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("max_bytes_read_per_file", "64GiB"),
        ("max_materialized_bytes", "96MiB"),
        ("max_seconds_per_file", "300s"),
        ("child_cpu_seconds", "120s"),
        ("max_members_per_archive", "100000"),
        ("max_expansion_ratio", "200"),
    ],
)
def test_defaults_are_written_as_a_user_would(name: str, shown: str) -> None:
    (doc,) = [d for d in limit_docs() if d.name == name]
    assert format_default(doc.unit, doc.default) == shown


def test_docs_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "limits.md"
    assert main(["--check", str(target)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main([str(target)]) == 0
    assert main(["--check", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render_limits_markdown(limit_docs())
