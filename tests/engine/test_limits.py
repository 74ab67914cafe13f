"""Limits: one validated object, set from a policy file, the command line or the API; and each limit
holds on a crafted input, ending that part of the scan with an issue naming it (never a clean verdict)."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from tests.samples import archives, keras_samples
from tests.samples import limit_samples as ls
from tests.samples.gguf_samples import RawGGUF
from tests.samples.numpy_samples import npy_bytes

from modelshield import Verdict, scan
from modelshield.analysis.isolated import IsolationLimits
from modelshield.cli import EXIT_OK, EXIT_SCAN_ERROR, EXIT_USAGE, cli
from modelshield.engine.limits import (
    DEFAULT_LIMITS,
    GiB,
    InvalidLimit,
    KiB,
    Limits,
    MiB,
    limit_unit,
    parse_limit_value,
)
from modelshield.engine.result import FileResult
from modelshield.errors import PolicyError
from modelshield.policy.loader import load_policy, parse_policy_and_limits

# -- the object -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "given", "expected"),
    [
        ("max_member_bytes", "512MiB", 512 * MiB),
        ("max_member_bytes", "2GiB", 2 * GiB),
        ("max_member_bytes", "2G", 2 * GiB),
        ("max_member_bytes", "1.5KiB", 1536),
        ("max_member_bytes", "10MB", 10_000_000),
        ("max_member_bytes", " 64 kib ", 64 * KiB),
        ("max_member_bytes", 4096, 4096),
        ("max_bytes_read_per_file", "1TiB", 1024 * GiB),
        ("max_seconds_per_file", "30s", 30.0),
        ("max_seconds_per_file", "500ms", 0.5),
        ("max_seconds_per_file", "2m", 120.0),
        ("max_seconds_per_file", 7, 7.0),
        ("child_cpu_seconds", "1h", 3600),
        ("child_wall_seconds", "90", 90.0),
        ("max_pickle_opcodes", "10k", 10_000),
        ("max_pickle_opcodes", "2M", 2_000_000),
        ("max_pickle_opcodes", "1_000", 1000),
        ("max_expansion_ratio", "50x", 50.0),
        ("max_expansion_ratio", 12.5, 12.5),
    ],
)
def test_values_are_read_with_their_units(name: str, given: object, expected: float) -> None:
    value = parse_limit_value(name, given)
    assert value == expected
    assert type(value) is type(getattr(DEFAULT_LIMITS, name))
    assert getattr(Limits.from_mapping({name: given}), name) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_membr_bytes": 1}, "unknown limit 'max_membr_bytes' (did you mean max_member_bytes?)"),
        ({"max_member_bytes": 0}, "limit max_member_bytes must be positive; got 0"),
        ({"max_member_bytes": -5}, "limit max_member_bytes must be positive; got -5"),
        ({"max_member_bytes": "-3"}, "limit max_member_bytes must be bytes, or with a unit"),
        ({"max_member_bytes": "1.5"}, "limit max_member_bytes must be a whole number of bytes; got '1.5'"),
        ({"max_member_bytes": "12 parsecs"}, "limit max_member_bytes must be bytes, or with a unit"),
        ({"max_member_bytes": True}, "limit max_member_bytes must be bytes, or with a unit"),
        ({"max_member_bytes": [1]}, "limit max_member_bytes must be bytes, or with a unit"),
        ({"max_seconds_per_file": float("nan")}, "limit max_seconds_per_file must be positive; got nan"),
        ({"max_seconds_per_file": float("inf")}, "limit max_seconds_per_file must be positive; got inf"),
        ({"max_seconds_per_file": "5 fortnights"}, "must be seconds, or with a unit: 500ms, 30s, 5m, 1h"),
        ({"child_cpu_seconds": "1.5s"}, "limit child_cpu_seconds must be a whole number of seconds"),
        ({"max_nesting_depth": "3KiB"}, "limit max_nesting_depth must be a whole number (1000, 10k, 2M)"),
        ({"max_expansion_ratio": "0.5"}, "limit max_expansion_ratio must be at least 1"),
    ],
)
def test_unusable_names_and_values_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidLimit) as refused:
        Limits.from_mapping(values)
    assert message in str(refused.value)
    assert refused.value.name == next(iter(values))


@pytest.mark.parametrize("value", [2.0, True, "3", None])
def test_constructing_with_a_wrong_type_is_refused(value: object) -> None:
    with pytest.raises(InvalidLimit, match="limit max_nesting_depth must be an integer"):
        Limits(max_nesting_depth=value)  # type: ignore[arg-type]


def test_overrides_change_only_what_they_name_and_limits_stay_frozen() -> None:
    changed = DEFAULT_LIMITS.with_overrides({"max_nesting_depth": "3"})
    assert dataclasses.replace(DEFAULT_LIMITS, max_nesting_depth=3) == changed
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.max_nesting_depth = 4  # type: ignore[misc]


def test_every_limit_measures_something_named() -> None:
    units = {name: limit_unit(name) for name in Limits.names()}
    assert units["max_bytes_read_per_file"] == "bytes"
    assert units["max_expanded_bytes_per_file"] == "bytes"
    assert units["max_seconds_per_file"] == "seconds"
    assert units["child_cpu_seconds"] == "seconds"
    assert units["max_expansion_ratio"] == "ratio"
    assert units["max_pickle_objects"] == "count"
    for name, unit in units.items():
        assert (unit == "bytes") == ("bytes" in name.split("_")), name


def test_child_processes_take_their_bounds_from_the_limits() -> None:
    limits = Limits(child_memory_bytes=300 * MiB, child_cpu_seconds=9, child_wall_seconds=12.5)
    isolation = IsolationLimits.from_limits(limits)
    assert (isolation.memory_bytes, isolation.cpu_seconds, isolation.wall_seconds) == (300 * MiB, 9, 12.5)
    assert IsolationLimits() == IsolationLimits.from_limits(DEFAULT_LIMITS)


# -- policy file and command line ---------------------------------------------------------------------------


def test_a_policy_sets_limits_over_the_defaults() -> None:
    text = '[rules]\ndisable = []\n\n[limits]\nmax_member_bytes = "512MiB"\nmax_seconds_per_file = 30\n'
    _, limits = parse_policy_and_limits(text, "policy.toml")
    assert limits == dataclasses.replace(
        DEFAULT_LIMITS, max_member_bytes=512 * MiB, max_seconds_per_file=30.0
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'fail_on = "high"\n[limits]\nmax_nesting_depth = 4\nmax_membr_bytes = 1\n',
            "policy.toml:4: limits.max_membr_bytes: unknown limit 'max_membr_bytes' "
            "(did you mean max_member_bytes?)",
        ),
        (
            '[limits]\n\nmax_member_bytes = "lots"\n',
            "policy.toml:3: limits.max_member_bytes: limit max_member_bytes must be bytes, or with a unit",
        ),
        (
            "[limits]\nmax_nesting_depth = 0\n",
            "policy.toml:2: limits.max_nesting_depth: limit max_nesting_depth",
        ),
        ("[limits]\nmax_nesting_depth = [3]\n", "policy.toml:2: limits.max_nesting_depth: must be a number"),
        ("limits = 3\n", "policy.toml:1: limits: must be a table, not a number"),
    ],
)
def test_policy_limit_errors_name_line_and_key(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy_and_limits(text, "policy.toml")
    assert str(refused.value).startswith(message)


def test_loading_only_the_policy_still_validates_its_limits(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("[limits]\nmax_pickle_opcodes = -1\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="limits.max_pickle_opcodes: limit max_pickle_opcodes must be"):
        load_policy(path)


def test_the_command_line_sets_limits_over_the_policy(tmp_path: Path) -> None:
    sample = tmp_path / "nested.zip"
    sample.write_bytes(ls.nested_zip(4))
    policy = tmp_path / "policy.toml"
    policy.write_text("[limits]\nmax_nesting_depth = 1\n", encoding="utf-8")
    runner = CliRunner()

    by_policy = runner.invoke(cli, ["scan", "--no-hash", "--policy", str(policy), str(sample)])
    assert by_policy.exit_code == EXIT_SCAN_ERROR, by_policy.output
    assert "nesting deeper than 1 levels" in by_policy.output

    by_option = ["scan", "--no-hash", "--policy", str(policy), "--limit", "max_nesting_depth=8", str(sample)]
    assert runner.invoke(cli, by_option).exit_code == EXIT_OK


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "max_nesting_depth",
            "--limit takes NAME=VALUE (e.g. max_member_bytes=512MiB), not 'max_nesting_depth'",
        ),
        ("max_nestin_depth=3", "--limit: unknown limit 'max_nestin_depth' (did you mean max_nesting_depth?)"),
        ("max_member_bytes=huge", "--limit: limit max_member_bytes must be bytes, or with a unit"),
    ],
)
def test_bad_limit_options_are_usage_errors(tmp_path: Path, setting: str, message: str) -> None:
    sample = tmp_path / "a.txt"
    sample.write_text("text", encoding="utf-8")
    result = CliRunner().invoke(cli, ["scan", "--limit", setting, str(sample)])
    assert result.exit_code == EXIT_USAGE
    assert f"modelshield: error: {message}" in result.output


# -- each limit holds on a crafted input ---------------------------------------------------------------------

_NAMES = sorted(Limits.names(), key=len, reverse=True)


def limit_hits(file: FileResult) -> set[str]:
    """The limit each "limit" issue names (as its location detail, else in its message)."""
    hits = set()
    for issue in file.issues:
        if issue.kind != "limit":
            continue
        if issue.location.detail in _NAMES:
            hits.add(issue.location.detail)
            continue
        named = [n for n in _NAMES if re.search(rf"\b{n}\b", issue.message)]
        assert named, f"a limit issue names no limit: {issue.message}"
        hits.add(named[0])
    return hits


def nested_onnx(depth: int) -> bytes:
    """Subgraphs inside If nodes, `depth` levels deep (three protobuf messages per level)."""
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    leaf = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "leaf", [], [out])
    graph = leaf
    for level in range(depth):
        condition = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
        node = helper.make_node("If", ["c"], ["y"], then_branch=graph, else_branch=leaf)
        graph = helper.make_graph([node], f"level{level}", [condition], [out])
    return bytes(helper.make_model(graph).SerializeToString())


def _template_gguf() -> bytes:
    raw = RawGGUF()
    return RawGGUF(kvs=(raw.kv_string("tokenizer.chat_template", "{{ x }}" * 300),)).build()


def _long_string_pickle() -> bytes:
    return ls.PROTO4 + b"\x8d" + (5000).to_bytes(8, "little") + b"s" * 5000 + b"."


HOSTILE: dict[str, tuple[Callable[[], bytes], dict[str, object], str, str | None]] = {
    # name: (sample, limits changed from the defaults, the limit that must stop it, a finding it also gets)
    "members-read-again.zip": (
        lambda: ls.stored_pickles_zip(40, 256 * KiB),
        {"max_bytes_read_per_file": "2MiB"},
        "max_bytes_read_per_file",
        None,
    ),
    "zip-in-zip.zip": (lambda: ls.nested_zip(15), {}, "max_nesting_depth", None),
    "many-members.zip": (
        lambda: ls.many_members_zip(50),
        {"max_members_per_archive": 10},
        "max_members_per_archive",
        "ARCHIVE-TOO-MANY-MEMBERS",
    ),
    "zip64-declares-2^60.zip": (
        lambda: ls.zip64_declaring(1 << 60),
        {},
        "max_members_per_archive",
        "ARCHIVE-TOO-MANY-MEMBERS",
    ),
    "noise.gz": (
        lambda: ls.gzip_of(ls.noise(3 * MiB)),
        {"max_member_bytes": "1MiB"},
        "max_member_bytes",
        None,
    ),
    "expands-past-budget.zip": (
        lambda: ls.deflated_zip({f"h{i}.txt": ls.half_noise(MiB) for i in range(3)}),
        {"max_expanded_bytes_per_file": "2MiB"},
        "max_expanded_bytes_per_file",
        None,
    ),
    "bomb.gz": (lambda: ls.gzip_zeros(64), {}, "max_expansion_ratio", "ARCHIVE-BOMB"),
    "bomb.zst": (lambda: ls.zstd_zeros(64), {}, "max_expansion_ratio", "ARCHIVE-BOMB"),
    "pickle.gz": (
        lambda: ls.gzip_of(ls.pickle_of_numbers(300_000)),
        {"max_materialized_bytes": "1MiB"},
        "max_materialized_bytes",
        None,
    ),
    "numbers.pkl": (
        lambda: ls.pickle_of_numbers(3000),
        {"max_pickle_opcodes": 1000},
        "max_pickle_opcodes",
        None,
    ),
    "dicts.pkl": (
        lambda: ls.pickle_of_empty_dicts(3000),
        {"max_pickle_objects": 1000},
        "max_pickle_objects",
        None,
    ),
    "calls.pkl": (lambda: ls.pickle_of_calls(3000), {"max_pickle_objects": 1000}, "max_pickle_objects", None),
    "memo.pkl": (
        lambda: ls.pickle_memoising(3000),
        {"max_pickle_memo_entries": 1000},
        "max_pickle_memo_entries",
        None,
    ),
    "long-string.pkl": (
        _long_string_pickle,
        {"max_pickle_string_bytes": 1000},
        "max_pickle_string_bytes",
        None,
    ),
    "70-pickles.pkl": (lambda: ls.consecutive_pickles(70), {}, "max_pickles_per_stream", None),
    "kv-count.gguf": (
        lambda: RawGGUF(kv_count=50, data=bytes(8192)).build(),
        {"max_gguf_metadata_entries": 10},
        "max_gguf_metadata_entries",
        "GGUF-ABSURD-COUNT",
    ),
    "tensor-count.gguf": (
        lambda: RawGGUF(tensor_count=50, data=bytes(8192)).build(),
        {"max_gguf_tensors": 10},
        "max_gguf_tensors",
        "GGUF-ABSURD-COUNT",
    ),
    "template.gguf": (_template_gguf, {"max_template_bytes": 1000}, "max_template_bytes", None),
    "config.keras": (
        lambda: keras_samples.keras_bytes(
            keras_samples.model_config(*[keras_samples.dense() for _ in range(50)])
        ),
        {"max_config_nodes": 100},
        "max_config_nodes",
        None,
    ),
    "large-config.keras": (
        lambda: ls.stored_keras(ls.wide_keras_config(100_000)),
        {"max_config_bytes": "100KiB"},
        "max_config_bytes",
        None,
    ),
    "wide-config.keras": (
        lambda: ls.stored_keras(ls.wide_keras_config(100_000)),
        {"max_config_nodes": 1000},
        "max_config_nodes",
        None,
    ),
    "tokenizer_config.json": (
        lambda: ls.padded_tokenizer_config(200_000),
        {"max_config_bytes": "100KiB"},
        "max_config_bytes",
        None,
    ),
    "config.yaml": (lambda: ls.flow_yaml_config(20_000), {"max_yaml_bytes": "10KiB"}, "max_yaml_bytes", None),
    "header.safetensors": (
        lambda: ls.safetensors_padded_header(200_000),
        {"max_config_bytes": "100KiB"},
        "max_config_bytes",
        None,
    ),
    "long-header.npy": (
        lambda: npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }" + " " * 5000, bytes(8)),
        {"max_npy_header_bytes": 1000},
        "max_npy_header_bytes",
        None,
    ),
    "300-members.zip": (
        lambda: ls.many_members_zip(300),
        {"max_seconds_per_file": "1ms"},
        "max_seconds_per_file",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_limit_stops_its_crafted_input_and_the_file_is_never_clean(tmp_path: Path, name: str) -> None:
    build, changes, limit, finding = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(build())
    (file,) = scan(path, compute_hash=False, limits=Limits.from_mapping(changes)).files
    assert limit in limit_hits(file)
    assert file.verdict is not Verdict.CLEAN
    if finding is not None:
        assert finding in {f.rule_id for f in file.findings}


def test_the_same_inputs_pass_when_their_limit_is_raised(tmp_path: Path) -> None:
    path = tmp_path / "numbers.pkl"
    path.write_bytes(ls.pickle_of_numbers(3000))
    (file,) = scan(path, compute_hash=False, limits=Limits(max_pickle_opcodes=10_000)).files
    assert (file.issues, file.verdict) == ((), Verdict.CLEAN)
    path = tmp_path / "zip-in-zip.zip"
    path.write_bytes(ls.nested_zip(4))
    (file,) = scan(path, compute_hash=False, limits=Limits(max_nesting_depth=4)).files
    assert (file.issues, file.verdict) == ((), Verdict.CLEAN)


def test_protobuf_nesting_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "deep.onnx"
    path.write_bytes(nested_onnx(8))  # 8 levels of subgraph: 25 messages deep
    (shallow,) = scan(path, compute_hash=False).files
    (deep,) = scan(path, compute_hash=False, limits=Limits(max_protobuf_depth=16)).files
    assert shallow.verdict is Verdict.CLEAN
    messages = [i.message for i in deep.issues] + [f.message for f in deep.findings]
    assert any("nested more than 16 deep (max_protobuf_depth)" in m for m in messages), messages
    assert deep.verdict is not Verdict.CLEAN


def test_a_nested_payload_past_its_limit_is_reported_opaque(tmp_path: Path) -> None:
    path = tmp_path / "stager.pkl"
    path.write_bytes(ls.pickle_decompressing(ls.zlib_zeros(MiB)))
    (file,) = scan(path, compute_hash=False, limits=Limits(max_nested_payload_bytes=64 * KiB)).files
    (nested,) = [f for f in file.findings if f.rule_id == "PICKLE-NESTED-LOAD"]
    assert "larger than the nested payload limit (max_nested_payload_bytes)" in nested.message
    assert file.verdict is not Verdict.CLEAN


def test_crc_is_verified_only_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "bad-crc.zip"
    path.write_bytes(archives.raw_zip([archives.RawEntry(b"a.txt", b"a" * 5000, crc=1234)]))
    (checked,) = scan(path, compute_hash=False, limits=Limits(max_crc_check_bytes=8 * KiB)).files
    (unchecked,) = scan(path, compute_hash=False, limits=Limits(max_crc_check_bytes=4 * KiB)).files
    assert [f.rule_id for f in checked.findings] == ["ZIP-BAD-CRC"]
    assert unchecked.findings == ()


def test_a_long_pickle_is_cut_short_by_the_time_limit(tmp_path: Path) -> None:
    path = tmp_path / "slow.pkl"
    path.write_bytes(ls.pickle_of_numbers(2_000_000))
    started = time.monotonic()
    (file,) = scan(path, compute_hash=False, limits=Limits(max_seconds_per_file=0.2)).files
    assert time.monotonic() - started < 3
    assert "max_seconds_per_file" in limit_hits(file)
    assert file.verdict is Verdict.ERROR
