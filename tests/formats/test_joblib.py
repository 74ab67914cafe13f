"""joblib files: array data inline in the pickle stream, object arrays as nested pickles, compressors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest

import modelshield
from modelshield import Severity, Verdict


class MarkerPayload:
    """Harmless payload: loading it creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _dangerous(result: modelshield.ScanResult) -> list[modelshield.Finding]:
    return [f for f in result.files[0].findings if f.rule_id == "PICKLE-DANGEROUS-CALL"]


def _build(path: Path, obj: object, compress: object = 0) -> Path:
    joblib.dump(obj, path, compress=compress)
    return path


BENIGN = {
    "float-and-int-arrays": lambda: {
        "w": np.arange(1000, dtype=np.float32),
        "i": np.arange(7, dtype=np.int64),
    },
    "object-array": lambda: np.array(["a", 1, None, 2.5], dtype=object),
    "structured-with-object-field": lambda: np.zeros(3, dtype=[("a", "f4"), ("b", "O")]),
    "unicode-and-bytes": lambda: [
        np.array(["ab", "cde"]),
        np.zeros(4, dtype="S5"),
        np.zeros((2, 3), order="F"),
    ],
    "scalar-array": lambda: np.float64(3.5) * np.ones(()),
}


@pytest.mark.parametrize("compress", [0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
@pytest.mark.parametrize("label", sorted(BENIGN))
def test_benign_joblib_files_are_clean(tmp_path: Path, label: str, compress: object) -> None:
    path = _build(tmp_path / "model.joblib", BENIGN[label](), compress)
    result = modelshield.scan(path)
    file = result.files[0]
    assert file.issues == ()
    assert [f for f in file.findings if f.severity >= Severity.MEDIUM] == []
    assert file.verdict is Verdict.CLEAN


def test_payload_after_large_inline_array_is_found(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    # The array bytes sit raw in the stream; the machine must skip exactly them to see the payload.
    path = _build(
        tmp_path / "m.joblib", {"weights": np.ones(50_000, dtype=np.float64), "evil": MarkerPayload(marker)}
    )
    result = modelshield.scan(path)
    found = _dangerous(result)
    assert [f.evidence for f in found] == [f"posix.system('touch {marker}')"]
    assert found[0].location.chain == (str(path),)
    assert found[0].location.opcode == "REDUCE"
    assert found[0].location.offset > 400_000  # after the array data
    assert result.verdict is Verdict.MALICIOUS


@pytest.mark.parametrize("compress", [0, ("zlib", 3), ("xz", 3)])
def test_payload_inside_object_array_nested_pickle_is_found(tmp_path: Path, compress: object) -> None:
    marker = tmp_path / "marker"
    array = np.array([1, MarkerPayload(marker)], dtype=object)
    path = _build(tmp_path / "m.joblib", {"a": np.zeros(10), "objects": array}, compress)
    result = modelshield.scan(path)
    found = _dangerous(result)
    assert len(found) == 1
    assert found[0].evidence == f"posix.system('touch {marker}')"
    chain = found[0].location.chain
    assert chain[0] == str(path)
    if compress:
        assert len(chain) == 2 and chain[1].endswith("decompressed")


def test_real_joblib_load_runs_the_object_array_payload(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = _build(tmp_path / "m.joblib", np.array([MarkerPayload(marker)], dtype=object))
    code = textwrap.dedent(
        f"""
        import joblib
        joblib.load({str(path)!r})
        """
    )
    subprocess.run([sys.executable, "-c", code], timeout=60, check=False, capture_output=True)
    assert marker.exists()
    assert modelshield.scan(path).verdict is Verdict.MALICIOUS


def _zfile(payload: bytes) -> bytes:
    """joblib's pre-0.10 compressed format: b'ZF' + hex length padded to 19 + zlib data."""
    import zlib

    return b"ZF" + hex(len(payload)).encode().ljust(19) + zlib.compress(payload)


def _old_joblib_pickle(filename: str) -> bytes:
    import pickle

    from joblib.numpy_pickle_compat import NDArrayWrapper

    return pickle.dumps({"w": NDArrayWrapper(filename, np.ndarray)}, protocol=2)


def test_joblib_zfile_payload_is_found_and_really_runs(tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "marker"
    path = tmp_path / "old.pkl"
    path.write_bytes(_zfile(pickle.dumps(MarkerPayload(marker), protocol=2)))
    result = modelshield.scan(path)
    (found,) = _dangerous(result)
    assert found.location.chain == (str(path), "zfile-decompressed")
    assert result.files[0].tree.format == "joblib-zfile"
    code = f"import joblib; joblib.load({str(path)!r})"
    subprocess.run([sys.executable, "-c", code], timeout=60, check=False, capture_output=True)
    assert marker.exists()


def test_old_joblib_array_file_outside_the_folder_is_flagged_and_really_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array([MarkerPayload(marker)], dtype=object), allow_pickle=True)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    path = model_dir / "model.pkl"
    path.write_bytes(_zfile(_old_joblib_pickle("../evil.npy")))
    findings = [f for f in modelshield.scan(path).files[0].findings if f.rule_id == "PICKLE-EXTERNAL-FILE"]
    assert [(f.severity, f.evidence, f.location.chain) for f in findings] == [
        (Severity.HIGH, "../evil.npy", (str(path), "zfile-decompressed"))
    ]
    code = f"import joblib; joblib.load({str(path)!r})"
    subprocess.run([sys.executable, "-c", code], timeout=60, check=False, capture_output=True)
    assert marker.exists()  # joblib really unpickles the file the wrapper names


def test_old_joblib_sibling_array_file_is_only_named(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(_zfile(_old_joblib_pickle("model.pkl_01.npy")))
    file = modelshield.scan(path).files[0]
    (finding,) = [f for f in file.findings if f.rule_id == "PICKLE-EXTERNAL-FILE"]
    assert finding.severity is Severity.INFO and finding.evidence == "model.pkl_01.npy"
