"""7z: members are read in memory only; unsafe names are reported, never written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.samples import archives as samples

from modelshield import scan

pytest.importorskip("py7zr")


def test_members_become_children_and_traversal_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = samples.sevenzip_bytes(
        {"dir/a.bin": b"hello", "xx/evil.txt": b"evil"}, {"xx/evil.txt": "../evil.txt"}
    )
    path = tmp_path / "a.7z"
    path.write_bytes(data)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = scan(path, compute_hash=False).files[0]
    assert result.tree.format == "7z"
    assert [c.name for c in result.tree.children] == ["dir/a.bin"]
    traversal = [f.location.chain[1:] for f in result.findings if f.rule_id == "ARCHIVE-PATH-TRAVERSAL"]
    assert traversal == [("../evil.txt",)]
    assert result.issues  # the unsafe member was not decompressed
    assert os.listdir(workdir) == [] and sorted(os.listdir(tmp_path)) == ["a.7z", "cwd"]


def test_declared_size_bomb_is_refused() -> None:
    from modelshield.engine.limits import Limits

    data = samples.sevenzip_bytes({"zeros.bin": bytes(16 * 1024 * 1024)})
    scanned = samples.scan_bytes(data, "z.7z", Limits(max_expansion_ratio=10))
    assert [f.rule_id for f in scanned.findings] == ["ARCHIVE-BOMB"]  # type: ignore[attr-defined]
    assert scanned.tree.children == ()  # type: ignore[attr-defined]
