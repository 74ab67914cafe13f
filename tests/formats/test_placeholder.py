"""Placeholders: Git LFS and git-annex pointers are reported as not scanned; empty files stay clean data."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from modelshield import FileResult, Verdict, scan
from modelshield.cli import EXIT_SCAN_ERROR, exit_code_for
from modelshield.engine.findings import Severity
from modelshield.formats import HANDLERS, placeholder

OID = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
LFS_POINTER = f"version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 548118077\n".encode()
ANNEX_POINTER = f"/annex/objects/SHA256E-s548118077--{OID}.safetensors\n".encode()


def scan_one(path: Path) -> FileResult:
    result = scan(path)
    assert len(result.files) == 1
    return result.files[0]


def test_registered_before_every_format() -> None:
    assert HANDLERS[0].handler is placeholder


def test_git_lfs_pointer_is_not_scanned_and_names_the_oid_and_size(tmp_path: Path) -> None:
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(LFS_POINTER)
    file = scan_one(path)
    assert file.findings == ()
    assert [(i.kind, i.location.chain) for i in file.issues] == [("placeholder", (str(path),))]
    message = file.issues[0].message
    assert f"sha256:{OID}" in message
    assert "548118077 bytes" in message
    assert "Git LFS" in message and "git lfs pull" in message
    assert file.verdict is Verdict.ERROR
    assert file.tree.format == "placeholder"


def test_a_pointer_fails_the_gate_with_the_scan_error_code(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(LFS_POINTER)
    assert exit_code_for(scan(tmp_path), Severity.MEDIUM) == EXIT_SCAN_ERROR


def test_lfs_pointer_with_extensions_and_crlf_is_recognised(tmp_path: Path) -> None:
    text = (
        "version https://git-lfs.github.com/spec/v1\r\n"
        "ext-0-foo sha256:" + "0" * 64 + "\r\n"
        f"oid sha256:{OID}\r\nsize 12\r\n"
    )
    path = tmp_path / "model.pt"
    path.write_bytes(text.encode())
    (issue,) = scan_one(path).issues
    assert issue.kind == "placeholder"
    assert f"sha256:{OID}" in issue.message and "12 bytes" in issue.message


def test_malformed_lfs_pointer_is_still_a_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid md5:xyz\n")
    (issue,) = scan_one(path).issues
    assert issue.kind == "placeholder"
    assert "unreadable object id" in issue.message and "unknown size" in issue.message


def test_git_annex_pointer_is_not_scanned(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(ANNEX_POINTER)
    (issue,) = scan_one(path).issues
    assert issue.kind == "placeholder"
    assert f"SHA256E:{OID}" in issue.message
    assert "548118077 bytes" in issue.message
    assert "git annex get" in issue.message


def test_pointer_inside_an_archive_is_reported_at_its_member(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights/model.bin", LFS_POINTER)
    file = scan_one(path)
    assert [(i.kind, i.location.chain) for i in file.issues] == [
        ("placeholder", (str(path), "weights/model.bin"))
    ]
    assert file.verdict is Verdict.ERROR


def test_empty_files_are_data_and_clean(tmp_path: Path) -> None:
    # An empty file is its own whole content: nothing in it runs, and `__init__.py` files are empty.
    (tmp_path / "__init__.py").write_bytes(b"")
    (tmp_path / "model.pt").write_bytes(b"")
    result = scan(tmp_path)
    assert [(f.tree.format, f.verdict) for f in result.files] == [
        ("data", Verdict.CLEAN),
        ("data", Verdict.CLEAN),
    ]


@pytest.mark.parametrize(
    "content",
    [
        LFS_POINTER + b"\n" * 1024,  # pointers are smaller than 1024 bytes
        b"see version https://git-lfs.github.com/spec/v1 for the format\n",
        b"/annex/objects/not a key\n",
        b"/annex/objects/SHA256E-s1--abc\nsecond line\n",
        b"plain text\n",
    ],
)
def test_lookalikes_are_not_placeholders(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    file = scan_one(path)
    assert file.issues == ()
    assert file.verdict is Verdict.CLEAN
