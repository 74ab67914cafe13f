"""Top-level members of large JSON objects: every spelling json.loads accepts is found, nothing else."""

from __future__ import annotations

import json

import pytest

from modelshield.analysis.json_members import JsonShapeError, top_level_members

WANTED = frozenset({"auto_map", "chat_template"})


def members(raw: bytes) -> dict[str, object]:
    found = top_level_members(raw, WANTED)
    return {key: json.loads(raw[m.start : m.end]) for key, m in found.items()}


def test_only_top_level_members_are_taken_as_json_loads_reads_them() -> None:
    document = {
        "pad": "x" * 1000,
        "nested": {"auto_map": "not top level", "list": [1, {"a": "} ] {"}]},
        "number": 12.5,
        "flag": True,
        "auto_map": {"AutoModel": "first.M"},
        "chat_template": 'hi " }',
    }
    raw = json.dumps(document).encode() + b"\n"
    raw = raw[:-2] + b', "auto_map": {"AutoModel": "last.M"}}\n'  # a repeated key: the last one counts
    assert members(raw) == {"auto_map": {"AutoModel": "last.M"}, "chat_template": 'hi " }'}
    assert members(raw) == {k: v for k, v in json.loads(raw).items() if k in WANTED}


def test_escaped_key_spellings_are_found() -> None:
    raw = b'{"pad": 1, "\\u0061uto\\u005Fmap": {"AutoModel": "evil.X"}}'
    assert json.loads(raw)["auto_map"] == {"AutoModel": "evil.X"}
    assert members(raw) == {"auto_map": {"AutoModel": "evil.X"}}


def test_an_object_without_the_keys_is_not_walked() -> None:
    assert members(json.dumps({"vocab": {f"t{i}": i for i in range(1000)}}).encode()) == {}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"auto_map": 1',
        b'{"auto_map": 1} {"b": 2}',
        b'{"a": {"auto_map": "unterminated}}',
    ],
)
def test_what_json_loads_refuses_is_refused(raw: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    with pytest.raises(JsonShapeError):
        top_level_members(raw, WANTED)


def test_a_document_that_is_not_an_object_has_no_members() -> None:
    with pytest.raises(JsonShapeError, match="not a single JSON object"):
        top_level_members(b'[{"auto_map": 1}]', WANTED)
