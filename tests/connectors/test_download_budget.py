"""The download writer shared by connectors: the budget holds while bytes arrive, sizes must match the
listing, and nothing is written through a link or outside the destination."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelshield.connectors import DownloadBudget, RemoteFile
from modelshield.connectors._download import (
    DownloadTally,
    check_listed_path,
    empty_destination,
    only_expected_files,
)
from modelshield.connectors.base import DownloadTooLarge, SourceError


def chunks(*parts: bytes) -> Iterator[bytes]:
    yield from parts


def test_a_stream_longer_than_the_budget_stops_at_the_budget_and_leaves_no_file(tmp_path: Path) -> None:
    """A server that declares nothing (or lies) is cut off while writing, not after."""
    tally = DownloadTally(tmp_path, DownloadBudget(max_bytes=10))
    tally.write("a.bin", chunks(b"123456"))
    sent: list[bytes] = []

    def endless() -> Iterator[bytes]:
        while True:
            sent.append(b"x" * 3)
            yield sent[-1]

    with pytest.raises(DownloadTooLarge, match="b.bin crosses the download budget of 10 bytes"):
        tally.write("b.bin", endless())
    assert len(sent) == 2  # the second 3-byte chunk would pass 10 bytes: nothing after it was read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    assert tally.bytes == 6


def test_a_file_of_another_size_than_listed_is_refused_and_removed(tmp_path: Path) -> None:
    tally = DownloadTally(tmp_path, DownloadBudget())
    with pytest.raises(SourceError, match="sub/a.bin is 3 bytes, but the registry declared 4 bytes"):
        tally.write("sub/a.bin", chunks(b"abc"), expected_size=4)
    assert not (tmp_path / "sub" / "a.bin").exists()
    assert tally.write("sub/a.bin", chunks(b"ab", b"cd"), expected_size=4).read_bytes() == b"abcd"


def test_the_file_count_is_part_of_the_budget(tmp_path: Path) -> None:
    tally = DownloadTally(tmp_path, DownloadBudget(max_files=1))
    tally.write("one", chunks(b"1"))
    with pytest.raises(DownloadTooLarge, match="two crosses the budget of 1 files"):
        tally.write("two", chunks(b"2"))


def test_declared_listings_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    tally = DownloadTally(tmp_path, DownloadBudget(max_bytes=5))
    with pytest.raises(
        DownloadTooLarge, match="declared size 6 bytes exceeds the download budget of 5 bytes"
    ):
        tally.check_declared([RemoteFile("a", 3), RemoteFile("b", 3)])
    with pytest.raises(SourceError, match="could leave the download"):
        tally.check_declared([RemoteFile("../a", 1)])
    tally.check_declared([RemoteFile("a", 3), RemoteFile("b", None)])
    assert list(tmp_path.iterdir()) == []


def test_nothing_is_written_through_a_planted_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "sub")
    os.symlink(outside / "file", dest / "file")
    (dest / "kept").write_bytes(b"k")
    os.symlink(dest / "kept", dest / "inner")
    tally = DownloadTally(dest.resolve(), DownloadBudget())
    for path in ("sub/a.bin", "file"):
        with pytest.raises(SourceError, match="leaves the download"):
            tally.write(path, chunks(b"x"))
    with pytest.raises(SourceError, match="inner is listed twice or its place is taken by a link"):
        tally.write("inner", chunks(b"x"))
    assert (dest / "kept").read_bytes() == b"k"
    assert list(outside.iterdir()) == []


def test_a_file_written_by_a_client_library_is_held_to_the_budget(tmp_path: Path) -> None:
    tally = DownloadTally(tmp_path, DownloadBudget(max_bytes=4))
    (tmp_path / "a").write_bytes(b"123")
    assert tally.account("a", 3) == tmp_path / "a"
    (tmp_path / "b").write_bytes(b"45")
    with pytest.raises(DownloadTooLarge, match="b crosses the download budget of 4 bytes"):
        tally.account("b", 2)
    assert not (tmp_path / "b").exists()
    os.symlink(tmp_path / "a", tmp_path / "c")
    with pytest.raises(SourceError, match="the download of c is not a regular file"):
        tally.account("c")


def test_only_listed_files_and_no_links_may_be_left(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"1")
    only_expected_files(tmp_path, ["d/a"])
    (tmp_path / "extra").write_bytes(b"2")
    with pytest.raises(SourceError, match="did not list: extra"):
        only_expected_files(tmp_path, ["d/a"])
    (tmp_path / "extra").unlink()
    os.symlink(tmp_path / "d", tmp_path / "link")
    with pytest.raises(SourceError, match="left a symbolic link: link"):
        only_expected_files(tmp_path, ["d/a"])


def test_destinations_must_be_empty_and_listed_paths_relative(tmp_path: Path) -> None:
    assert empty_destination(tmp_path / "new") == (tmp_path / "new").resolve()
    with pytest.raises(SourceError, match="not empty"):
        empty_destination(tmp_path)
    assert check_listed_path("a/b.bin") == "a/b.bin"
    for bad in ("/etc/passwd", "a/../../b", "a//b", "C:/x", ""):
        with pytest.raises(SourceError, match="refusing"):
            check_listed_path(bad)
