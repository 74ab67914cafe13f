"""Safetensors: save_file output is clean; every header defect is named, and the real library says which
of the crafted files it would load (those are the dangerous ones)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.samples import safetensors_samples as samples

from modelshield import FileResult, Severity, Verdict, scan
from modelshield.formats import safetensors as st_format


def scan_one(path: Path) -> FileResult:
    result = scan(path, compute_hash=False)
    assert len(result.files) == 1
    return result.files[0]


def rule_hits(file: FileResult) -> set[tuple[str, tuple[str, ...]]]:
    return {(f.rule_id, f.location.chain) for f in file.findings}


def library_loads(path: Path) -> bool:
    """Whether the real safetensors library opens the file and reads every tensor."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                handle.get_tensor(key)
            handle.metadata()
    except Exception:  # noqa: BLE001 - any refusal counts
        return False
    return True


@pytest.mark.parametrize("build", [samples.torch_file, samples.numpy_file, samples.empty_file])
def test_files_written_by_the_library_are_clean(tmp_path: Path, build: Callable[[Path], Path]) -> None:
    path = build(tmp_path)
    file = scan_one(path)
    assert file.findings == ()
    assert file.issues == ()
    assert file.verdict is Verdict.CLEAN
    assert file.tree.format == "safetensors"
    assert library_loads(path)


# (builder, rule, does the real library load the file?)
HOSTILE: list[tuple[Callable[[Path], Path], str, bool]] = [
    (samples.header_too_large, "SAFETENSORS-HEADER-LENGTH", False),
    (samples.header_past_end, "SAFETENSORS-HEADER-LENGTH", False),
    (samples.header_not_json, "SAFETENSORS-HEADER-MALFORMED", False),
    (samples.header_deep, "SAFETENSORS-HEADER-MALFORMED", False),
    (samples.header_not_utf8, "SAFETENSORS-HEADER-MALFORMED", False),
    (samples.duplicate_key, "SAFETENSORS-DUPLICATE-KEY", True),
    (samples.bad_dtype, "SAFETENSORS-BAD-DTYPE", False),
    (samples.bad_shape, "SAFETENSORS-BAD-SHAPE", False),
    (samples.size_mismatch, "SAFETENSORS-SIZE-MISMATCH", False),
    (samples.size_overflow, "SAFETENSORS-SIZE-MISMATCH", False),
    (samples.out_of_range, "SAFETENSORS-OFFSET-OUT-OF-RANGE", False),
    (samples.overlapping, "SAFETENSORS-OVERLAPPING-TENSORS", False),
    (samples.gap, "SAFETENSORS-LAYOUT-GAP", False),
    (samples.appended_elf, "SAFETENSORS-APPENDED-DATA", False),
    (samples.unaligned, "SAFETENSORS-UNALIGNED-TENSOR", True),
    (samples.unknown_field, "SAFETENSORS-UNKNOWN-FIELD", True),
    (samples.metadata_nested, "SAFETENSORS-METADATA-TYPE", False),
    (samples.metadata_pickle_base64, "SAFETENSORS-METADATA-PAYLOAD", True),
    (samples.metadata_pickle_raw, "SAFETENSORS-METADATA-PAYLOAD", True),
    (samples.metadata_elf_base64, "SAFETENSORS-METADATA-PAYLOAD", True),
    (samples.metadata_code, "SAFETENSORS-METADATA-CODE", True),
    (samples.metadata_url, "SAFETENSORS-METADATA-URL", True),
]


@pytest.mark.parametrize(("build", "rule_id", "loads"), HOSTILE, ids=[b.__name__ for b, _, _ in HOSTILE])
def test_each_defect_is_named_at_the_file(
    tmp_path: Path, build: Callable[[Path], Path], rule_id: str, loads: bool
) -> None:
    path = build(tmp_path)
    file = scan_one(path)
    assert (rule_id, (str(path),)) in rule_hits(file)
    assert file.tree.format == "safetensors"
    assert library_loads(path) is loads


def test_refused_files_are_suspicious_and_accepted_oddities_are_low(tmp_path: Path) -> None:
    assert scan_one(samples.overlapping(tmp_path)).verdict is Verdict.SUSPICIOUS
    odd = scan_one(samples.unaligned(tmp_path))
    assert {f.severity for f in odd.findings} == {Severity.LOW}
    assert odd.verdict is Verdict.CLEAN


def test_duplicate_key_names_the_key_the_library_resolves_to_the_last(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = samples.duplicate_key(tmp_path)
    file = scan_one(path)
    assert rule_hits(file) == {("SAFETENSORS-DUPLICATE-KEY", (str(path),))}
    assert "'a'" in file.findings[0].message
    with safe_open(str(path), "np") as handle:
        assert str(handle.get_tensor("a").dtype) == "uint8"  # the second entry won


def test_elf_appended_to_a_real_file_is_scanned_by_content(tmp_path: Path) -> None:
    path = samples.appended_to_real(tmp_path)
    file = scan_one(path)
    assert rule_hits(file) == {
        ("SAFETENSORS-APPENDED-DATA", (str(path),)),
        ("EMBEDDED-EXECUTABLE", (str(path), "(data after tensors)")),
    }
    exe = next(f for f in file.findings if f.rule_id == "EMBEDDED-EXECUTABLE")
    assert exe.severity is Severity.HIGH
    appended = next(f for f in file.findings if f.rule_id == "SAFETENSORS-APPENDED-DATA")
    assert appended.location.offset == path.stat().st_size - len(samples.elf_bytes())


def test_bytes_in_a_gap_are_scanned_by_content(tmp_path: Path) -> None:
    path = samples.gap(tmp_path)
    hits = rule_hits(scan_one(path))
    assert ("SAFETENSORS-LAYOUT-GAP", (str(path),)) in hits
    assert ("EMBEDDED-EXECUTABLE", (str(path), "(gap before b)")) in hits


@pytest.mark.parametrize(
    ("build", "element"),
    [
        (samples.metadata_pickle_base64, "__metadata__[state] (base64)"),
        (samples.metadata_pickle_raw, "__metadata__[state] (raw)"),
    ],
)
def test_pickle_in_metadata_is_judged_by_the_pickle_engine(
    tmp_path: Path, build: Callable[[Path], Path], element: str
) -> None:
    path = build(tmp_path)
    file = scan_one(path)
    hits = rule_hits(file)
    assert ("SAFETENSORS-METADATA-PAYLOAD", (str(path),)) in hits
    assert ("PICKLE-DANGEROUS-CALL", (str(path), element)) in hits
    assert file.verdict is Verdict.MALICIOUS
    assert not (tmp_path / "marker").exists()


def test_executable_in_metadata_is_reported_where_it_decodes(tmp_path: Path) -> None:
    path = samples.metadata_elf_base64(tmp_path)
    hits = rule_hits(scan_one(path))
    assert hits == {
        ("SAFETENSORS-METADATA-PAYLOAD", (str(path),)),
        ("EMBEDDED-EXECUTABLE", (str(path), "__metadata__[blob] (base64)")),
    }


def test_metadata_findings_name_the_key(tmp_path: Path) -> None:
    file = scan_one(samples.metadata_code(tmp_path))
    assert [f.location.detail for f in file.findings] == ["__metadata__['post_load']"]


def test_header_is_never_parsed_past_the_limit(tmp_path: Path) -> None:
    path = samples.header_too_large(tmp_path)
    file = scan_one(path)
    assert [f.rule_id for f in file.findings] == ["SAFETENSORS-HEADER-LENGTH"]
    assert str(st_format.MAX_HEADER_BYTES) in file.findings[0].message


def test_dtype_table_matches_the_library() -> None:
    """Every dtype the installed library names in its refusal message is in the table, and no other."""
    import json
    import struct

    from safetensors import deserialize

    text = json.dumps({"a": {"dtype": "NOPE", "shape": [0], "data_offsets": [0, 0]}}).encode()
    with pytest.raises(Exception) as refused:  # noqa: PT011 - the library raises its own error type
        deserialize(struct.pack("<Q", len(text)) + text)
    listed = set(
        str(refused.value).split("expected one of ")[1].split(" at line")[0].replace("`", "").split(", ")
    )
    assert listed == set(st_format.DTYPE_BITS)


def test_many_bad_entries_are_capped(tmp_path: Path) -> None:
    header = {f"t{i}": {"dtype": "X", "shape": [1], "data_offsets": [0, 1]} for i in range(50)}
    path = samples.write(tmp_path, "many.safetensors", samples.build(header, b"\0"))
    file = scan_one(path)
    dtype_findings = [f for f in file.findings if f.rule_id == "SAFETENSORS-BAD-DTYPE"]
    assert len(dtype_findings) == st_format.MAX_FINDINGS_PER_RULE + 1
    assert "30 more" in dtype_findings[-1].message


def test_text_whose_ninth_byte_is_a_brace_is_not_safetensors(tmp_path: Path) -> None:
    """Source code and JSON read as a length give an absurd one; only real headers are claimed."""
    path = tmp_path / "codes.py"
    path.write_text('EMOJI = {"1st_place_medal": "x", "2nd": "y"}\n')
    file = scan_one(path)
    assert file.tree.format == "data" and file.findings == ()
