"""The text report: a per-file account of verdicts, format trees and findings for people, via rich.

rich is imported only to lay out a report that needs it: a report of clean files whose lines all fit is
written directly, exactly as rich would write it, because importing rich takes longer than the rest of a
small scan's start-up (tests/report/test_text.py compares the two)."""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterator
from typing import TYPE_CHECKING

from modelshield.engine.findings import Finding, ScanIssue, Severity, Suppression, Verdict

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text
    from rich.tree import Tree

    from modelshield.engine.result import FileResult, FormatNode, ScanResult

DEFAULT_WIDTH = 100
CACHED_MARK = "  (result cache)"
"""After the header of a file whose result was stored by an earlier scan of the same content."""
SHORT_HASH_CHARS = 12

VERDICT_STYLES = {
    Verdict.MALICIOUS: "bold red",
    Verdict.SUSPICIOUS: "bold yellow",
    Verdict.ERROR: "bold magenta",
    Verdict.CLEAN: "bold green",
}
SEVERITY_STYLES = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
# Scanned content chooses file names, messages and evidence: control characters (terminal escapes),
# surrogates (undecodable names) and format characters (bidi overrides) are shown as escapes instead.
_UNPRINTABLE_CATEGORIES = frozenset({"Cc", "Cs", "Cf"})


def render_text(result: ScanResult, *, color: bool = False, width: int = DEFAULT_WIDTH) -> str:
    """The report as text; with `color` it carries ANSI styles, without it reads the same in plain text."""
    direct = _clean_report_without_rich(result, color=color, width=width)
    return direct if direct is not None else render_text_with_rich(result, color=color, width=width)


def render_text_with_rich(result: ScanResult, *, color: bool = False, width: int = DEFAULT_WIDTH) -> str:
    """The report laid out by rich, whatever it holds (`render_text` writes simple ones directly)."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        markup=False,
        highlight=False,
        emoji=False,
        legacy_windows=False,
    )
    for file in result.files:
        console.print(_file_block(file))
        console.print()
    for issue in result.input_issues:
        console.print(_issue_block(issue))
    console.print(_summary_line(result))
    # rich pads trees and tables to the console width; trailing blanks only get in the way of a diff.
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def printable(text: str) -> str:
    """`text` with every character that could act on a terminal replaced by a visible escape."""
    if text.isprintable():
        return text
    return "".join(
        _escape(char) if unicodedata.category(char) in _UNPRINTABLE_CATEGORIES else char for char in text
    )


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def human_size(size: int) -> str:
    """A byte count as people read it: 512 B, 1.5 KiB, 3.2 GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _file_block(file: FileResult) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    verdict = file.verdict
    header = Text.assemble(
        (f"{verdict.value.upper():<10}", VERDICT_STYLES[verdict]),
        " ",
        (printable(file.path), "bold"),
        ("  " + human_size(file.size), "dim"),
        ("  sha256 " + _short_hash(file.sha256), "dim"),
        (CACHED_MARK if file.from_cache else "", "dim"),
    )
    parts: list[RenderableType] = [header, _indented(_format_tree(file.tree))]
    # Findings that count come first, worst first; actively suppressed ones follow, marked.
    findings = sorted(file.findings, key=lambda finding: (finding.counts, finding.severity), reverse=True)
    parts.extend(_indented(_finding_block(finding)) for finding in findings)
    parts.extend(_indented(_issue_block(issue)) for issue in file.issues)
    return Group(*parts)


def _indented(renderable: RenderableType) -> Padding:
    from rich.padding import Padding

    return Padding(renderable, (0, 0, 0, 2), expand=False)


def _short_hash(sha256: str | None) -> str:
    if sha256 is None:
        return "not computed"
    return sha256[:SHORT_HASH_CHARS] + "…"


def _format_tree(root: FormatNode) -> Tree:
    from rich.tree import Tree

    tree = Tree(_format_label(root), guide_style="dim")
    _add_children(tree, root)
    return tree


def _add_children(branch: Tree, node: FormatNode) -> None:
    for child in node.children:
        _add_children(branch.add(_format_label(child)), child)


def _format_label(node: FormatNode) -> Text:
    from rich.text import Text

    return Text.assemble(
        (node.format, "cyan"), " ", printable(node.name), ("  " + human_size(node.size), "dim")
    )


def _finding_block(finding: Finding) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    headline = Text.assemble(
        (finding.severity.value.upper(), SEVERITY_STYLES[finding.severity]),
        " ",
        (finding.rule_id, "bold"),
        f"  {printable(finding.message)}",
        ("" if finding.counts else "  [suppressed]", "dim"),
    )
    details = _details(
        *_suppression_rows(finding.suppression),
        ("at", finding.location.render()),
        ("evidence", finding.evidence),
        ("remediation", finding.remediation),
        ("references", ", ".join(finding.references)),
    )
    return Group(headline, _indented(details))


def _suppression_rows(suppression: Suppression | None) -> tuple[tuple[str, str], ...]:
    if suppression is None:
        return ()
    if suppression.expired:
        label = f"suppression expired on {suppression.expires}"
        return ((label, f"{suppression.reason} ({suppression.source}); counts again"),)
    until = f", until {suppression.expires}" if suppression.expires else ""
    return (("suppressed", f"{suppression.reason} ({suppression.source}{until})"),)


def _issue_block(issue: ScanIssue) -> RenderableType:
    from rich.console import Group
    from rich.text import Text

    headline = Text.assemble(
        ("NOT SCANNED", VERDICT_STYLES[Verdict.ERROR]),
        f" ({printable(issue.kind)})  ",
        printable(issue.message),
    )
    return Group(headline, _indented(_details(("at", issue.location.render()))))


def _details(*rows: tuple[str, str]) -> Table:
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        if value:
            grid.add_row(f"{label}:", printable(value))
    return grid


def _summary_line(result: ScanResult) -> Text:
    from rich.text import Text

    return Text.assemble(
        "Verdict: ", (result.verdict.value.upper(), VERDICT_STYLES[result.verdict]), _summary_tail(result)
    )


def _summary_tail(result: ScanResult) -> str:
    counts = dict.fromkeys(Verdict, 0)
    for file in result.files:
        counts[file.verdict] += 1
    by_verdict = ", ".join(
        f"{counts[verdict]} {verdict.value}"
        for verdict in (Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.ERROR, Verdict.CLEAN)
    )
    counted = sum(1 for finding in result.findings if finding.counts)
    suppressed = len(result.findings) - counted
    return (
        f" — {_count(len(result.files), 'file')} ({by_verdict}), "
        f"{_count(counted, 'finding')}{f', {suppressed} suppressed' if suppressed else ''}, "
        f"{result.duration_seconds:.2f} s"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# --- clean reports, written directly --------------------------------------------------------------

# The SGR codes rich writes, with color_system="standard", for the styles a clean report uses.
_SGR_CODES = {"bold": "1", "dim": "2", "cyan": "36", "bold green": "1;32"}
_BRANCH, _LAST_BRANCH, _PASS_BY, _NO_PASS_BY = "├── ", "└── ", "│   ", "    "


def _clean_report_without_rich(result: ScanResult, *, color: bool, width: int) -> str | None:
    """The report of a result with no finding and no issue, exactly as rich lays it out; None when rich
    is needed: something to report, text beyond ASCII (its width on a terminal varies), or a line that
    would not fit in `width` and would be wrapped."""
    if result.input_issues or any(file.findings or file.issues for file in result.files):
        return None
    styled = _styled if color else _unstyled
    lines: list[str] = []
    plain_lengths: list[int] = []
    for file in result.files:
        header = [
            (f"{file.verdict.value.upper():<10}", VERDICT_STYLES[file.verdict]),
            (" ", ""),
            (printable(file.path), "bold"),
            ("  " + human_size(file.size), "dim"),
            ("  sha256 " + _short_hash(file.sha256), "dim"),
            (CACHED_MARK if file.from_cache else "", "dim"),
        ]
        for segments in (header, *_tree_lines(file.tree, ())):
            lines.append(styled(segments))
            plain_lengths.append(_plain_length(segments))
        lines.append("")
    summary = [("Verdict: ", ""), (result.verdict.value.upper(), VERDICT_STYLES[result.verdict])]
    summary.append((_summary_tail(result), ""))
    lines.append(styled(summary))
    plain_lengths.append(_plain_length(summary))
    if any(length >= width for length in plain_lengths) or not all(_fits_one_cell(line) for line in lines):
        return None
    return "".join(line.rstrip() + "\n" for line in lines)


Segments = list[tuple[str, str]]
"""A line as (text, style) pieces; style "" for unstyled text."""


def _tree_lines(node: FormatNode, guides: tuple[str, ...]) -> Iterator[Segments]:
    """The tree's lines, each indented two spaces, then one dim piece per guide level (as rich writes
    them: `guides` ends with this node's own branch), then the node's label."""
    label = [(node.format, "cyan"), (" ", ""), (printable(node.name), "")]
    yield [("  ", ""), *((guide, "dim") for guide in guides), *label, ("  " + human_size(node.size), "dim")]
    above = tuple(
        _PASS_BY if guide == _BRANCH else _NO_PASS_BY if guide == _LAST_BRANCH else guide for guide in guides
    )
    for position, child in enumerate(node.children):
        yield from _tree_lines(
            child, (*above, _LAST_BRANCH if position == len(node.children) - 1 else _BRANCH)
        )


def _styled(segments: Segments) -> str:
    return "".join(_sgr(text, style) if style and text else text for text, style in segments)


def _sgr(text: str, style: str) -> str:
    return f"\x1b[{_SGR_CODES[style]}m{text}\x1b[0m"


def _unstyled(segments: Segments) -> str:
    return "".join(text for text, _ in segments)


def _plain_length(segments: Segments) -> int:
    return sum(len(text) for text, _ in segments)


def _fits_one_cell(line: str) -> bool:
    """Whether every character takes one terminal cell for sure: ASCII and the report's own marks."""
    return line.isascii() or all(char.isascii() or char in _REPORT_MARKS for char in line)


_REPORT_MARKS = frozenset("—…├└│─")
