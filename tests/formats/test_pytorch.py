"""PyTorch checkpoints, zip and legacy: torch.save output is clean; payloads, tampering, extras named."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests.samples import torch_samples as samples

from modelshield import FileResult, Severity, Verdict, scan


def scan_one(path: Path) -> FileResult:
    result = scan(path, compute_hash=False)
    assert len(result.files) == 1
    return result.files[0]


def hits(file: FileResult) -> set[tuple[str, tuple[str, ...]]]:
    """(rule id, chain below the file) for every finding."""
    return {(f.rule_id, f.location.chain[1:]) for f in file.findings}


def run_loader(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], timeout=timeout, check=False, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("build", "fmt"),
    [
        (samples.state_dict_pt, "pytorch"),
        (samples.mixed_dtypes_pt, "pytorch"),
        (samples.whole_model_pt, "pytorch"),
        (samples.legacy_pt, "pytorch-legacy"),
        (samples.legacy_tar, "tar"),
    ],
)
def test_real_checkpoints_are_clean(tmp_path: Path, build, fmt: str) -> None:
    file = scan_one(build(tmp_path))
    assert file.tree.format == fmt
    assert file.findings == ()
    assert file.issues == ()
    assert file.verdict is Verdict.CLEAN


def test_user_defined_module_is_low_only(tmp_path: Path) -> None:
    file = scan_one(samples.user_model_pt(tmp_path))
    assert {f.rule_id for f in file.findings} == {"PICKLE-UNKNOWN-CLASS"}
    assert all(f.severity is Severity.LOW for f in file.findings)
    assert file.verdict is Verdict.CLEAN


def test_storages_are_never_read(tmp_path: Path) -> None:
    """A storage record full of a pickle payload is not a child the scan reads as a storage."""
    file = scan_one(samples.state_dict_pt(tmp_path))
    children = {c.name: c.format for c in file.tree.children}
    assert children["model/data.pkl"] == "pickle"
    assert children["model/data/0"] == "data"


def test_zip_payload(tmp_path: Path) -> None:
    path = samples.malicious_zip_pt(tmp_path, tmp_path / "marker")
    file = scan_one(path)
    assert ("PICKLE-DANGEROUS-CALL", ("evil/data.pkl",)) in hits(file)
    assert file.verdict is Verdict.MALICIOUS


def test_legacy_payload(tmp_path: Path) -> None:
    file = scan_one(samples.malicious_legacy_pt(tmp_path, tmp_path / "marker"))
    assert file.tree.format == "pytorch-legacy"
    assert hits(file) == {("PICKLE-DANGEROUS-CALL", ())}
    assert file.issues == ()


def test_legacy_tar_payload(tmp_path: Path) -> None:
    file = scan_one(samples.legacy_tar(tmp_path, tmp_path / "marker"))
    assert hits(file) == {("PICKLE-DANGEROUS-CALL", ("pickle",))}


def test_legacy_appended_data(tmp_path: Path) -> None:
    path = samples.legacy_appended_pt(tmp_path)
    file = scan_one(path)
    assert ("PYTORCH-LEGACY-APPENDED", ()) in hits(file)
    finding = next(f for f in file.findings if f.rule_id == "PYTORCH-LEGACY-APPENDED")
    assert finding.location.offset == path.stat().st_size - 64
    assert [c.name for c in file.tree.children] == ["appended data"]


def test_legacy_truncated(tmp_path: Path) -> None:
    file = scan_one(samples.legacy_truncated_pt(tmp_path))
    assert {f.rule_id for f in file.findings} == {"PYTORCH-LEGACY-TRUNCATED"}


def test_members_torch_never_reads(tmp_path: Path) -> None:
    file = scan_one(samples.extra_members_pt(tmp_path))
    embedded = {f.location.chain[1:]: f for f in file.findings if f.rule_id == "PYTORCH-EMBEDDED-CONTENT"}
    assert set(embedded) == {("model/helper.py",), ("model/tool",), ("model/extra.pkl",)}
    assert all(f.severity is Severity.MEDIUM for f in embedded.values())
    assert "executable" in embedded[("model/tool",)].message
    assert file.verdict is Verdict.SUSPICIOUS


def test_missing_storage(tmp_path: Path) -> None:
    file = scan_one(samples.missing_storage_pt(tmp_path))
    assert hits(file) == {("PYTORCH-MISSING-STORAGE", ("model/data.pkl",))}


def test_short_storage(tmp_path: Path) -> None:
    file = scan_one(samples.short_storage_pt(tmp_path))
    assert hits(file) == {("PYTORCH-MISSING-STORAGE", ("model/data/0",))}
    assert "needs 32 bytes" in file.findings[0].message


def test_missing_version_record(tmp_path: Path) -> None:
    file = scan_one(samples.no_version_pt(tmp_path))
    assert {f.rule_id for f in file.findings} == {"PYTORCH-MISSING-RECORD"}
    assert file.findings[0].location.detail == "model/version"


def test_duplicate_data_pkl_every_copy_scanned(tmp_path: Path) -> None:
    file = scan_one(samples.duplicate_pickle_pt(tmp_path, tmp_path / "marker"))
    found = hits(file)
    assert ("PYTORCH-DUPLICATE-PICKLE", ("model/data.pkl (duplicate #2)",)) in found
    assert ("PICKLE-DANGEROUS-CALL", ("model/data.pkl (duplicate #2)",)) in found
    assert not any(rule == "PYTORCH-EMBEDDED-CONTENT" for rule, _ in found)
    assert file.verdict is Verdict.MALICIOUS


def test_data_pkl_name_folds_case_like_torch(tmp_path: Path) -> None:
    file = scan_one(samples.upper_case_pickle_pt(tmp_path, tmp_path / "marker"))
    assert file.tree.format == "pytorch"
    assert hits(file) == {("PICKLE-DANGEROUS-CALL", ("evil/DATA.PKL",))}


def test_torch_load_folds_case_of_data_pkl(tmp_path: Path) -> None:
    marker = tmp_path / "upper-marker"
    path = samples.upper_case_pickle_pt(tmp_path, marker)
    run_loader(f"import torch; torch.load({str(path)!r}, weights_only=False)")
    assert marker.exists()


def test_prefix_comes_from_the_first_record(tmp_path: Path) -> None:
    """torch reads records under the first record's directory, whatever the file is called."""
    path = samples.state_dict_pt(tmp_path, "renamed.bin")
    file = scan_one(path)
    assert file.tree.format == "pytorch"
    assert {c.name for c in file.tree.children} >= {"renamed/data.pkl"}


# --- the real loaders run these payloads ---------------------------------------------------------


def test_torch_load_runs_zip_payload(tmp_path: Path) -> None:
    marker = tmp_path / "zip-marker"
    path = samples.malicious_zip_pt(tmp_path, marker)
    run_loader(f"import torch; torch.load({str(path)!r}, weights_only=False)")
    assert marker.exists()


def test_torch_load_runs_legacy_payload(tmp_path: Path) -> None:
    marker = tmp_path / "legacy-marker"
    path = samples.malicious_legacy_pt(tmp_path, marker)
    run_loader(f"import torch; torch.load({str(path)!r}, weights_only=False)")
    assert marker.exists()


def test_torch_load_runs_legacy_tar_payload(tmp_path: Path) -> None:
    marker = tmp_path / "tar-marker"
    path = samples.legacy_tar(tmp_path, marker)
    run_loader(f"import torch; torch.load({str(path)!r}, weights_only=False)")
    assert marker.exists()


def test_torch_loads_benign_legacy_tar(tmp_path: Path) -> None:
    path = samples.legacy_tar(tmp_path)
    done = run_loader(f"import torch; print(torch.load({str(path)!r}, weights_only=False))")
    assert done.stdout.strip() == "{'epoch': 3, 'lr': 0.1}", done.stderr


def test_legacy_tar_storages_member_is_walked(tmp_path: Path) -> None:
    """Pickles behind raw storage bytes in the tar layout's storages member are scanned too."""
    file = scan_one(samples.legacy_tar_with_storage(tmp_path, tmp_path / "marker"))
    formats = {c.name: c.format for c in file.tree.children}
    assert formats["storages"] == formats["tensors"] == "pytorch-legacy"
    payload = next(f for f in file.findings if f.rule_id == "PICKLE-DANGEROUS-CALL")
    assert payload.location.chain[1:] == ("storages",)
    views_start = (
        len(pickle.dumps(1, protocol=2) + pickle.dumps(("1", "cpu", torch.FloatStorage), protocol=2)) + 20
    )
    assert payload.location.offset > views_start  # behind the raw storage bytes
    assert file.issues == ()


def test_legacy_tar_with_storage_is_clean(tmp_path: Path) -> None:
    file = scan_one(samples.legacy_tar_with_storage(tmp_path))
    assert file.findings == () and file.issues == ()


def test_torch_load_reads_tar_storage_and_runs_views_payload(tmp_path: Path) -> None:
    benign = samples.legacy_tar_with_storage(tmp_path)
    done = run_loader(f"import torch; print(torch.load({str(benign)!r}, weights_only=False))")
    assert done.stdout.strip() == "{'weight': tensor([1., 2., 3.])}", done.stderr
    marker = tmp_path / "views-marker"
    evil = samples.legacy_tar_with_storage(tmp_path, marker)
    run_loader(f"import torch; torch.load({str(evil)!r}, weights_only=False)")
    assert marker.exists()


class _OddIdPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return ("module", "os", "/tmp/x.py", "source") if obj == "hook" else None


def test_persistent_id_that_is_not_a_storage(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    _OddIdPickler(buffer, protocol=2).dump({"w": "hook"})
    source = samples.state_dict_pt(tmp_path)
    path = samples.rewrite_zip(
        source, tmp_path / "oddid.pt", drop=("model/data.pkl",), add=(("model/data.pkl", buffer.getvalue()),)
    )
    file = scan_one(path)
    assert ("PYTORCH-ODD-PERSISTENT-ID", ("model/data.pkl",)) in hits(file)


def test_legacy_protocol_version_other_than_1001(tmp_path: Path) -> None:
    path = samples.legacy_pt(tmp_path)
    data = path.read_bytes()
    version_pickle = pickle.dumps(1001, protocol=2)
    assert version_pickle in data
    path.write_bytes(data.replace(version_pickle, pickle.dumps(999, protocol=2), 1))
    file = scan_one(path)
    assert {(f.rule_id, f.location.detail) for f in file.findings} == {
        ("PYTORCH-LEGACY-HEADER", "protocol version")
    }
