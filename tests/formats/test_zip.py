"""Zip: our reader agrees with the real loaders, reports every differential, and stays bounded."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from tests.samples import archives as samples
from tests.samples.archives import PAYLOAD, RawEntry

from modelshield import FileResult, Finding, Severity, scan
from modelshield.engine.blob import BufferBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.limits import LimitExceeded, Limits
from modelshield.formats import zip_reader
from modelshield.formats.compressed import ExpansionRecord, drain
from modelshield.policy.model import Policy


def scan_file(tmp_path: Path, data: bytes, name: str = "sample.bin") -> FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    return scan(path, compute_hash=False).files[0]


def by_rule(result: FileResult, rule_id: str) -> list[Finding]:
    return [f for f in result.findings if f.rule_id == rule_id]


def chains(result: FileResult, rule_id: str) -> set[tuple[str, ...]]:
    return {f.location.chain[1:] for f in by_rule(result, rule_id)}


def ctx(**limits: int | float) -> ScanContext:
    return ScanContext(limits=Limits(**limits), policy=Policy())  # type: ignore[arg-type]


def test_read_zip_models_central_and_local_headers() -> None:
    data = samples.raw_zip(
        [RawEntry(b"a.bin"), RawEntry(b"b.bin", method=8, local_name=b"c.bin")], prefix=b"JUNK"
    )
    archive = zip_reader.read_zip(BufferBlob(data, ("x",)), ctx())
    first, second = archive.members
    assert (first.name, first.local_name, first.method) == ("a.bin", "a.bin", 0)
    assert (second.name, second.local_name, second.method) == ("b.bin", "c.bin", 8)
    assert archive.prefix_size == 4 and archive.base_offset == 4
    assert data[first.data_offset : first.data_offset + first.compressed_size] == PAYLOAD


def test_not_a_zip_is_a_value_error() -> None:
    with pytest.raises(zip_reader.NotAZipError) as raised:
        zip_reader.read_zip(BufferBlob(b"not a zip at all, just text" * 3, ("x",)), ctx())
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    "build",
    [
        lambda: samples.zip_with({"model/weights.bin": bytes(range(256)) * 64, "model/config.json": b"{}"}),
        lambda: _torch_state_dict(),
        lambda: _npz(),
    ],
    ids=["zipfile-deflate", "torch-save", "np-savez-compressed"],
)
def test_real_writers_are_not_flagged(tmp_path: Path, build: object) -> None:
    result = scan_file(tmp_path, build())  # type: ignore[operator]
    assert [f.rule_id for f in result.findings if f.severity >= Severity.MEDIUM] == []
    assert [f.rule_id for f in result.findings if f.rule_id.startswith(("ZIP-", "ARCHIVE-"))] == []


def _torch_state_dict() -> bytes:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"weight": torch.arange(12, dtype=torch.float32).reshape(3, 4)}, buffer)
    return buffer.getvalue()


def _npz() -> bytes:
    np = pytest.importorskip("numpy")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, a=np.arange(100), b=np.ones((4, 4)))
    return buffer.getvalue()


def test_path_traversal_absolute_and_symlink(tmp_path: Path) -> None:
    data = samples.raw_zip(
        [
            RawEntry(b"../../etc/cron.d/job"),
            RawEntry(b"/abs/path"),
            RawEntry(b"C:\\Windows\\evil.dll"),
            RawEntry(b"link", content=b"../../../etc/passwd", external_attr=samples.symlink_attr()),
            RawEntry(b"inner-link", content=b"sibling", external_attr=samples.symlink_attr()),
        ]
    )
    result = scan_file(tmp_path, data)
    assert chains(result, "ARCHIVE-PATH-TRAVERSAL") == {("../../etc/cron.d/job",)}
    assert chains(result, "ARCHIVE-ABSOLUTE-PATH") == {("/abs/path",), ("C:\\Windows\\evil.dll",)}
    links = {f.location.chain[-1]: f for f in by_rule(result, "ARCHIVE-LINK")}
    assert links["link"].severity is Severity.HIGH and "../../../etc/passwd" in links["link"].evidence
    assert links["inner-link"].severity is Severity.MEDIUM


def test_name_mismatch_zipfile_refuses_what_we_still_scan(tmp_path: Path) -> None:
    data = samples.raw_zip([RawEntry(b"archive/data.pkl", local_name=b"archive/other.pk")])
    with zipfile.ZipFile(io.BytesIO(data)) as archive, pytest.raises(zipfile.BadZipFile):
        archive.read("archive/data.pkl")
    result = scan_file(tmp_path, data, "model.pt")
    assert chains(result, "ZIP-NAME-MISMATCH") == {("archive/data.pkl",)}
    assert "CVE-2025-1944" in by_rule(result, "ZIP-NAME-MISMATCH")[0].references
    assert result.tree.children[0].name == "archive/data.pkl"


def test_duplicate_members_every_copy_is_scanned(tmp_path: Path) -> None:
    decoy, payload = b"decoy content", b"the copy the loader really reads"
    data = samples.raw_zip([RawEntry(b"archive/data.pkl", decoy), RawEntry(b"archive/data.pkl", payload)])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("archive/data.pkl") == payload  # zipfile: the last copy wins
    naive_first_copy = data[30 + len(b"archive/data.pkl") :][: len(decoy)]
    assert naive_first_copy == decoy

    result = scan_file(tmp_path, data)
    assert chains(result, "ARCHIVE-DUPLICATE-MEMBER") == {("archive/data.pkl (duplicate #2)",)}
    assert [c.name for c in result.tree.children] == ["archive/data.pkl", "archive/data.pkl (duplicate #2)"]
    assert [c.size for c in result.tree.children] == [len(decoy), len(payload)]


def test_case_only_duplicates_matter_to_pytorch(tmp_path: Path) -> None:
    data = samples.raw_zip([RawEntry(b"archive/data.pkl"), RawEntry(b"archive/DATA.pkl")])
    assert chains(scan_file(tmp_path, data), "ARCHIVE-DUPLICATE-MEMBER") == {("archive/DATA.pkl",)}


def test_bad_crc(tmp_path: Path) -> None:
    data = samples.raw_zip([RawEntry(b"archive/data.pkl", method=8, crc=0x1234)])
    with zipfile.ZipFile(io.BytesIO(data)) as archive, pytest.raises(zipfile.BadZipFile):
        archive.read("archive/data.pkl")
    result = scan_file(tmp_path, data)
    assert chains(result, "ZIP-BAD-CRC") == {("archive/data.pkl",)}
    assert by_rule(result, "ZIP-BAD-CRC")[0].severity is Severity.MEDIUM


def test_encrypted_flag_is_reported_and_content_still_scanned(tmp_path: Path) -> None:
    data = samples.raw_zip([RawEntry(b"archive/data.pkl", flags=0x0001), RawEntry(b"odd", flags=0x0020)])
    result = scan_file(tmp_path, data)
    assert chains(result, "ZIP-ENCRYPTED") == {("archive/data.pkl",)}
    assert chains(result, "ZIP-UNUSUAL-FLAGS") == {("odd",)}
    assert any(i.kind == "encrypted" for i in result.issues)
    assert [c.name for c in result.tree.children] == ["archive/data.pkl", "odd"]


def test_header_mismatch_between_local_and_central(tmp_path: Path) -> None:
    data = bytearray(samples.raw_zip([RawEntry(b"a.bin")]))
    data[8] = 8  # local header says deflate, the central directory says stored
    result = scan_file(tmp_path, bytes(data))
    assert chains(result, "ZIP-HEADER-MISMATCH") == {("a.bin",)}


def test_hidden_local_entry_is_reported_and_scanned(tmp_path: Path) -> None:
    data = samples.raw_zip([RawEntry(b"visible.bin"), RawEntry(b"hidden.bin", b"secret", in_central=False)])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["visible.bin"]
    result = scan_file(tmp_path, data)
    hidden_at = data.index(b"PK\x03\x04", 1)
    element = f"hidden.bin (local header only @{hidden_at})"
    assert chains(result, "ZIP-HIDDEN-MEMBER") == {(element,)}
    assert [c.name for c in result.tree.children] == ["visible.bin", element]


def test_prepended_and_trailing_data(tmp_path: Path) -> None:
    data = samples.raw_zip([RawEntry(b"a.bin")], prefix=b"#!/bin/sh\necho hi\n", trailing=b"APPENDED")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("a.bin") == PAYLOAD
    result = scan_file(tmp_path, data)
    assert chains(result, "ZIP-PREPENDED-DATA") == {()}
    assert chains(result, "ZIP-TRAILING-DATA") == {()}
    # A shell script with a zip behind it: the script is read first, the zip as the second reading.
    assert result.tree.format == "executable"
    names = [c.name for c in result.tree.children[0].children]
    assert names == ["(data before zip)", "a.bin", "(data after zip)"]


def test_overlapping_members(tmp_path: Path) -> None:
    data = bytearray(samples.raw_zip([RawEntry(b"a.bin"), RawEntry(b"b.bin")]))
    central_b = data.rindex(b"PK\x01\x02")
    data[central_b + 42 : central_b + 46] = b"\0\0\0\0"  # b.bin now points at a.bin's header
    result = scan_file(tmp_path, bytes(data))
    assert chains(result, "ZIP-OVERLAPPING-MEMBERS") == {()}


def test_too_many_members() -> None:
    data = samples.raw_zip([RawEntry(f"m{i}".encode()) for i in range(5)])
    scanned = samples.scan_bytes(data, "many.zip", Limits(max_members_per_archive=3))
    assert {f.rule_id for f in scanned.findings} == {"ARCHIVE-TOO-MANY-MEMBERS"}  # type: ignore[attr-defined]
    assert [c.name for c in scanned.tree.children] == ["m0", "m1", "m2"]  # type: ignore[attr-defined]
    assert scanned.issues  # type: ignore[attr-defined]


def test_declared_bomb_is_reported_without_expanding_it(tmp_path: Path) -> None:
    data = samples.deflate_bomb(1024)  # ~1 MB that inflates to 1 GiB
    assert len(data) < 2 * 1024 * 1024
    tracemalloc.start()
    result = scan_file(tmp_path, data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert chains(result, "ARCHIVE-BOMB") == {("zeros.bin",)}
    # Sniffers may materialise a member up to the ratio bound (200 x 1 MB); the GiB never exists.
    assert peak < 400 * 1024 * 1024


def test_member_stream_stops_at_the_ratio_limit_in_bounded_memory() -> None:
    data = samples.deflate_bomb(4095)  # ~4 MB that inflates to ~4 GiB
    blob = BufferBlob(data, ("bomb.zip",))
    context = ctx(max_expansion_ratio=10)
    member = zip_reader.read_zip(blob, context).members[0]
    record = ExpansionRecord(compressed_size=member.compressed_size)
    tracemalloc.start()
    with pytest.raises(LimitExceeded) as raised:
        reader = zip_reader.open_member(
            blob, context, member.method, member.data_offset or 0, member.compressed_size,
            member.uncompressed_size, record,
        )  # fmt: skip
        drain(reader, context)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert raised.value.limit == "max_expansion_ratio"
    assert record.most_produced <= 10 * member.compressed_size + 2 * 1024 * 1024
    assert peak < 32 * 1024 * 1024


def test_member_larger_than_declared_is_cut_where_loaders_stop(tmp_path: Path) -> None:
    data = samples.lying_size_zip(actual=100_000, declared=10)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert len(archive.open("big.bin").read(1000)) == 10  # zipfile stops at the declared size
    result = scan_file(tmp_path, data)
    assert chains(result, "ZIP-HEADER-MISMATCH") == {("big.bin",)}
    assert result.tree.children[0].size == 10


def test_zip_inside_gzip_inside_zip_shows_every_level(tmp_path: Path) -> None:
    import gzip

    inner = samples.zip_with({"../escape.txt": PAYLOAD})
    outer = samples.zip_with({"bundle.gz": gzip.compress(inner, mtime=0)})
    result = scan_file(tmp_path, outer, "outer.zip")
    assert chains(result, "ARCHIVE-PATH-TRAVERSAL") == {("bundle.gz", "gzip-decompressed", "../escape.txt")}


def test_zip_with_prepended_bytes_is_identified_by_its_end_record(tmp_path: Path) -> None:
    data = b"\x7fELF" + bytes(200) + samples.zip_with({"a.txt": PAYLOAD})
    result = scan_file(tmp_path, data)
    assert result.tree.format == "zip"
    assert chains(result, "ZIP-PREPENDED-DATA") == {()}
