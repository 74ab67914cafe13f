"""Scan before load: malicious files are refused before any loader runs; clean files load as usual."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from tests.formats.test_placeholder import LFS_POINTER
from tests.samples import numpy_samples, torch_samples
from tests.samples import pickles as pk

import modelshield
from modelshield import Policy, Severity, UnsafeModelError, safe_open
from modelshield.engine.findings import Finding, Location, Suppression
from modelshield.engine.result import FileResult, FormatNode, ScanResult
from modelshield.errors import ModelShieldError, UsageError
from modelshield.rules.pickle import DANGEROUS_CALL
from modelshield.safe_load import check_policy

# The wrapper runs in a child process: if the guard ever let a payload through, it would touch only
# the marker file in the test's temporary directory, and never the test process.
GUARDED_LOAD = r"""
import sys
import modelshield
from modelshield import UnsafeModelError

path, loader = sys.argv[1:3]
kwargs = {"torch": {"weights_only": False}, "np": {"allow_pickle": True}}.get(loader, {})
try:
    getattr(modelshield, f"safe_{loader}_load")(path, **kwargs)
except UnsafeModelError as exc:
    print(f"REFUSED {exc}")
    sys.exit(7)
print("LOADED")
"""


def malicious_pickle(directory: Path, marker: Path) -> Path:
    path = directory / "evil.pkl"
    path.write_bytes(pk.os_system(str(marker)))
    return path


def malicious_joblib(directory: Path, marker: Path) -> Path:
    path = directory / "evil.joblib"
    joblib.dump({"model": torch_samples.MarkerPayload(marker)}, path)
    return path


MALICIOUS = {
    "pickle": malicious_pickle,
    "joblib": malicious_joblib,
    "torch": torch_samples.malicious_zip_pt,
    "np": numpy_samples.malicious_object_npy,
}


@pytest.mark.parametrize("loader", sorted(MALICIOUS))
def test_malicious_file_is_refused_and_its_loader_never_runs(tmp_path: Path, loader: str) -> None:
    marker = tmp_path / "marker"
    path = MALICIOUS[loader](tmp_path, marker)
    assert not marker.exists()
    done = subprocess.run(
        [sys.executable, "-c", GUARDED_LOAD, str(path), loader],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 7, done.stdout + done.stderr
    assert "REFUSED refused to load" in done.stdout
    assert "DANGEROUS-CALL" in done.stdout
    assert not marker.exists()


def test_refusal_carries_the_result_and_its_findings(tmp_path: Path) -> None:
    path = malicious_pickle(tmp_path, tmp_path / "marker")
    with pytest.raises(UnsafeModelError) as caught, safe_open(path):
        pytest.fail("the block must not run for a malicious file")
    error = caught.value
    assert isinstance(error, ModelShieldError)
    assert error.result.files[0].path == str(path)
    assert [f.rule_id for f in error.findings] == ["PICKLE-DANGEROUS-CALL"]
    assert "critical PICKLE-DANGEROUS-CALL at" in str(error)


def test_a_file_that_cannot_be_fully_scanned_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(LFS_POINTER)
    with pytest.raises(UnsafeModelError, match="could not be fully scanned") as caught:
        modelshield.safe_pickle_load(path)
    assert "not scanned (placeholder)" in str(caught.value)
    assert caught.value.findings == ()


def test_clean_torch_state_dict_loads(tmp_path: Path) -> None:
    path = torch_samples.state_dict_pt(tmp_path)
    loaded = modelshield.safe_torch_load(path, map_location="cpu")
    expected = torch.load(path)  # safe: a state_dict the test itself wrote
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_clean_numpy_array_and_archive_load(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", array)
    np.savez(tmp_path / "b.npz", first=array, second=array * 2)
    assert np.array_equal(modelshield.safe_np_load(tmp_path / "a.npy"), array)
    archive = modelshield.safe_np_load(tmp_path / "b.npz")
    assert sorted(archive) == ["first", "second"]
    assert np.array_equal(archive["second"], array * 2)


def test_clean_joblib_model_loads(tmp_path: Path) -> None:
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.9], [0.9, 0.1]])
    model = LogisticRegression().fit(x, [0, 1, 0, 1])
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = modelshield.safe_joblib_load(tmp_path / "model.joblib")
    assert list(loaded.predict(x)) == [0, 1, 0, 1]


def test_clean_pickle_loads(tmp_path: Path) -> None:
    data = {"weights": [0.5, 1.5], "epoch": 3}
    (tmp_path / "state.pkl").write_bytes(pickle.dumps(data))
    assert modelshield.safe_pickle_load(tmp_path / "state.pkl") == data


def test_the_loader_reads_the_scanned_bytes_not_the_path_again(tmp_path: Path) -> None:
    # Time of check, time of use: whatever happens to the path after the scan, the handle holds the
    # private copy that was scanned.
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps({"clean": True}))
    with safe_open(path) as handle:
        path.write_bytes(pk.os_system(str(tmp_path / "marker")))
        assert Path(handle.name) != path
        assert pickle.load(handle) == {"clean": True}  # safe: the scanned private copy
        copy = Path(handle.name)
    assert not copy.exists()
    assert not copy.parent.exists()


def test_paths_that_are_not_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"), safe_open(tmp_path / "missing.pt"):
        pass
    with pytest.raises(UsageError, match="not a file"), safe_open(tmp_path):
        pass


def _result_with(*findings: Finding) -> ScanResult:
    file = FileResult("m.pkl", 1, None, FormatNode("m.pkl", "pickle", 1), findings, ())
    return ScanResult((file,), "0", "2025-01-01T00:00:00+00:00", 0.0)


def test_policy_threshold_and_suppressions_decide() -> None:
    high = DANGEROUS_CALL.at(Location(("m.pkl",)), "a call", severity=Severity.HIGH)
    check_policy(_result_with(high), Policy(fail_on=Severity.CRITICAL))
    with pytest.raises(UnsafeModelError, match="at or above medium"):
        check_policy(_result_with(high), Policy())
    suppressed = replace(high, suppression=Suppression(reason="reviewed", source="policy.toml"))
    check_policy(_result_with(suppressed), Policy())
    expired = replace(high, suppression=Suppression(reason="old", source="p.toml", expired=True))
    with pytest.raises(UnsafeModelError):
        check_policy(_result_with(expired), Policy())


def test_helpers_are_exported_lazily() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, modelshield; print('modelshield.safe_load' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"
    assert set(modelshield.__all__) >= {
        "safe_open",
        "safe_torch_load",
        "safe_joblib_load",
        "safe_pickle_load",
        "safe_np_load",
        "UnsafeModelError",
    }
