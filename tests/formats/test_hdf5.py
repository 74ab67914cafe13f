"""HDF5 and legacy Keras H5: h5py walks the file in an isolated child; external links and storage,
virtual datasets, user blocks, code in attributes and Lambda layers in model_config (CVE-2024-3660)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from tests.samples import hdf5_samples as hs

from modelshield import FileResult, Severity, Verdict, scan
from modelshield.analysis import isolated
from modelshield.analysis.hdf5_probe import code_reasons
from modelshield.analysis.isolated import IsolationLimits, run_module
from modelshield.engine.limits import Limits, MiB
from modelshield.formats import hdf5


def scan_file(path: Path) -> FileResult:
    return scan(path, compute_hash=False).files[0]


def located(result: FileResult) -> set[tuple[str, tuple[str, ...], str | None]]:
    """Rule ids with their location chains (the scanned file by name) and details."""
    return {(f.rule_id, chain(f.location.chain), f.location.detail) for f in result.findings}


def chain(elements: tuple[str, ...]) -> tuple[str, ...]:
    return (Path(elements[0]).name, *elements[1:])


def test_plain_hdf5_is_clean(tmp_path: Path) -> None:
    result = scan_file(hs.plain(tmp_path))
    assert result.tree.format == "hdf5"
    assert (result.findings, result.issues) == ((), ())
    assert result.verdict is Verdict.CLEAN


def test_real_legacy_keras_h5_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # keras reads it once, at its first import
    pytest.importorskip("keras")
    result = scan_file(hs.keras_saved(tmp_path))
    assert (result.findings, result.issues) == ((), ())


def test_real_keras_lambda_saved_as_h5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    pytest.importorskip("keras")
    result = scan_file(hs.keras_saved_lambda(tmp_path))
    [finding] = result.findings
    assert finding.rule_id == "KERAS-LAMBDA"
    assert chain(finding.location.chain) == ("lambda_saved.h5", "model_config")
    assert finding.severity is Severity.HIGH  # harmless code: no name reaching outside the computation


def test_external_links_absolute_and_climbing(tmp_path: Path) -> None:
    path = hs.external_links(tmp_path, "/etc/passwd", "../x.h5", "sibling.h5")
    result = scan_file(path)
    assert located(result) == {
        ("HDF5-PATH-ESCAPE", ("links.h5",), "/link0"),
        ("HDF5-PATH-ESCAPE", ("links.h5",), "/link1"),
        ("HDF5-EXTERNAL-LINK", ("links.h5",), "/link2"),
    }
    assert {f.severity for f in result.findings if f.rule_id == "HDF5-PATH-ESCAPE"} == {Severity.HIGH}
    assert result.verdict is Verdict.SUSPICIOUS


def test_external_raw_storage(tmp_path: Path) -> None:
    assert located(scan_file(hs.external_storage(tmp_path, "/etc/shadow"))) == {
        ("HDF5-PATH-ESCAPE", ("external.h5",), "/raw")
    }
    assert located(scan_file(hs.external_storage(tmp_path, "data.bin", name="near.h5"))) == {
        ("HDF5-EXTERNAL-STORAGE", ("near.h5",), "/raw")
    }


def test_virtual_dataset_sources(tmp_path: Path) -> None:
    assert located(scan_file(hs.virtual(tmp_path, "../secrets.h5"))) == {
        ("HDF5-PATH-ESCAPE", ("virtual.h5",), "/v")
    }
    assert located(scan_file(hs.virtual(tmp_path, "part.h5", name="parts.h5"))) == {
        ("HDF5-EXTERNAL-STORAGE", ("parts.h5",), "/v")
    }


def test_user_block_with_an_executable_is_scanned_as_a_child(tmp_path: Path) -> None:
    result = scan_file(hs.user_block(tmp_path, hs.ELF_HEADER))
    assert located(result) == {
        ("HDF5-USER-BLOCK", ("userblock.h5",), "user block"),
        ("EMBEDDED-EXECUTABLE", ("userblock.h5", "(user block)"), "ELF"),
    }


def test_text_header_in_the_user_block_is_only_noted(tmp_path: Path) -> None:
    """MATLAB v7.3 .mat files are HDF5 with a text header in a 512-byte user block."""
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Nov 26 2026 HDF5 schema 1.00 ."
    result = scan_file(hs.user_block(tmp_path, header))
    assert [(f.rule_id, f.severity.value) for f in result.findings] == [("HDF5-USER-BLOCK", "low")]
    assert result.verdict.value == "clean"


def test_empty_user_block_is_clean(tmp_path: Path) -> None:
    result = scan_file(hs.user_block(tmp_path, b""))
    assert (result.findings, result.issues) == ((), ())


def test_code_in_an_attribute(tmp_path: Path) -> None:
    result = scan_file(hs.code_attribute(tmp_path))
    assert located(result) == {("HDF5-CODE-ATTRIBUTE", ("code.h5",), "/data attribute hook")}
    assert "os.system" in result.findings[0].evidence


def test_code_reasons_name_pickles_and_executables() -> None:
    assert code_reasons(b"\x80\x04\x95") == ["pickle protocol 4"]
    assert code_reasons(hs.ELF_HEADER) == ["ELF executable"]
    assert code_reasons(b"a dense layer") == []


def test_cve_2024_3660_lambda_in_legacy_model_config(tmp_path: Path) -> None:
    path = hs.legacy_keras(tmp_path, hs.lambda_model_config(hs.OS_SYSTEM_LAMBDA))
    result = scan_file(path)
    assert {(f.rule_id, chain(f.location.chain)) for f in result.findings} == {
        ("KERAS-LAMBDA", ("lambda.h5", "model_config"))
    }
    lam = next(f for f in result.findings if f.rule_id == "KERAS-LAMBDA")
    assert lam.severity is Severity.CRITICAL
    assert "it names __import__, os, system" in lam.message
    assert lam.location.detail is not None and "Lambda" in lam.location.detail
    assert result.verdict is Verdict.MALICIOUS


def test_hdf5_inside_a_zip_is_copied_for_the_child(tmp_path: Path) -> None:
    inner = hs.external_links(tmp_path, "/etc/passwd")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(inner, "weights/links.h5")
    path = tmp_path / "bundle.zip"
    path.write_bytes(buffer.getvalue())
    result = scan_file(path)
    assert ("HDF5-PATH-ESCAPE", ("bundle.zip", "weights/links.h5"), "/link0") in located(result)


def test_child_timeout_is_an_issue_never_clean(tmp_path: Path) -> None:
    result = scan(hs.plain(tmp_path), compute_hash=False, limits=Limits(child_wall_seconds=0.001)).files[0]
    assert [i.kind for i in result.issues] == ["isolation"]
    assert "timed out" in result.issues[0].message
    assert result.verdict is Verdict.ERROR


def test_child_out_of_memory_is_an_issue_never_clean(tmp_path: Path) -> None:
    result = scan(hs.plain(tmp_path), compute_hash=False, limits=Limits(child_memory_bytes=32 * MiB)).files[0]
    assert [i.kind for i in result.issues] == ["isolation"]
    assert result.verdict is Verdict.ERROR


def test_child_crash_is_an_issue_never_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hdf5, "PROBE_MODULE", "modelshield.analysis.no_such_probe")
    result = scan_file(hs.plain(tmp_path))
    assert [i.kind for i in result.issues] == ["isolation"]
    assert result.verdict is Verdict.ERROR


def test_memory_limit_applies_in_the_child() -> None:
    # numpy and h5py do not even load in 16 MiB of address space: the child fails, the parent goes on
    hog = run_module("modelshield.analysis.hdf5_probe", ["/dev/null"], IsolationLimits(memory_bytes=16 * MiB))
    assert hog.document is None and hog.failure


def test_non_json_output_is_refused() -> None:
    run = run_module("this", [], IsolationLimits())  # prints the Zen of Python
    assert run.document is None and run.failure is not None and "not JSON" in run.failure


def test_private_copy_is_removed(tmp_path: Path) -> None:
    from modelshield.engine.blob import BufferBlob

    with isolated.blob_as_file(BufferBlob(b"\x89HDF\r\n\x1a\n", ("x",)), 1024) as (path, fds):
        assert fds == () and Path(path).read_bytes().startswith(b"\x89HDF")
        assert Path(path).parent.stat().st_mode & 0o077 == 0
    assert not Path(path).exists()
    with pytest.raises(isolated.BlobTooLarge):
        with isolated.blob_as_file(BufferBlob(b"x" * 2048, ("x",)), 1024):
            pass


def test_without_h5py_hdf5_is_not_analysed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hs.plain(tmp_path)
    monkeypatch.setattr(hdf5.importlib.util, "find_spec", lambda name: None)
    result = scan_file(path)
    assert [i.kind for i in result.issues] == ["unsupported"]
    assert result.verdict is Verdict.ERROR


def test_garbage_after_the_signature_is_never_clean(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    result = scan_file(path)
    assert result.tree.format == "hdf5"
    assert result.verdict is Verdict.ERROR
