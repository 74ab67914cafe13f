"""The HTML report: self-contained, script-free, and every scanned string escaped."""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

import modelshield
from modelshield.engine.findings import Suppression
from modelshield.engine.result import ScanResult
from modelshield.report.html import escape, render_html

MALICIOUS_PICKLE = b"cos\nsystem\n(S'true'\ntR."
# A file name and an evidence string chosen by an attacker: both must arrive as text, never as markup.
HOSTILE_NAME = "<script>alert(1)<img src=x onerror=alert(2)>.pkl"
HOSTILE_PICKLE = b"cos\nsystem\n(S'</pre><script>alert(3)</script>\\x1b[31m'\ntR."


def write_samples(root: Path) -> None:
    (root / "evil.pkl").write_bytes(MALICIOUS_PICKLE)
    with zipfile.ZipFile(root / "bundle.zip", "w") as archive:
        archive.writestr("archive/data.pkl", MALICIOUS_PICKLE)
    (root / "clean.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    # A link out of the scanned tree is never followed: the file is reported as not scanned.
    outside = root.parent / f"{root.name}-outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(b"secret")
    (root / "escape.bin").symlink_to(outside / "secret.bin")
    (root / HOSTILE_NAME).write_bytes(HOSTILE_PICKLE)


class _Page(HTMLParser):
    """Collects the text, tags and attributes of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture
def scanned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ScanResult:
    root = tmp_path / "models"
    root.mkdir()
    write_samples(root)
    monkeypatch.chdir(root)
    return modelshield.scan(".")


def test_every_finding_shows_its_rule_id_and_evidence(scanned: ScanResult) -> None:
    page = parse(render_html(scanned))
    text = "".join(page.text)
    assert scanned.findings
    for finding in scanned.findings:
        assert finding.rule_id in text
        assert finding.evidence in text
        assert finding.location.render() in text


def test_hostile_file_name_and_evidence_are_text_not_markup(scanned: ScanResult) -> None:
    html = render_html(scanned)
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    page = parse(html)
    assert "script" not in page.tags and "img" not in page.tags
    text = "".join(page.text)
    assert HOSTILE_NAME in text
    assert "</pre><script>alert(3)</script>" in text


def test_page_is_self_contained(scanned: ScanResult) -> None:
    page = parse(render_html(scanned))
    assert not {"script", "link", "iframe", "object", "embed", "img"} & set(page.tags)
    assert "style" in page.tags
    sources = [value for name, value in page.attributes if name in {"src", "href"}]
    assert sources == []


def test_summary_and_per_file_facts(scanned: ScanResult) -> None:
    text = " ".join(parse(render_html(scanned)).text)
    assert "malicious" in text
    for file in scanned.files:
        assert file.path in text
        assert f"{file.size} bytes" in text
        assert (file.sha256 or "not computed") in text


def test_a_result_from_the_result_cache_says_so(scanned: ScanResult) -> None:
    assert "result cache" not in render_html(scanned)
    cached = replace(scanned, files=(replace(scanned.files[0], from_cache=True), *scanned.files[1:]))
    assert " ".join(parse(render_html(cached)).text).count("(result cache: stored by an earlier scan") == 1


def test_container_tree_lists_members(scanned: ScanResult) -> None:
    text = " ".join(parse(render_html(scanned)).text)
    assert "archive/data.pkl" in text


def test_unscannable_file_is_marked_not_scanned(scanned: ScanResult) -> None:
    text = " ".join(parse(render_html(scanned)).text)
    assert "not scanned" in text
    assert "outside the scanned tree" in text


def test_suppressed_finding_is_marked_with_reason(scanned: ScanResult) -> None:
    marked = tuple(
        replace(
            file,
            findings=tuple(
                replace(f, suppression=Suppression("<b>vetted</b> fixture", "policy.toml"))
                for f in file.findings
            ),
        )
        for file in scanned.files
    )
    html = render_html(replace(scanned, files=marked))
    assert "<b>" not in html
    text = " ".join(parse(html).text)
    assert "suppressed: <b>vetted</b> fixture" in text


def test_references_are_text_and_only_advisory_urls_are_links(scanned: ScanResult) -> None:
    file = scanned.files[[f.path for f in scanned.files].index("evil.pkl")]
    references = (
        "CVE-2025-1944",
        "https://github.com/advisories/GHSA-qhfp-9ccx-m25m",
        "javascript:alert(1)",
        "https://evil.example/x",
    )
    with_refs = replace(file, findings=tuple(replace(f, references=references) for f in file.findings))
    page = parse(render_html(replace(scanned, files=(with_refs,))))
    hrefs = [value for name, value in page.attributes if name == "href"]
    assert hrefs == ["https://github.com/advisories/GHSA-qhfp-9ccx-m25m"]
    text = " ".join(page.text)
    for reference in references:
        assert reference in text


def test_invisible_characters_are_shown_escaped() -> None:
    assert escape("a\x1b[31m\u202eb<") == "a\\u001b[31m\\u202eb&lt;"
    assert escape("line\nnext") == "line\nnext"
