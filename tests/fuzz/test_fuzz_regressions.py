"""Inputs the fuzzers (fuzz/) found to break a handler: each is now scanned with the right issue or finding.

Each file in tests/fuzz/crashes/ is a crashing input kept as libFuzzer wrote it, renamed after what is
wrong with it. Before its fix, the dispatcher's catch-all reported "<handler> handler failed: ..." and
nothing after the failure point was scanned.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.samples.archives import scan_bytes

from modelshield.engine.dispatch import BlobScan

CRASHES = Path(__file__).parent / "crashes"

EXPECTED: dict[str, tuple[str, list[tuple[str, str]], list[str]]] = {
    # file name: (format, [(issue kind, issue message)], [rule ids])
    "7z-invalid-header-data.bin": (
        "7z",
        [("corrupt", "7z headers could not be read: Bad7zFile('invalid header data')")],
        [],
    ),
    "7z-magic-only.bin": (
        "7z",
        [
            (
                "corrupt",
                "7z headers could not be read: Bad7zFile('truncated archive: expected 4 bytes for a uint32')",
            )
        ],
        [],
    ),
    "zip-no-end-record.bin": (
        "zip",
        [("corrupt", "zip structure could not be read: no end-of-central-directory record")],
        [],
    ),
    "zip-directory-outside-file.bin": (
        "zip",
        [("corrupt", "zip structure could not be read: central directory offsets point outside the file")],
        [],
    ),
    # pickle.loads(gzip.decompress(<corrupt gzip>)): zlib.error is no ValueError and escaped the machine.
    "pickle-corrupt-gzip-payload.bin": ("pickle", [], ["PICKLE-NESTED-LOAD", "PICKLE-UNKNOWN-CALL"]),
    "xml-unknown-encoding.bin": (
        "xml-model",
        [("unparsed", "XML does not parse: unknown encoding: UTG-8")],
        [],
    ),
}


def _scan(name: str) -> BlobScan:
    scanned = scan_bytes((CRASHES / name).read_bytes(), name)
    assert isinstance(scanned, BlobScan)
    return scanned


def test_every_kept_crash_has_an_expectation() -> None:
    assert sorted(path.name for path in CRASHES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_crashing_input_is_scanned_without_a_failed_handler(name: str) -> None:
    scanned = _scan(name)
    fmt, issues, rule_ids = EXPECTED[name]
    assert not [i.message for i in scanned.issues if "handler failed" in i.message]
    assert scanned.tree.format == fmt
    assert [(i.kind, i.message) for i in scanned.issues] == issues
    assert sorted({f.rule_id for f in scanned.findings}) == rule_ids
