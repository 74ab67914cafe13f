"""With the default limits, hostile inputs (bombs, deep nesting, huge declared counts, pickles built to
fill memory) are stopped with bounded memory: child processes scan them in groups and each one's peak RSS
(VmHWM of its own address space: ru_maxrss would count the parent's pages at fork) stays under 256 MB."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tests.samples import archives
from tests.samples import limit_samples as ls
from tests.samples.gguf_samples import RawGGUF
from tests.samples.numpy_samples import npy_bytes

PEAK_RSS_LIMIT = 256 * 1024 * 1024
CHILD_SECONDS = 240

_CHILD = """
import json, signal, sys
signal.alarm(int(sys.argv[1]))  # a hang kills the child, and the test fails on its missing report
from modelshield import scan
from modelshield.engine.limits import Limits
names = sorted(Limits.names(), key=len, reverse=True)
report = {}
for path in sys.argv[2:]:
    (file,) = scan(path).files
    limits = set()
    for issue in file.issues:
        if issue.kind == "limit":
            limits.update(n for n in names if issue.location.detail == n or n in issue.message)
    report[path.rsplit("/", 1)[-1]] = {
        "verdict": file.verdict.value,
        "limits": sorted(limits),
        "rules": sorted({f.rule_id for f in file.findings}),
    }
status = open("/proc/self/status", encoding="ascii").read()
peak_kib = int(status.split("VmHWM:", 1)[1].split()[0])
print(json.dumps({"report": report, "peak_kib": peak_kib}))
"""


def _nested_pickles(depth: int) -> bytes:
    """pickle.loads of a pickle that calls pickle.loads of a pickle… `depth` levels deep."""
    inner = b"\x80\x02K\x01."
    for _ in range(depth):
        inner = b"\x80\x03cpickle\nloads\nB" + struct.pack("<I", len(inner)) + inner + b"\x85R."
    return inner


def _huge_shape_npy() -> bytes:
    return npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }")


def _huge_header_npy() -> bytes:
    """A .npy header of a MiB, most of it `{}` literals (what a literal parser multiplies most)."""
    fill = "{}," * ((2**20 - 100) // 3)
    return npy_bytes(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': [" + fill + "]}", bytes(8), (2, 0)
    )


def _huge_protobuf_length() -> bytes:
    """An ONNX model whose graph field declares 2**60 bytes."""
    varint = bytearray()
    n = 1 << 60
    while n >= 0x80:
        varint.append(n & 0x7F | 0x80)
        n >>= 7
    varint.append(n)
    return b"\x08\x08\x12\x07pytorch" + b"\x3a" + bytes(varint) + b"\x0a\x00"


SAMPLES = {
    # name: (bytes, limits the scan must report, rules it must report)
    "bomb-1GiB.gz": (lambda: ls.gzip_zeros(1024), {"max_expansion_ratio"}, {"ARCHIVE-BOMB"}),
    "bomb-1GiB.zst": (lambda: ls.zstd_zeros(1024), {"max_expansion_ratio"}, {"ARCHIVE-BOMB"}),
    "bomb-1GiB.zip": (lambda: archives.deflate_bomb(1024), set(), {"ARCHIVE-BOMB"}),
    "zip-in-zip-40.zip": (lambda: ls.nested_zip(40), {"max_nesting_depth"}, set()),
    "zip64-2^60-members.zip": (
        lambda: ls.zip64_declaring(1 << 60),
        {"max_members_per_archive"},
        {"ARCHIVE-TOO-MANY-MEMBERS"},
    ),
    "pickle-in-pickle-20.pkl": (lambda: _nested_pickles(20), {"max_nesting_depth"}, {"PICKLE-NESTED-LOAD"}),
    "3M-numbers.pkl": (lambda: ls.pickle_of_numbers(3_000_000), {"max_pickle_opcodes"}, set()),
    "2M-empty-dicts.pkl": (lambda: ls.pickle_of_empty_dicts(2_000_000), {"max_pickle_objects"}, set()),
    "400k-calls.pkl": (lambda: ls.pickle_of_calls(400_000), {"max_pickle_objects"}, set()),
    "1M-memo-entries.pkl": (lambda: ls.pickle_memoising(1_000_000), {"max_pickle_memo_entries"}, set()),
    "2M-item-config.keras": (
        lambda: ls.stored_keras(ls.wide_keras_config(2_000_000)),
        {"max_config_nodes"},
        set(),
    ),
    "7MiB-config.keras": (
        lambda: ls.stored_keras(ls.wide_keras_config(7 * 2**19)),
        {"max_config_bytes"},
        set(),
    ),
    "tokenizer_config.json": (lambda: ls.padded_tokenizer_config(15 * 2**20), {"max_config_bytes"}, set()),
    "7MiB-config.yaml": (lambda: ls.flow_yaml_config(7 * 2**20), {"max_yaml_bytes"}, set()),
    "140MiB-pickle.gz": (lambda: ls.gzip_of_big_pickle(140), {"max_materialized_bytes"}, set()),
    # Just within max_config_bytes: parsed (and clean), the JSON parser's worst case at the limit.
    "4MiB-header.safetensors": (lambda: ls.safetensors_padded_header(4 * 2**20 - 64), set(), set()),
    "20MiB-header.safetensors": (
        lambda: ls.safetensors_padded_header(20 * 2**20),
        {"max_config_bytes"},
        set(),
    ),
    "string-2^62.pkl": (lambda: ls.pickle_declaring_string(1 << 62), set(), {"PICKLE-MALFORMED"}),
    "tensors-2^62.gguf": (lambda: RawGGUF(tensor_count=1 << 62).build(), set(), {"GGUF-ABSURD-COUNT"}),
    "kvs-2^64.gguf": (lambda: RawGGUF(kv_count=(1 << 64) - 1).build(), set(), {"GGUF-ABSURD-COUNT"}),
    "shape-2^80.npy": (_huge_shape_npy, set(), {"NUMPY-ABSURD-SHAPE"}),
    "1MiB-header.npy": (_huge_header_npy, {"max_npy_header_bytes"}, {"NUMPY-HEADER-OVERSIZED"}),
    "length-2^60.onnx": (_huge_protobuf_length, set(), {"ONNX-MALFORMED"}),
}


def _scan_in_child(paths: list[Path]) -> tuple[dict[str, dict[str, object]], int]:
    """The child's report and its peak resident set in bytes."""
    command = [sys.executable, "-c", _CHILD, str(CHILD_SECONDS), *map(str, paths)]
    done = subprocess.run(command, capture_output=True, timeout=CHILD_SECONDS + 30, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    output = json.loads(done.stdout)
    return output["report"], output["peak_kib"] * 1024


GROUPS = {
    # One child per group: a process keeps the small-object arenas of one scan when the next one maps a
    # large buffer, so samples that fill memory in different ways go to different children.
    "archives, streams and declared counts": (
        "bomb-1GiB.gz",
        "bomb-1GiB.zst",
        "bomb-1GiB.zip",
        "zip-in-zip-40.zip",
        "zip64-2^60-members.zip",
        "140MiB-pickle.gz",
        "tensors-2^62.gguf",
        "kvs-2^64.gguf",
        "shape-2^80.npy",
        "1MiB-header.npy",
        "length-2^60.onnx",
    ),
    "pickle machine": (
        "pickle-in-pickle-20.pkl",
        "3M-numbers.pkl",
        "2M-empty-dicts.pkl",
        "400k-calls.pkl",
        "1M-memo-entries.pkl",
        "string-2^62.pkl",
    ),
    "configuration parsers": (
        "2M-item-config.keras",
        "4MiB-header.safetensors",
        "20MiB-header.safetensors",
        "7MiB-config.keras",
        "tokenizer_config.json",
        "7MiB-config.yaml",
    ),
}


def test_every_sample_is_in_one_group() -> None:
    grouped = [name for names in GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(SAMPLES)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_hostile_inputs_are_stopped_with_bounded_memory(tmp_path: Path, group: str) -> None:
    paths = []
    for name in GROUPS[group]:
        path = tmp_path / name
        path.write_bytes(SAMPLES[name][0]())
        paths.append(path)
    report, peak = _scan_in_child(paths)
    for name in GROUPS[group]:
        _, limits, rules = SAMPLES[name]
        seen = report[name]
        assert seen["verdict"] != "clean" or not (limits or rules), (name, seen)
        assert limits <= set(seen["limits"]), (name, seen)  # type: ignore[arg-type]
        assert rules <= set(seen["rules"]), (name, seen)  # type: ignore[arg-type]
    assert peak < PEAK_RSS_LIMIT, f"{group}: peak RSS {peak / 2**20:.0f} MiB"
