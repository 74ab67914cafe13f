"""Single-stream compressors: every joblib compressor is identified; bombs stop within limits."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path

import pytest
import zstandard
from tests.samples import archives as samples
from tests.samples.archives import PAYLOAD

from modelshield import scan
from modelshield.engine.limits import Limits

INNER_ZIP = samples.zip_with({"../escape.txt": PAYLOAD})


@pytest.mark.parametrize(
    ("compress", "element"),
    [
        (lambda d: gzip.compress(d, mtime=0), "gzip-decompressed"),
        (lambda d: gzip.compress(d[:100], mtime=0) + gzip.compress(d[100:], mtime=0), "gzip-decompressed"),
        (bz2.compress, "bzip2-decompressed"),
        (lambda d: lzma.compress(d, format=lzma.FORMAT_XZ), "xz-decompressed"),
        (lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE), "lzma-decompressed"),
        (lambda d: zstandard.ZstdCompressor().compress(d), "zstd-decompressed"),
        (zlib.compress, "zlib-decompressed"),
    ],
    ids=["gzip", "gzip-multi-member", "bz2", "xz", "lzma-alone", "zstd", "zlib"],
)
def test_each_stream_hands_its_content_on(tmp_path: Path, compress: object, element: str) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(compress(INNER_ZIP))  # type: ignore[operator]
    result = scan(path, compute_hash=False).files[0]
    traversal = [f for f in result.findings if f.rule_id == "ARCHIVE-PATH-TRAVERSAL"]
    assert [f.location.chain[1:] for f in traversal] == [(element, "../escape.txt")]
    assert result.issues == ()


@pytest.mark.parametrize("compressor", ["zlib", "gzip", "bz2", "lzma", "xz"])
def test_every_joblib_compressor_is_identified(tmp_path: Path, compressor: str) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "model.joblib"
    joblib.dump([1, 2, 3], path, compress=(compressor, 3))
    tree = scan(path, compute_hash=False).files[0].tree
    expected = {"gzip": "gzip", "bz2": "bzip2"}.get(compressor, compressor)
    assert tree.format == expected
    assert tree.children[0].name.endswith("-decompressed")


def test_gzip_bomb_is_stopped_and_reported() -> None:
    stream = samples.zeros_deflate(64)  # 64 MiB of zeros in ~64 KB
    wrapped = zlib.compress(b"")[:2] + stream + b"\0\0\0\0"  # a zlib header; the adler is never reached
    scanned = samples.scan_bytes(wrapped, "bomb.z", Limits(max_expansion_ratio=20))
    bombs = [f for f in scanned.findings if f.rule_id == "ARCHIVE-BOMB"]  # type: ignore[attr-defined]
    assert [f.location.chain for f in bombs] == [("bomb.z",)]
    assert any(i.kind == "limit" for i in scanned.issues)  # type: ignore[attr-defined]


def test_plain_text_is_not_taken_for_a_compressed_stream(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"x\x9c is not enough to be zlib, and ]\0\0 is not lzma\n" * 10)
    assert scan(path, compute_hash=False).files[0].tree.format not in {"zlib", "lzma"}
