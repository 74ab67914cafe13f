"""Tar: links, special files, traversal and duplicates are named; members are scanned in place."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

from tests.samples import archives as samples
from tests.samples.archives import PAYLOAD, TarEntry

from modelshield import FileResult, Severity, scan
from modelshield.formats import tar


def scan_file(tmp_path: Path, data: bytes, name: str = "sample.bin") -> FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    return scan(path, compute_hash=False).files[0]


def chains(result: FileResult, rule_id: str) -> set[tuple[str, ...]]:
    return {f.location.chain[1:] for f in result.findings if f.rule_id == rule_id}


def test_plain_tar_is_clean_and_members_are_children(tmp_path: Path) -> None:
    result = scan_file(tmp_path, samples.tar_bytes([TarEntry("model/weights.bin"), TarEntry("model/cfg")]))
    assert result.tree.format == "tar"
    assert [c.name for c in result.tree.children] == ["model/weights.bin", "model/cfg"]
    assert result.findings == ()


def test_sniff_accepts_ustar_gnu_and_v7(tmp_path: Path) -> None:
    from modelshield.engine.blob import BufferBlob

    for tar_format in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        assert tar.sniff(BufferBlob(samples.tar_bytes([TarEntry("a")], tar_format), ("t",)))
    v7 = bytearray(samples.tar_bytes([TarEntry("a")], tarfile.USTAR_FORMAT))
    v7[257:265] = bytes(8)
    v7[148:156] = b"%06o\0 " % (sum(v7[:148]) + 8 * 32 + sum(v7[156:512]))
    assert tar.sniff(BufferBlob(bytes(v7), ("t",)))
    assert not tar.sniff(BufferBlob(bytes(1024), ("t",)))


def test_links_traversal_special_and_duplicates(tmp_path: Path) -> None:
    data = samples.tar_bytes(
        [
            TarEntry("../outside.txt"),
            TarEntry("/etc/profile.d/x.sh"),
            TarEntry("up", kind=tarfile.SYMTYPE, linkname="../../home/user/.bashrc"),
            TarEntry("sibling", kind=tarfile.SYMTYPE, linkname="model/cfg"),
            TarEntry("hard", kind=tarfile.LNKTYPE, linkname="/etc/passwd"),
            TarEntry("pipe", kind=tarfile.FIFOTYPE),
            TarEntry("dup.bin", b"first"),
            TarEntry("dup.bin", b"second"),
        ]
    )
    result = scan_file(tmp_path, data)
    assert chains(result, "ARCHIVE-PATH-TRAVERSAL") == {("../outside.txt",)}
    assert chains(result, "ARCHIVE-ABSOLUTE-PATH") == {("/etc/profile.d/x.sh",)}
    links = {f.location.chain[-1]: f for f in result.findings if f.rule_id == "ARCHIVE-LINK"}
    assert set(links) == {"up", "sibling", "hard"}
    assert links["up"].severity is Severity.HIGH and links["hard"].severity is Severity.HIGH
    assert links["sibling"].severity is Severity.MEDIUM
    assert chains(result, "ARCHIVE-SPECIAL-FILE") == {("pipe",)}
    assert chains(result, "ARCHIVE-DUPLICATE-MEMBER") == {("dup.bin (duplicate #2)",)}
    sizes = {c.name: c.size for c in result.tree.children}
    assert sizes["dup.bin"] == 5 and sizes["dup.bin (duplicate #2)"] == 6


def test_truncated_member(tmp_path: Path) -> None:
    data = samples.tar_bytes([TarEntry("big.bin", bytes(4096))])
    result = scan_file(tmp_path, data[: 512 + 1024])
    assert chains(result, "ARCHIVE-TRUNCATED") == {("big.bin",)}


def test_tar_gz_holding_a_zip_holding_a_file_shows_every_level(tmp_path: Path) -> None:
    inner_zip = samples.zip_with({"../../escape.txt": PAYLOAD})
    data = gzip.compress(samples.tar_bytes([TarEntry("bundle/inner.zip", inner_zip)]), mtime=0)
    result = scan_file(tmp_path, data, "bundle.tar.gz")
    assert chains(result, "ARCHIVE-PATH-TRAVERSAL") == {
        ("gzip-decompressed", "bundle/inner.zip", "../../escape.txt")
    }
    assert result.tree.children[0].format == "tar"


def test_too_many_members() -> None:
    from modelshield.engine.limits import Limits

    data = samples.tar_bytes([TarEntry(f"m{i}") for i in range(5)])
    scanned = samples.scan_bytes(data, "many.tar", Limits(max_members_per_archive=2))
    assert {f.rule_id for f in scanned.findings} == {"ARCHIVE-TOO-MANY-MEMBERS"}  # type: ignore[attr-defined]
    assert scanned.issues  # type: ignore[attr-defined]
