"""Rules about executables and scripts embedded in model files, archives and appended data."""

from __future__ import annotations

from modelshield.engine.findings import Category, Severity
from modelshield.engine.rules import Rule

EMBEDDED_EXECUTABLE = Rule(
    id="EMBEDDED-EXECUTABLE",
    title="Native executable or script embedded in a model",
    severity=Severity.HIGH,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    description=(
        "An ELF, PE or Mach-O binary or a shebang script was found by its signature inside a model "
        "container, after a format's end, in metadata, or next to the model files. Models do not need "
        "native code; a dropper hides its second stage this way. Graded high inside a model or after a "
        "format's end; a stand-alone file in a scanned folder is loaded by no model loader, so it is "
        "only noted (low for a native binary, info for a script)."
    ),
    remediation=(
        "Do not run or extract the embedded program. Find out why it is there; rebuild the model "
        "artefact without it from a trusted source."
    ),
)

RULES = (EMBEDDED_EXECUTABLE,)
