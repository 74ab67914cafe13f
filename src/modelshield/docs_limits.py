"""Generate docs/limits.md from the `Limits` fields and their docstrings:
`python -m modelshield.docs_limits [--check] [PATH]`."""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from modelshield.docs_rules import generated_page_main
from modelshield.engine import limits as limits_module
from modelshield.engine.limits import DEFAULT_LIMITS, GiB, KiB, LimitUnit, MiB, limit_unit

DEFAULT_PATH = Path("docs/limits.md")
REGENERATE = "python -m modelshield.docs_limits"

_HEADER = f"""\
# Limits

<!-- Generated from the `Limits` fields in src/modelshield/engine/limits.py by `{REGENERATE}`;
do not edit by hand. -->

Every file is hostile until scanned, so every scan is bounded: what it may read, decompress, nest,
count and spend. All bounds live in one validated object, `modelshield.engine.limits.Limits`. When a
scan reaches one, the file gets an issue naming the limit (and, for decompression bombs and absurd
declared counts, a finding too), so it is **never reported clean**; the scan of the other files goes on.

Set them, from weakest to strongest:

- in a policy file, a `[limits]` table (`modelshield scan --policy policy.toml`):

  ```toml
  [limits]
  max_member_bytes = "512MiB"
  max_seconds_per_file = "30s"
  max_pickle_opcodes = 200_000
  ```

- on the command line, `--limit NAME=VALUE`, repeatable, over the policy's values:
  `modelshield scan --limit max_expanded_bytes_per_file=1GiB --limit max_seconds_per_file=2m model.zip`
- from Python, `modelshield.scan(path, limits=Limits(max_nesting_depth=4))`, or
  `Limits.from_mapping({{"max_member_bytes": "512MiB"}})`.

An unknown name, a value of the wrong kind, zero or a negative value is refused before anything is
scanned. Sizes take `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024; `K`, `M`, `G`, `T` alike) or `KB`, `MB`,
`GB`, `TB` (powers of 1000); times take `ms`, `s`, `m` (or `min`) and `h`; counts take `k` and `M`
(thousands, millions); a bare number is bytes, seconds or items.
"""

_UNIT_NAMES: dict[LimitUnit, str] = {"bytes": "size", "seconds": "time", "count": "count", "ratio": "ratio"}


@dataclass(frozen=True)
class LimitDoc:
    """One limit as documented: its name, what it measures, its default and its docstring."""

    name: str
    unit: LimitUnit
    default: int | float
    text: str


def limit_docs() -> list[LimitDoc]:
    """Every `Limits` field in declaration order with the docstring written under it."""
    tree = ast.parse(inspect.getsource(limits_module))
    texts: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Limits":
            body = node.body
            for statement, following in zip(body, body[1:], strict=False):
                if (
                    isinstance(statement, ast.AnnAssign)
                    and isinstance(statement.target, ast.Name)
                    and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                ):
                    texts[statement.target.id] = inspect.cleandoc(following.value.value)
    docs = []
    for f in fields(DEFAULT_LIMITS):
        if f.name not in texts:
            raise ValueError(f"Limits.{f.name} has no docstring: write one under the field")
        docs.append(LimitDoc(f.name, limit_unit(f.name), getattr(DEFAULT_LIMITS, f.name), texts[f.name]))
    return docs


def format_default(unit: LimitUnit, value: int | float) -> str:
    """A default as a user would write it: `64GiB`, `300s`, `100000`, `200`."""
    if unit == "bytes":
        for size, suffix in ((1024 * GiB, "TiB"), (GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
            if value >= size and value % size == 0:
                return f"{int(value // size)}{suffix}"
        return f"{int(value)}"
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{shown}s" if unit == "seconds" else shown


def render_limits_markdown(docs: Sequence[LimitDoc]) -> str:
    """The whole page: how to set limits, a summary table, then one section per limit."""
    parts = [_HEADER, "| limit | kind | default |", "|---|---|---|"]
    parts.extend(
        f"| [`{d.name}`](#{d.name}) | {_UNIT_NAMES[d.unit]} | `{format_default(d.unit, d.default)}` |"
        for d in docs
    )
    parts.append("")
    for d in docs:
        text = " ".join(line.strip() for line in d.text.splitlines())
        parts.append(f"## {d.name}\n\n{text}\n\nDefault: `{format_default(d.unit, d.default)}`.\n")
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page (default docs/limits.md); with --check, exit 1 if the file on disk is out of date."""
    docs = limit_docs()
    return generated_page_main(
        argv, DEFAULT_PATH, REGENERATE, __doc__, lambda: (render_limits_markdown(docs), f"{len(docs)} limits")
    )


if __name__ == "__main__":
    sys.exit(main())
