"""The in-process HDF5 reader: on every file it reads, its report equals the isolated h5py probe's; every
structure it does not read (or a damaged file) goes to the probe; the child is not started otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import h5py  # type: ignore[import-untyped]
import numpy as np
import pytest
from tests.samples import hdf5_samples as hs

from modelshield import Verdict, scan
from modelshield.analysis.hdf5_probe import MAX_DEPTH
from modelshield.analysis.isolated import IsolationLimits, run_module
from modelshield.engine.blob import BufferBlob
from modelshield.formats import hdf5
from modelshield.formats.hdf5_structure import read_report


def attributes_of_every_kind(directory: Path) -> Path:
    """Root Keras attributes, strings fixed and variable, arrays, opaque and integer bytes, nested groups,
    a chunked compressed dataset, a named datatype and a hard link back up the tree (a cycle)."""
    path = directory / "kinds.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"layers": []}})
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["lines"] = ["a dense layer", "import os"]
        f.attrs["elf"] = np.frombuffer(hs.ELF_HEADER, dtype="u1")
        f.attrs["blob"] = np.void(b"\x80\x04\x95payload")
        f.attrs["count"] = 5
        f.attrs["wide"] = np.array([1, 2], dtype="i4")
        f.attrs["padded"] = np.bytes_(b"kernel\x00\x00")
        group = f.create_group("model_weights/dense/sub")
        for i in range(40):  # more members than one symbol table node holds: a B-tree of several leaves
            group.create_dataset(f"w{i}", data=np.zeros(3, dtype="f4"))
            group[f"w{i}"].attrs["weight_names"] = np.array([b"kernel:0", b"exec(x)"])
        group["parent"] = f["model_weights/dense"]
        f.create_dataset("chunked", shape=(100,), chunks=(10,), compression="gzip", dtype="f4")
        f["named_type"] = np.dtype("f4")
    return path


def keras_lambda(directory: Path) -> Path:
    return hs.legacy_keras(directory, hs.lambda_model_config(hs.OS_SYSTEM_LAMBDA))


def probe_report(path: Path) -> dict[str, object] | None:
    return run_module("modelshield.analysis.hdf5_probe", [str(path)], IsolationLimits()).document


def blob_of(path: Path) -> BufferBlob:
    return BufferBlob(path.read_bytes(), (path.name,))


def offset_of(blob: BufferBlob) -> int:
    offset = hdf5.superblock_offset(blob)
    assert offset is not None
    return offset


@pytest.mark.parametrize(
    "build",
    [
        attributes_of_every_kind,
        hs.code_attribute,
        keras_lambda,
        lambda d: hs.user_block(d, hs.ELF_HEADER),
        lambda d: hs.user_block(d, b""),
    ],
    ids=["kinds", "code-attribute", "keras-lambda", "user-block", "empty-user-block"],
)
def test_report_equals_the_h5py_probe(tmp_path: Path, build: hs.SampleBuilder) -> None:
    path = build(tmp_path)
    blob = blob_of(path)
    report = read_report(blob, offset_of(blob))
    assert report is not None
    assert report == probe_report(path)


def test_kinds_report_names_what_it_found(tmp_path: Path) -> None:
    blob = blob_of(attributes_of_every_kind(tmp_path))
    report = read_report(blob, offset_of(blob))
    assert report is not None
    flagged = [(entry["path"], entry["name"], entry["reasons"]) for entry in report["code_attributes"]]
    assert flagged[:3] == [
        ("/", "blob", ["pickle protocol 4"]),
        ("/", "elf", ["ELF executable"]),
        ("/", "lines", ["code-like text 'import o'"]),
    ]
    assert flagged[3] == ("/model_weights/dense/sub/w0", "weight_names", ["code-like text 'exec('"])
    assert len(flagged) == 43
    assert report["keras"] == {
        "keras_version": "2.15.0",
        "model_config": '{"class_name": "Sequential", "config": {"layers": []}}',
    }


def latest_format(directory: Path) -> Path:
    path = directory / "latest.h5"
    with h5py.File(path, "w", libver="latest") as f:
        f["data"] = np.zeros(4)
    return path


def empty_attribute(directory: Path) -> Path:
    path = directory / "empty.h5"
    with h5py.File(path, "w") as f:
        f.attrs["nothing"] = h5py.Empty("S5")
    return path


def nested_deeper_than_the_walk(directory: Path) -> Path:
    path = directory / "deep.h5"
    with h5py.File(path, "w") as f:
        f.create_group("/".join(f"g{i}" for i in range(MAX_DEPTH + 2)))
    return path


@pytest.mark.parametrize(
    "build",
    [
        hs.plain,  # a soft link
        lambda d: hs.external_links(d, "other.h5"),
        lambda d: hs.external_storage(d, "data.bin"),
        lambda d: hs.virtual(d, "part.h5"),
        latest_format,
        empty_attribute,
        nested_deeper_than_the_walk,
    ],
    ids=["soft-link", "external-link", "external-storage", "virtual", "latest-format", "empty", "deep"],
)
def test_structures_it_does_not_read_go_to_h5py(tmp_path: Path, build: hs.SampleBuilder) -> None:
    blob = blob_of(build(tmp_path))
    assert read_report(blob, offset_of(blob)) is None


def test_a_file_it_reads_never_starts_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("the isolated probe was started")

    monkeypatch.setattr(hdf5, "run_module", no_child)
    result = scan(hs.code_attribute(tmp_path), compute_hash=False).files[0]
    assert [(f.rule_id, f.location.detail) for f in result.findings] == [
        ("HDF5-CODE-ATTRIBUTE", "/data attribute hook")
    ]


def test_without_h5py_a_file_it_reads_is_still_analysed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("modelshield.formats.hdf5.importlib.util.find_spec", lambda name: None)
    result = scan(keras_lambda(tmp_path), compute_hash=False).files[0]
    assert [f.rule_id for f in result.findings] == ["KERAS-LAMBDA"]
    assert result.verdict is Verdict.MALICIOUS


def test_too_deep_is_reported_by_the_probe(tmp_path: Path) -> None:
    result = scan(nested_deeper_than_the_walk(tmp_path), compute_hash=False).files[0]
    assert [i.kind for i in result.issues] == ["limit"]
    assert f"depth {MAX_DEPTH}" in result.issues[0].message


def test_damaged_files_never_raise(tmp_path: Path) -> None:
    """Every truncation and every byte of the structures set to 0xFF or flipped: a report or None."""
    data = hs.code_attribute(tmp_path).read_bytes()
    structures = len(data) - 4 * 8  # the last bytes are the dataset's zeros
    outcomes = {"report": 0, "none": 0}
    mutants = [data[:cut] for cut in range(0, len(data), 7)]
    mutants += [
        data[:at] + bytes([value]) + data[at + 1 :]
        for at in range(structures)
        for value in (0xFF, data[at] ^ 0x01)
    ]
    for mutant in mutants:
        blob = BufferBlob(mutant, ("mutant.h5",))
        offset = hdf5.superblock_offset(blob)
        report = read_report(blob, offset) if offset is not None else None
        outcomes["none" if report is None else "report"] += 1
    assert outcomes["none"] > 0 and outcomes["report"] > 0


def test_structure_reads_are_budgeted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelshield.formats import hdf5_structure

    blob = blob_of(attributes_of_every_kind(tmp_path))
    monkeypatch.setattr(hdf5_structure, "MAX_STRUCTURE_READ", 4096)
    assert read_report(blob, offset_of(blob)) is None
