"""Flax msgpack: flax-encoded state dicts are clean; unknown extensions, truncation, bad array bodies and
trailing data are found; random and plain msgpack data are not claimed."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
from tests.samples import flax_samples as samples

from modelshield import Severity, Verdict, scan
from modelshield.engine.blob import BufferBlob
from modelshield.formats import flax_msgpack


def test_flax_checkpoint_is_clean(tmp_path: Path) -> None:
    result = scan(
        samples.write(tmp_path, "ckpt.msgpack", samples.checkpoint(samples.params())), compute_hash=False
    )
    [file] = result.files
    assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN)
    assert file.tree.format == "flax-msgpack"


def test_sniff_is_strict() -> None:
    def sniff(data: bytes) -> bool:
        return flax_msgpack.sniff(BufferBlob(data, ("x",)))

    assert sniff(samples.checkpoint(samples.params()))
    assert not sniff(msgpack.packb({"a": 1, "b": [1, 2, 3]}))
    assert not sniff(msgpack.packb({"a": msgpack.ExtType(1, b"\x01\x02\x03\x04")}))
    assert not sniff(msgpack.packb([1, 2, 3]))
    assert not any(sniff(bytes([0x81]) + os.urandom(200)) for _ in range(200))


def test_unknown_extension_is_medium(tmp_path: Path) -> None:
    [file] = scan(samples.write(tmp_path, "e.msgpack", samples.unknown_ext()), compute_hash=False).files
    [finding] = file.findings
    assert (finding.rule_id, finding.severity) == ("FLAX-UNKNOWN-EXT", Severity.MEDIUM)
    assert finding.evidence.startswith("ext 42")


def test_truncated_is_malformed_and_partial(tmp_path: Path) -> None:
    [file] = scan(samples.write(tmp_path, "t.msgpack", samples.truncated()), compute_hash=False).files
    assert [f.rule_id for f in file.findings] == ["FLAX-MALFORMED"]
    assert file.issues


def test_huge_declared_lengths_and_counts_are_refused_without_allocating(tmp_path: Path) -> None:
    good = samples.checkpoint(samples.params())
    for tail in (b"\xdb\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xc9\xff\xff\xff\xff\x01"):
        data = bytearray(good)
        data[0] = 0x85  # one more entry than written: the reader goes on into `tail`
        [file] = scan(
            samples.write(tmp_path, "h.msgpack", bytes(data) + b"\xa1k" + tail), compute_hash=False
        ).files
        assert "FLAX-MALFORMED" in {f.rule_id for f in file.findings}


def test_bad_array_body_and_trailing_data(tmp_path: Path) -> None:
    state = samples.params()
    state["params"]["odd"] = msgpack.ExtType(1, msgpack.packb([[2], "float32", b"\0" * 8]) + b"extra")
    data = samples.checkpoint(state) + b"MZ appended"
    [file] = scan(samples.write(tmp_path, "b.msgpack", data), compute_hash=False).files
    messages = [f.message for f in file.findings if f.rule_id == "FLAX-MALFORMED"]
    assert any("after its value" in m for m in messages)
    assert any("follow the checkpoint" in m for m in messages)
