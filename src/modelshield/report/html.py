"""The HTML report: one self-contained, script-free page for responders, with all scanned text escaped."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable

from modelshield.engine.findings import Finding, ScanIssue, Severity, Verdict
from modelshield.engine.result import FileResult, FormatNode, ScanResult

# Nothing is fetched and nothing runs, even if an escaping bug ever let markup through.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 70em;
       padding: 0 1em; color: #1d1f21; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.15em; margin: 0; word-break: break-all; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .92em; }
pre { background: #f5f5f5; border: 1px solid #ddd; padding: .6em; white-space: pre-wrap;
      word-break: break-all; margin: .3em 0; }
table.summary { border-collapse: collapse; margin: .8em 0; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: .25em .7em; text-align: left; }
section.file { border: 1px solid #ccc; border-left-width: 6px; border-radius: 4px; margin: 1.2em 0;
               padding: .8em 1em; }
section.malicious { border-left-color: #b00020; }
section.suspicious { border-left-color: #d98c00; }
section.error { border-left-color: #7b1fa2; }
section.clean { border-left-color: #2e7d32; }
.badge { display: inline-block; padding: .05em .5em; border-radius: 3px; color: #fff; font-weight: 600;
         font-size: .85em; text-transform: uppercase; }
.v-malicious, .s-critical { background: #b00020; }
.v-suspicious, .s-high { background: #e65100; }
.s-medium { background: #d98c00; }
.v-error { background: #7b1fa2; }
.v-clean { background: #2e7d32; }
.s-low { background: #0277bd; }
.s-info { background: #757575; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .1em 1em; margin: .5em 0; }
dl.meta dt { color: #555; }
dl.meta dd { margin: 0; word-break: break-all; }
ul.tree { margin: .3em 0; padding-left: 1.3em; }
div.finding, div.issue { border-top: 1px solid #e5e5e5; padding: .6em 0; }
div.suppressed { opacity: .65; }
.mark { font-weight: 600; color: #555; }
.muted { color: #666; }
"""

_UNPRINTABLE = frozenset({"Cc", "Cs", "Cf"})
_KEEP = frozenset({"\n", "\t"})
_ADVISORY_URL = re.compile(
    r"https://(?:nvd\.nist\.gov/vuln/detail/CVE-\d{4}-\d{4,}"
    r"|www\.cve\.org/CVERecord\?id=CVE-\d{4}-\d{4,}"
    r"|github\.com/advisories/GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}"
    r"|cwe\.mitre\.org/data/definitions/\d+\.html)"
)


def render_html(result: ScanResult) -> str:
    """The report as a complete HTML document that needs nothing but itself to be read."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>modelshield report: {result.verdict.value}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        *_summary(result),
        *(line for file in result.files for line in _file(file)),
        *_input_issues(result.input_issues),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def escape(text: str) -> str:
    """Scanned text made safe as HTML content or attribute: markup escaped, invisible characters shown."""
    return html.escape(_visible(text), quote=True)


def _visible(text: str) -> str:
    # Control characters, bidi overrides and undecodable-name surrogates could hide or disguise text.
    if text.isprintable():
        return text
    return "".join(
        f"\\u{ord(char):04x}" if char not in _KEEP and unicodedata.category(char) in _UNPRINTABLE else char
        for char in text
    )


def _badge(kind: str, value: str) -> str:
    return f'<span class="badge {kind}-{value}">{escape(value)}</span>'


def _summary(result: ScanResult) -> list[str]:
    verdicts = dict.fromkeys(Verdict, 0)
    for file in result.files:
        verdicts[file.verdict] += 1
    severities = dict.fromkeys(sorted(Severity, reverse=True), 0)
    suppressed = 0
    for finding in result.findings:
        if finding.counts:
            severities[finding.severity] += 1
        else:
            suppressed += 1
    order = (Verdict.MALICIOUS, Verdict.SUSPICIOUS, Verdict.ERROR, Verdict.CLEAN)
    return [
        "<header>",
        "<h1>modelshield report</h1>",
        f"<p>Verdict: {_badge('v', result.verdict.value)} "
        f"— {len(result.files)} file(s), {len(result.findings)} finding(s)"
        f"{f', {suppressed} suppressed' if suppressed else ''}, "
        f"{'fully scanned' if result.fully_scanned else '<strong>not fully scanned</strong>'}.</p>",
        f'<p class="muted">modelshield {escape(result.tool_version)}, started {escape(result.started_at)}, '
        f"{result.duration_seconds:.2f} s</p>",
        '<table class="summary">',
        "<tr><th>files by verdict</th>"
        + "".join(f"<td>{_badge('v', v.value)} {verdicts[v]}</td>" for v in order)
        + "</tr>",
        "<tr><th>findings by severity</th>"
        + "".join(f"<td>{_badge('s', s.value)} {n}</td>" for s, n in severities.items())
        + "</tr>",
        "</table>",
        "</header>",
    ]


def _file(file: FileResult) -> list[str]:
    verdict = file.verdict.value
    lines = [
        f'<section class="file {verdict}">',
        f"<h2>{_badge('v', verdict)} <code>{escape(file.path)}</code></h2>",
        '<dl class="meta">',
        f"<dt>size</dt><dd>{file.size} bytes</dd>",
        f"<dt>sha256</dt><dd><code>{escape(file.sha256) if file.sha256 else 'not computed'}</code></dd>",
        f"<dt>scan time</dt><dd>{file.duration_seconds:.3f} s{_CACHED if file.from_cache else ''}</dd>",
        "</dl>",
        "<details open><summary>container tree</summary>",
        '<ul class="tree">',
        *_tree(file.tree),
        "</ul>",
        "</details>",
    ]
    for finding in sorted(file.findings, key=lambda finding: finding.severity, reverse=True):
        lines.extend(_finding(finding))
    for issue in file.issues:
        lines.extend(_issue(issue))
    if not file.findings and not file.issues:
        lines.append('<p class="muted">No findings.</p>')
    lines.append("</section>")
    return lines


_CACHED = " (result cache: stored by an earlier scan of the same content under the same settings)"


def _tree(node: FormatNode) -> list[str]:
    label = f'<code>{escape(node.format)}</code> {escape(node.name)} <span class="muted">{node.size} B</span>'
    if not node.children:
        return [f"<li>{label}</li>"]
    return [
        f"<li>{label}",
        '<ul class="tree">',
        *(li for c in node.children for li in _tree(c)),
        "</ul></li>",
    ]


def _finding(finding: Finding) -> list[str]:
    from modelshield.rules import REGISTRY

    rule = REGISTRY.get(finding.rule_id)
    suppression = finding.suppression
    classes = "finding suppressed" if not finding.counts else "finding"
    lines = [
        f'<div class="{classes}">',
        f"<p>{_badge('s', finding.severity.value)} <strong><code>{escape(finding.rule_id)}</code></strong>"
        + (f" {escape(rule.title)}" if rule is not None else "")
        + (
            f' <span class="muted">({escape(finding.category.value)}, confidence '
            f"{escape(finding.confidence.value)})</span>"
        )
        + "</p>",
    ]
    if suppression is not None:
        state = "expired suppression" if suppression.expired else "suppressed"
        expires = f", expires {escape(suppression.expires)}" if suppression.expires else ""
        lines.append(
            f'<p class="mark">{state}: {escape(suppression.reason)} '
            f'<span class="muted">({escape(suppression.source)}{expires})</span></p>'
        )
    lines += [
        f"<p>{escape(finding.message)}</p>",
        '<dl class="meta">',
        f"<dt>location</dt><dd><code>{escape(finding.location.render())}</code></dd>",
        "</dl>",
    ]
    if finding.evidence:
        lines.append(f"<pre>{escape(finding.evidence)}</pre>")
    if finding.remediation:
        lines.append(f"<p><strong>Remediation:</strong> {escape(finding.remediation)}</p>")
    if finding.references:
        lines.append(f"<p><strong>References:</strong> {_references(finding.references)}</p>")
    lines.append("</div>")
    return lines


def _references(references: Iterable[str]) -> str:
    rendered = []
    for reference in references:
        if _ADVISORY_URL.fullmatch(reference):
            rendered.append(
                f'<a href="{escape(reference)}" rel="noopener noreferrer">{escape(reference)}</a>'
            )
        else:
            rendered.append(f"<code>{escape(reference)}</code>")
    return ", ".join(rendered)


def _issue(issue: ScanIssue) -> list[str]:
    return [
        '<div class="issue">',
        f"<p>{_badge('v', 'error')} <strong>not scanned</strong> ({escape(issue.kind)}): "
        f"{escape(issue.message)}</p>",
        f'<dl class="meta"><dt>location</dt><dd><code>{escape(issue.location.render())}</code></dd></dl>',
        "</div>",
    ]


def _input_issues(issues: tuple[ScanIssue, ...]) -> list[str]:
    if not issues:
        return []
    return (
        ['<section class="file error">', "<h2>Inputs that could not be scanned</h2>"]
        + [line for issue in issues for line in _issue(issue)]
        + ["</section>"]
    )
