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

import modelshield
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


def _corrupt_gzip(payload: bytes) -> bytes:
    """A gzip stream: `payload` in its own flushed block, then noise whose tail is overwritten."""
    import random

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = packer.compress(payload) + packer.flush(zlib.Z_FULL_FLUSH)
    noise = packer.compress(random.Random(0).randbytes(8192)) + packer.flush()
    return head + noise[:-300] + b"\xff" * 300


def test_corrupt_stream_keeps_what_was_decoded(tmp_path: Path) -> None:
    import subprocess
    import sys

    marker = tmp_path / "marker"
    path = tmp_path / "model.pkl.gz"
    path.write_bytes(_corrupt_gzip(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()))
    # pickle.load over gzip.open reads only what it needs: the payload runs before the corruption.
    code = f"import gzip, pickle; pickle.load(gzip.open({str(path)!r}))"
    subprocess.run([sys.executable, "-c", code], timeout=60, check=False, capture_output=True)
    assert marker.exists()
    file = modelshield.scan(path).files[0]
    rules = {f.rule_id: f for f in file.findings}
    assert rules["ARCHIVE-CORRUPT-STREAM"].severity.value == "low"
    assert rules["PICKLE-DANGEROUS-CALL"].location.chain == (str(path), "gzip-decompressed")
    assert file.verdict.value == "malicious"
