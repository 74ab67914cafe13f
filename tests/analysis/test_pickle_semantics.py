"""What the pickle engine must model to agree with CPython's unpickler: protocol-dependent name
resolution, _compat_pickle only below protocol 3, memo indices, several pickles per stream, and the
limits that keep hostile streams (deep nesting, huge declared lengths, big files) from hurting the scan.

Where a test claims how CPython behaves, it proves it in a subprocess with the real loader.
"""

from __future__ import annotations

import pickle
import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.analysis.test_pickle_bypasses import site
from tests.samples import pickles as pk
from tests.samples.pickles import Asm, G, call, program
from tests.test_loader_proof import run_real_loader

import modelshield
from modelshield import Finding, Severity, Verdict


def _scan(tmp_path: Path, data: bytes, name: str = "sample.bin") -> modelshield.FileResult:
    path = tmp_path / name
    path.write_bytes(data)
    (result,) = modelshield.scan(path).files
    return result


def _of(result: modelshield.FileResult, rule: str) -> list[Finding]:
    return [f for f in result.findings if f.rule_id == rule]


def _runs(tmp_path: Path, build: Callable[[str], bytes], setup: str = "") -> bool:
    """Does the real loader run the payload of `build`? (in a subprocess)."""
    work = tmp_path / "load"
    work.mkdir(exist_ok=True)
    marker = work / "marker"
    path = work / "sample.bin"
    path.write_bytes(build(str(marker)))
    sample = pk.PickleSample("probe", 0, "", build, loader_setup=setup)
    run_real_loader(sample, path, work)
    return marker.exists()  # these payloads are synchronous: done when the loader returns


def _dangerous_calls(result: modelshield.FileResult, evidence: str) -> list[Finding]:
    return [f for f in _of(result, "PICKLE-DANGEROUS-CALL") if evidence in f.evidence]


# -- name resolution ---------------------------------------------------------------------------


@pytest.mark.parametrize("proto", [0, 1, 2, 3, 4, 5])
def test_dotted_names_resolve_only_from_protocol_4(proto: int, tmp_path: Path) -> None:
    """find_class walks 'os.system' attribute by attribute only when the stream's protocol is >= 4
    (GLOBAL 'os.path' 'os.system' at every protocol: posixpath imports os)."""

    resolves = proto >= 4
    assert _runs(tmp_path, lambda m: _dotted(proto, m)) is resolves
    result = _scan(tmp_path, _dotted(proto, str(tmp_path / "m")))
    hits = _dangerous_calls(result, "system(")
    if resolves:
        assert hits and hits[0].location.opcode == "REDUCE"
        assert result.verdict == Verdict.MALICIOUS
    else:
        assert not hits, "the real loader fails at GLOBAL: nothing is called"
        assert result.verdict != Verdict.CLEAN


def _dotted(proto: int, marker: str) -> bytes:
    a = Asm(proto)
    a.global_("os.path", "os.system").mark().str_(pk.touch_shell(marker)).tuple_().reduce().stop()
    return a.bytes()


def _builtin_eval(proto: int, marker: str) -> bytes:
    a = Asm(proto)
    a.global_("__builtin__", "eval").mark().str_(pk.touch_code(marker)).tuple_().reduce().stop()
    return a.bytes()


@pytest.mark.parametrize("proto", [0, 1, 2, 3, 4])
def test_compat_aliases_apply_only_below_protocol_3(proto: int, tmp_path: Path) -> None:
    """_compat_pickle maps __builtin__ → builtins only when fix_imports and protocol < 3."""
    mapped = proto < 3
    assert _runs(tmp_path, lambda m: _builtin_eval(proto, m)) is mapped
    result = _scan(tmp_path, _builtin_eval(proto, str(tmp_path / "m")))
    hits = _dangerous_calls(result, "eval(")
    if mapped:
        (hit,) = hits
        assert "builtins.eval" in hit.evidence
        assert hit.location.opcode_index == site(_builtin_eval(proto, str(tmp_path / "m")), "REDUCE").index
    else:
        assert not hits
        assert result.verdict != Verdict.CLEAN


def test_stack_global_on_a_python2_name_is_not_mapped_at_protocol_4(tmp_path: Path) -> None:
    data = program(call(G("__builtin__", "eval"), "1+1"), proto=4)
    result = _scan(tmp_path, data)
    assert not _dangerous_calls(result, "eval(")


# -- memo ----------------------------------------------------------------------------------------


def _memoize_after_sparse_put(marker: str) -> bytes:
    """MEMOIZE stores at len(memo), not at max index + 1: after BINPUT 5 the next MEMOIZE is index 1."""
    a = Asm(4)
    a.str_("builtins").put(5).pop()
    a.str_("os").memoize().pop()  # index 1
    a.str_("system").memoize().pop()  # index 2
    a.get(1).get(2).stack_global().str_(pk.touch_shell(marker)).tuple_(1).reduce().stop()
    return a.bytes()


def test_memoize_index_is_memo_length(tmp_path: Path) -> None:
    assert _runs(tmp_path, _memoize_after_sparse_put)
    data = _memoize_after_sparse_put(str(tmp_path / "m"))
    result = _scan(tmp_path, data)
    (hit,) = _dangerous_calls(result, "os.system(")
    assert hit.location.opcode_index == site(data, "REDUCE").index


def test_text_protocol_put_and_get(tmp_path: Path) -> None:
    a = Asm(0)
    a.global_("os", "system").put(7).pop().get(7).mark().str_("id").tuple_().reduce().stop()
    result = _scan(tmp_path, a.bytes())
    assert _dangerous_calls(result, "os.system('id')")


# -- several pickles, trailing data ----------------------------------------------------------------


def test_payload_in_third_pickle(tmp_path: Path) -> None:
    payload = pk.os_system(str(tmp_path / "m"))
    data = pk.benign_state() + pickle.dumps([1, 2, 3], protocol=4) + payload
    result = _scan(tmp_path, data)
    (hit,) = _dangerous_calls(result, "os.system(")
    at = site(data, "REDUCE", pickle_no=2)
    assert (hit.location.opcode_index, hit.location.offset) == (at.index, at.offset)
    assert at.offset > len(data) - len(payload)


def test_trailing_bytes_after_last_stop(tmp_path: Path) -> None:
    benign = pk.benign_state()
    result = _scan(tmp_path, benign + b"\x00\x01\x02\x03 not a pickle")
    (finding,) = _of(result, "PICKLE-TRAILING-DATA")
    assert finding.severity == Severity.INFO
    assert finding.location.offset == len(benign)
    assert result.verdict == Verdict.CLEAN


# -- judgement of what is imported, called and rebuilt ----------------------------------------------


def test_allowlisted_pickle_is_clean(tmp_path: Path) -> None:
    import collections

    data = pickle.dumps(collections.OrderedDict(a=[1.0, 2.0], b={"c": (1, 2)}), protocol=2)
    result = _scan(tmp_path, data)
    assert result.findings == ()
    assert result.verdict == Verdict.CLEAN


def test_dangerous_import_without_call(tmp_path: Path) -> None:
    data = program({"hook": G("os", "system")}, proto=2)
    result = _scan(tmp_path, data)
    (finding,) = _of(result, "PICKLE-DANGEROUS-IMPORT")
    assert finding.severity == Severity.HIGH
    assert finding.location.opcode == "GLOBAL"
    assert finding.location.opcode_index == site(data, "GLOBAL").index
    assert not _of(result, "PICKLE-DANGEROUS-CALL")
    assert result.verdict == Verdict.SUSPICIOUS


def test_unknown_call_and_unknown_import(tmp_path: Path) -> None:
    data = program([call(G("mylab.models", "make_model"), 3), G("mylab.models", "DEFAULTS")], proto=4)
    result = _scan(tmp_path, data)
    (called,) = _of(result, "PICKLE-UNKNOWN-CALL")
    assert called.severity == Severity.HIGH
    assert called.location.opcode_index == site(data, "REDUCE").index
    (imported,) = _of(result, "PICKLE-UNKNOWN-IMPORT")
    assert imported.severity == Severity.MEDIUM
    assert "mylab.models.DEFAULTS" in imported.evidence


def test_unknown_class_rebuilt_plainly_is_low(tmp_path: Path) -> None:
    a = Asm(2)
    a.global_("mylab.models", "TinyNet").tuple_(0).newobj()
    a.emit({"hidden": 8, "training": False}).build().stop()
    data = a.bytes()
    result = _scan(tmp_path, data)
    (finding,) = _of(result, "PICKLE-UNKNOWN-CLASS")
    assert finding.severity == Severity.LOW
    assert "mylab.models.TinyNet" in finding.evidence
    assert not _of(result, "PICKLE-UNKNOWN-CALL")
    assert result.verdict == Verdict.CLEAN


def test_unknown_class_through_copyreg_reconstructor_is_low(tmp_path: Path) -> None:
    a = Asm(2)
    a.emit(call(G("copyreg", "_reconstructor"), G("mylab.models", "TinyNet"), G("builtins", "object"), None))
    a.emit({"hidden": 8}).build().stop()
    result = _scan(tmp_path, a.bytes())
    (finding,) = _of(result, "PICKLE-UNKNOWN-CLASS")
    assert finding.severity == Severity.LOW
    assert not _of(result, "PICKLE-UNKNOWN-CALL")


def test_unregistered_extension_code(tmp_path: Path) -> None:
    data = Asm(2).ext1(0x42).stop().bytes()
    result = _scan(tmp_path, data)
    (finding,) = _of(result, "PICKLE-EXT-CODE")
    assert finding.location.opcode == "EXT1"
    assert finding.location.opcode_index == 1


# -- hostile shapes and limits ---------------------------------------------------------------------

DEPTH = 100_000


def test_deeply_nested_lists_do_not_recurse(tmp_path: Path) -> None:
    data = b"\x80\x02" + b"]" * DEPTH + b"a" * (DEPTH - 1) + b"."
    result = _scan(tmp_path, data)
    assert result.issues == ()
    assert result.verdict == Verdict.CLEAN


def test_deeply_nested_marks_do_not_recurse(tmp_path: Path) -> None:
    data = b"\x80\x02" + b"(" * DEPTH + b"t" * DEPTH + b"."
    result = _scan(tmp_path, data)
    assert result.issues == ()
    assert result.verdict == Verdict.CLEAN


def test_ten_megabyte_pickle_of_ints_is_within_limits(tmp_path: Path) -> None:
    data = pickle.dumps(list(range(70_000, 70_000 + 2_200_000)), protocol=4)
    assert len(data) >= 10 * 1024 * 1024
    started = time.monotonic()
    result = _scan(tmp_path, data)
    assert time.monotonic() - started < 120
    assert result.issues == ()
    assert result.findings == ()
    assert result.verdict == Verdict.CLEAN


HUGE_LENGTHS = {
    "BINUNICODE": b"\x80\x02X" + struct.pack("<I", 0xFFFFFFFF) + b"abcdefgh",
    "BINSTRING": b"\x80\x02T" + struct.pack("<i", 0x7FFFFFFF) + b"abcdefgh",
    "BINBYTES": b"\x80\x03B" + struct.pack("<I", 0xFFFFFFFF) + b"abcdefgh",
    "BINUNICODE8": b"\x80\x04\x8d" + struct.pack("<Q", 2**62) + b"abcdefgh",
    "BINBYTES8": b"\x80\x04\x8e" + struct.pack("<Q", 2**62) + b"abcdefgh",
    "BYTEARRAY8": b"\x80\x05\x96" + struct.pack("<Q", 2**62) + b"abcdefgh",
    "LONG4": b"\x80\x02\x8b" + struct.pack("<i", 0x7FFFFFFF) + b"abcdefgh",
    "FRAME": b"\x80\x04\x95" + struct.pack("<Q", 2**62) + b"K\x01.",
}


@pytest.mark.parametrize("opcode", sorted(HUGE_LENGTHS))
def test_huge_declared_length_is_malformed_not_allocated(opcode: str, tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        result = _scan(tmp_path, HUGE_LENGTHS[opcode])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024
    (finding, *_) = _of(result, "PICKLE-MALFORMED")
    assert finding.location.opcode == opcode
    assert finding.location.opcode_index == 1
    assert all(issue.kind != "error" for issue in result.issues)
