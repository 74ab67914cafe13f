"""NumPy .npy/.npz: np.save output is clean; object arrays hand their pickle on; bad headers are named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.samples import numpy_samples as samples

from modelshield import FileResult, Severity, Verdict, scan
from modelshield.formats import numpy as npy_format


def scan_one(path: Path) -> FileResult:
    result = scan(path, compute_hash=False)
    assert len(result.files) == 1
    return result.files[0]


def rule_hits(file: FileResult) -> set[tuple[str, tuple[str, ...]]]:
    return {(f.rule_id, f.location.chain) for f in file.findings}


def rule_ids(file: FileResult) -> set[str]:
    return {f.rule_id for f in file.findings}


def run_loader(code: str, timeout: float = 60) -> None:
    subprocess.run([sys.executable, "-c", code], timeout=timeout, check=False, capture_output=True)


@pytest.mark.parametrize("build", [samples.float_npy, samples.structured_npy, samples.npz, samples.v3_npy])
def test_plain_arrays_are_clean(tmp_path: Path, build) -> None:
    file = scan_one(build(tmp_path))
    assert file.findings == ()
    assert file.issues == ()
    assert file.verdict is Verdict.CLEAN


def test_py2_long_suffix_header_is_read_like_numpy(tmp_path: Path) -> None:
    path = samples.py2_long_npy(tmp_path)
    file = scan_one(path)
    assert file.findings == () and file.issues == ()


def test_object_array_of_ints_is_clean_but_noted(tmp_path: Path) -> None:
    path = samples.object_ints_npy(tmp_path)
    file = scan_one(path)
    assert rule_hits(file) == {("NUMPY-OBJECT-ARRAY", (str(path),))}
    assert file.verdict is Verdict.CLEAN
    assert file.tree.children[0].format == "pickle"


def test_object_array_payload_is_found_in_its_pickle(tmp_path: Path) -> None:
    path = samples.malicious_object_npy(tmp_path, tmp_path / "marker")
    file = scan_one(path)
    hits = rule_hits(file)
    assert ("NUMPY-OBJECT-ARRAY", (str(path),)) in hits
    assert ("PICKLE-DANGEROUS-CALL", (str(path), "array data")) in hits
    assert file.verdict is Verdict.MALICIOUS


def test_object_field_in_structured_dtype(tmp_path: Path) -> None:
    path = samples.malicious_structured_object_npy(tmp_path, tmp_path / "marker")
    file = scan_one(path)
    assert ("NUMPY-OBJECT-ARRAY", (str(path),)) in rule_hits(file)
    assert ("PICKLE-DANGEROUS-CALL", (str(path), "array data")) in rule_hits(file)


def test_npz_compressed_with_object_ints_is_clean(tmp_path: Path) -> None:
    path = samples.npz_compressed(tmp_path)
    file = scan_one(path)
    assert rule_hits(file) == {("NUMPY-OBJECT-ARRAY", (str(path), "b.npy"))}
    assert file.verdict is Verdict.CLEAN
    assert file.issues == ()


@pytest.mark.parametrize("compressed", [False, True])
def test_object_array_payload_inside_npz(tmp_path: Path, compressed: bool) -> None:
    path = samples.malicious_npz(tmp_path, tmp_path / "marker", compressed=compressed)
    file = scan_one(path)
    hits = rule_hits(file)
    assert ("NUMPY-OBJECT-ARRAY", (str(path), "payload.npy")) in hits
    assert ("PICKLE-DANGEROUS-CALL", (str(path), "payload.npy", "array data")) in hits
    assert file.verdict is Verdict.MALICIOUS


def test_truncated_data(tmp_path: Path) -> None:
    path = samples.truncated_npy(tmp_path)
    file = scan_one(path)
    assert rule_hits(file) == {("NUMPY-TRUNCATED", (str(path),))}
    assert "80 bytes" in file.findings[0].message


def test_appended_data_is_reported_and_scanned(tmp_path: Path) -> None:
    path = samples.appended_npy(tmp_path)
    file = scan_one(path)
    assert ("NUMPY-APPENDED-DATA", (str(path),)) in rule_hits(file)
    finding = next(f for f in file.findings if f.rule_id == "NUMPY-APPENDED-DATA")
    assert finding.severity is Severity.MEDIUM
    assert finding.location.offset == path.stat().st_size - len(b"MZ\x90\0extra payload")
    assert [c.name for c in file.tree.children] == ["appended data"]


@pytest.mark.parametrize("build", [samples.negative_shape_npy, samples.absurd_shape_npy])
def test_absurd_shapes(tmp_path: Path, build) -> None:
    path = build(tmp_path)
    assert rule_hits(scan_one(path)) == {("NUMPY-ABSURD-SHAPE", (str(path),))}


def test_oversized_header(tmp_path: Path) -> None:
    path = samples.oversized_header_npy(tmp_path)
    assert "NUMPY-HEADER-OVERSIZED" in rule_ids(scan_one(path))


def test_header_that_is_not_a_literal_is_never_evaluated(tmp_path: Path) -> None:
    path = samples.not_literal_npy(tmp_path)
    assert rule_hits(scan_one(path)) == {("NUMPY-MALFORMED-HEADER", (str(path),))}


def test_unknown_dtype_is_an_issue_not_clean(tmp_path: Path) -> None:
    header = "{'descr': 'no-such-type', 'fortran_order': False, 'shape': (1,), }"
    path = samples.write(tmp_path, "odd.npy", samples.npy_bytes(header, b"\0" * 4))
    file = scan_one(path)
    assert rule_ids(file) == {"NUMPY-MALFORMED-HEADER"}
    assert file.issues and file.verdict is not Verdict.CLEAN


@pytest.mark.parametrize(
    "dtype",
    ["<f8", "|b1", "<U7", "|S3", "<M8[ns]", "<c16", [("a", "<i4"), ("b", "<f8", (2, 3))], [("x", "O")]],
)
def test_itemsize_matches_numpy(dtype: object) -> None:
    real = np.dtype(dtype)
    described = npy_format.describe_dtype(real.descr if isinstance(dtype, list) else real.str)
    assert described.itemsize == real.itemsize
    assert described.has_object == real.hasobject


# --- the real loaders run these payloads: proof that the findings are not theoretical ------------


def test_np_load_runs_object_array_payload(tmp_path: Path) -> None:
    marker = tmp_path / "npy-marker"
    path = samples.malicious_object_npy(tmp_path, marker)
    run_loader(f"import numpy; numpy.load({str(path)!r}, allow_pickle=True)")
    assert marker.exists()


def test_np_load_runs_payload_inside_npz(tmp_path: Path) -> None:
    marker = tmp_path / "npz-marker"
    path = samples.malicious_npz(tmp_path, marker, compressed=True)
    run_loader(f"import numpy; numpy.load({str(path)!r}, allow_pickle=True)['payload']")
    assert marker.exists()
