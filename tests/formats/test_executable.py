"""Embedded executables and scripts are recognised by content wherever a blob starts: inside archives,
after a pickle, a safetensors file or an array, or as a file of their own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.samples import safetensors_samples as samples

from modelshield import FileResult, Severity, scan
from modelshield.analysis.payloads import identify_archive, identify_executable


def scan_one(path: Path) -> FileResult:
    result = scan(path, compute_hash=False)
    assert len(result.files) == 1
    return result.files[0]


def rule_hits(file: FileResult) -> set[tuple[str, tuple[str, ...]]]:
    return {(f.rule_id, f.location.chain) for f in file.findings}


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        (samples.elf_bytes(), "ELF", "64-bit little-endian executable, x86-64"),
        (samples.pe_bytes(), "PE", "DLL, x86-64"),
        (samples.macho_bytes(), "Mach-O", "64-bit ARM64"),
        (samples.macho_fat_bytes(), "Mach-O", "universal binary, 2"),
        (samples.SCRIPT, "script", "/bin/sh"),
        (b"#! /usr/bin/env python3\nprint(1)\n", "script", "/usr/bin/env python3"),
    ],
)
def test_signatures_are_recognised(data: bytes, kind: str, words: str) -> None:
    found = identify_executable(data)
    assert found is not None
    assert found.kind == kind
    assert words in found.description


@pytest.mark.parametrize(
    "data",
    [
        samples.java_class_bytes(),  # shares the fat Mach-O magic
        b"MZ" + b"\0" * 100,  # a DOS stub with no PE header
        b"MZ is a pair of letters, not a program" + b"\0" * 40,
        b"#!not a path\n",
        b"#!/bin/sh\x00\x01binary",
        b"\x7fELF" + b"\x09" * 20,
        b"",
    ],
)
def test_near_misses_are_not_executables(data: bytes) -> None:
    assert identify_executable(data) is None


def test_pe_header_beyond_the_head_is_read_through_the_reader() -> None:
    data = bytearray(samples.pe_bytes())
    data[0x3C:0x40] = (8192).to_bytes(4, "little")
    far = bytes(data[:0x80]) + b"\0" * (8192 - 0x80) + bytes(data[0x80:])
    assert identify_executable(far[:4096]) is None
    found = identify_executable(far[:4096], lambda offset, n: far[offset : offset + n])
    assert found is not None and found.kind == "PE"


def test_archive_signatures() -> None:
    assert identify_archive(b"PK\x03\x04rest") == "zip archive"
    assert identify_archive(b"\x1f\x8b\x08\x00") == "gzip stream"
    assert identify_archive(b"plain text") is None


def test_stand_alone_executable_is_only_noted(tmp_path: Path) -> None:
    path = samples.standalone_elf(tmp_path)
    file = scan_one(path)
    assert rule_hits(file) == {("EMBEDDED-EXECUTABLE", (str(path),))}
    assert file.findings[0].severity is Severity.LOW
    assert file.tree.format == "executable"
    assert file.verdict.value == "clean"  # no loader runs a file of its own


def test_stand_alone_script_is_info(tmp_path: Path) -> None:
    path = tmp_path / "run.sh"
    path.write_bytes(b"#!/usr/bin/env bash\necho hi\n")
    file = scan_one(path)
    assert [(f.rule_id, f.severity) for f in file.findings] == [("EMBEDDED-EXECUTABLE", Severity.INFO)]
    assert file.verdict.value == "clean"


def test_elf_after_a_pickle_is_a_child_scanned_by_content(tmp_path: Path) -> None:
    path = samples.pickle_with_elf(tmp_path)
    file = scan_one(path)
    assert rule_hits(file) == {
        ("PICKLE-TRAILING-DATA", (str(path),)),
        ("EMBEDDED-EXECUTABLE", (str(path), "(data after pickle)")),
    }
    exe = next(f for f in file.findings if f.rule_id == "EMBEDDED-EXECUTABLE")
    assert exe.severity is Severity.HIGH
    assert exe.location.detail == "ELF"


def test_elf_after_a_safetensors_file(tmp_path: Path) -> None:
    path = samples.appended_elf(tmp_path)
    assert ("EMBEDDED-EXECUTABLE", (str(path), "(data after tensors)")) in rule_hits(scan_one(path))


def test_elf_after_array_data(tmp_path: Path) -> None:
    path = tmp_path / "weights.npy"
    np.save(path, np.arange(4, dtype=np.float32))
    path.write_bytes(path.read_bytes() + samples.elf_bytes())
    hits = rule_hits(scan_one(path))
    assert ("EMBEDDED-EXECUTABLE", (str(path), "appended data")) in hits


@pytest.mark.parametrize(
    ("member", "data", "kind"),
    [("libevil.so", samples.elf_bytes(), "ELF"), ("run.sh", samples.SCRIPT, "script")],
)
def test_executable_member_of_a_torch_checkpoint(tmp_path: Path, member: str, data: bytes, kind: str) -> None:
    path = samples.torch_zip_with(tmp_path, member, data)
    file = scan_one(path)
    exe = [f for f in file.findings if f.rule_id == "EMBEDDED-EXECUTABLE"]
    assert [(f.location.chain, f.location.detail, f.severity) for f in exe] == [
        ((str(path), f"model/{member}"), kind, Severity.HIGH)
    ]
