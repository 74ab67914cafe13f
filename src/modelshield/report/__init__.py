"""Renderers of a finished ScanResult; they never see CLI flags."""

from __future__ import annotations

from collections.abc import Callable

from modelshield.engine.result import ScanResult

Renderer = Callable[[ScanResult], str]
"""Every report format is a function from a finished result to the text of the report."""

REPORT_FORMATS: tuple[str, ...] = ("text", "json", "sarif", "html", "junit", "cyclonedx")


def renderer_for(format_name: str) -> Renderer:
    """The renderer of a report format, imported only when asked for (rich is slow to import)."""
    if format_name == "json":
        from modelshield.report.json import render_json

        return render_json
    if format_name == "text":
        from modelshield.report.text import render_text

        return render_text
    if format_name == "cyclonedx":
        from modelshield.report.cyclonedx import render_cyclonedx, require_cyclonedx

        require_cyclonedx()  # fail on a missing extra when the format is chosen, not after the scan
        return render_cyclonedx
    if format_name == "sarif":
        from modelshield.report.sarif import render_sarif

        return render_sarif
    if format_name == "html":
        from modelshield.report.html import render_html

        return render_html
    if format_name == "junit":
        from modelshield.report.junit import render_junit

        return render_junit
    raise ValueError(f"unknown report format: {format_name!r}")
