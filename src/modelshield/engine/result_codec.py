"""FileResult to plain JSON-able data and back, strictly validated: what a worker process returns is
decoded here as data, never unpickled, and anything malformed is refused."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from enum import Enum
from typing import Any, TypeVar

from modelshield.engine.context import SideFileSeen
from modelshield.engine.findings import (
    Category,
    Confidence,
    Finding,
    Location,
    ScanIssue,
    Severity,
    Suppression,
)
from modelshield.engine.hash_cache import FileStamp, is_sha256
from modelshield.engine.result import FileResult, FormatNode

MAX_TREE_DEPTH = 256
"""Deeper than any container nesting the limits allow; a deeper tree is refused, not walked."""

_E = TypeVar("_E", bound=Enum)
_T = TypeVar("_T")


class ResultDecodeError(ValueError):
    """The data is not a well-formed encoded FileResult."""


def encode_file_result(result: FileResult) -> dict[str, Any]:
    """Plain data (dicts, lists and tuples, str, int, float, bool, None) for `result`."""
    data = asdict(result)
    for finding in data["findings"]:
        for key in _ENUM_KEYS:
            finding[key] = finding[key].value
    return data


_ENUM_KEYS = ("severity", "category", "confidence")


def decode_file_result(data: object) -> FileResult:
    """The FileResult `data` encodes; raises ResultDecodeError on any missing, extra or mistyped field."""
    try:
        fields = _fields(data, "file result", _FILE_KEYS)
        size = _int(fields, "size")
        sha256 = _optional(fields, "sha256", _str)
        if sha256 is not None and not is_sha256(sha256):
            raise ResultDecodeError("sha256 is not lowercase hex of 64 digits")
        duration = fields["duration_seconds"]
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < 1e9:
            raise ResultDecodeError("duration_seconds is not a non-negative number")
        from_cache = fields["from_cache"]
        if not isinstance(from_cache, bool):
            raise ResultDecodeError("from_cache is not a boolean")
        return FileResult(
            path=_str(fields, "path"),
            size=size,
            sha256=sha256,
            tree=_decode_node(fields["tree"], 0),
            findings=tuple(_decode_finding(f) for f in _list(fields, "findings")),
            issues=tuple(_decode_issue(i) for i in _list(fields, "issues")),
            duration_seconds=float(duration),
            from_cache=from_cache,
        )
    except RecursionError:
        raise ResultDecodeError("nesting too deep") from None


_FILE_KEYS = frozenset(
    {"path", "size", "sha256", "tree", "findings", "issues", "duration_seconds", "from_cache"}
)
_NODE_KEYS = frozenset({"name", "format", "size", "children"})
_LOCATION_KEYS = frozenset({"chain", "offset", "opcode_index", "opcode", "detail"})
_FINDING_KEYS = frozenset(
    {
        "rule_id",
        "severity",
        "category",
        "confidence",
        "message",
        "location",
        "evidence",
        "remediation",
        "references",
        "suppression",
    }
)
_SUPPRESSION_KEYS = frozenset({"reason", "source", "expires", "expired"})
_ISSUE_KEYS = frozenset({"kind", "message", "location"})


def encode_stamp(stamp: FileStamp | None) -> list[int] | None:
    """A file stamp as a list of its five integers (None stays None)."""
    if stamp is None:
        return None
    return [stamp.device, stamp.inode, stamp.size, stamp.mtime_ns, stamp.ctime_ns]


def decode_stamp(data: object) -> FileStamp | None:
    """The FileStamp `encode_stamp` gave `data` for; raises ResultDecodeError on anything else."""
    if data is None:
        return None
    if (
        not isinstance(data, list)
        or len(data) != 5
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in data)
    ):
        raise ResultDecodeError("a file stamp is not a list of five integers")
    return FileStamp(*data)


def encode_side_files(side_files: tuple[SideFileSeen, ...]) -> list[list[object]]:
    """Side files looked for, as [name, stamp] pairs."""
    return [[seen.name, encode_stamp(seen.stamp)] for seen in side_files]


def decode_side_files(data: object) -> tuple[SideFileSeen, ...]:
    """The side files `encode_side_files` gave `data` for; raises ResultDecodeError on anything else."""
    if not isinstance(data, list):
        raise ResultDecodeError("side files are not a list")
    out = []
    for item in data:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
            raise ResultDecodeError("a side file is not a [name, stamp] pair")
        out.append(SideFileSeen(item[0], decode_stamp(item[1])))
    return tuple(out)


def _decode_node(data: object, depth: int) -> FormatNode:
    if depth > MAX_TREE_DEPTH:
        raise ResultDecodeError(f"format tree deeper than {MAX_TREE_DEPTH} levels")
    fields = _fields(data, "format node", _NODE_KEYS)
    return FormatNode(
        name=_str(fields, "name"),
        format=_str(fields, "format"),
        size=_int(fields, "size"),
        children=tuple(_decode_node(c, depth + 1) for c in _list(fields, "children")),
    )


def _decode_location(data: object) -> Location:
    fields = _fields(data, "location", _LOCATION_KEYS)
    chain = _strings(fields, "chain")
    if not chain:
        raise ResultDecodeError("location chain is empty")
    return Location(
        chain=chain,
        offset=_optional(fields, "offset", _int),
        opcode_index=_optional(fields, "opcode_index", _int),
        opcode=_optional(fields, "opcode", _str),
        detail=_optional(fields, "detail", _str),
    )


def _decode_finding(data: object) -> Finding:
    fields = _fields(data, "finding", _FINDING_KEYS)
    return Finding(
        rule_id=_str(fields, "rule_id"),
        severity=_enum(fields, "severity", Severity),
        category=_enum(fields, "category", Category),
        confidence=_enum(fields, "confidence", Confidence),
        message=_str(fields, "message"),
        location=_decode_location(fields["location"]),
        evidence=_str(fields, "evidence"),
        remediation=_str(fields, "remediation"),
        references=_strings(fields, "references"),
        suppression=None if fields["suppression"] is None else _decode_suppression(fields["suppression"]),
    )


def _decode_suppression(data: object) -> Suppression:
    fields = _fields(data, "suppression", _SUPPRESSION_KEYS)
    expired = fields["expired"]
    if not isinstance(expired, bool):
        raise ResultDecodeError("suppression.expired is not a boolean")
    return Suppression(
        reason=_str(fields, "reason"),
        source=_str(fields, "source"),
        expires=_optional(fields, "expires", _str),
        expired=expired,
    )


def _decode_issue(data: object) -> ScanIssue:
    fields = _fields(data, "issue", _ISSUE_KEYS)
    return ScanIssue(_str(fields, "kind"), _str(fields, "message"), _decode_location(fields["location"]))


def _fields(data: object, what: str, keys: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(data, dict):
        raise ResultDecodeError(f"{what} is not an object")
    if data.keys() != keys:
        missing = sorted(keys - data.keys())
        extra = sorted(str(k) for k in data.keys() - keys)
        raise ResultDecodeError(f"{what} has missing keys {missing} or unexpected keys {extra}")
    return data


def _str(fields: Mapping[str, object], key: str) -> str:
    value = fields[key]
    if not isinstance(value, str):
        raise ResultDecodeError(f"{key} is not a string")
    return value


def _int(fields: Mapping[str, object], key: str) -> int:
    value = fields[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ResultDecodeError(f"{key} is not a non-negative integer")
    return value


def _list(fields: Mapping[str, object], key: str) -> list[object]:
    value = fields[key]
    if not isinstance(value, list):
        raise ResultDecodeError(f"{key} is not a list")
    return value


def _strings(fields: Mapping[str, object], key: str) -> tuple[str, ...]:
    strings = tuple(s for s in _list(fields, key) if isinstance(s, str))
    if len(strings) != len(_list(fields, key)):
        raise ResultDecodeError(f"{key} is not a list of strings")
    return strings


def _optional(
    fields: Mapping[str, object], key: str, decode: Callable[[Mapping[str, object], str], _T]
) -> _T | None:
    return None if fields[key] is None else decode(fields, key)


def _enum(fields: Mapping[str, object], key: str, kind: type[_E]) -> _E:
    value = fields[key]
    try:
        return kind(value)
    except (ValueError, TypeError):
        raise ResultDecodeError(f"{key} is not one of {[m.value for m in kind]}") from None
