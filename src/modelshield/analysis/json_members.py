"""Chosen top-level members of a JSON object too large to parse whole, found by one pass over its tokens.

A loader such as transformers parses the whole file, so a dangerous key can sit behind megabytes of
padding or an enormous harmless value; reading only the head would miss it. This pass tokenizes strings
and brackets (in C, by a regular expression), decodes only the top-level keys, and hands back the raw
text of the members asked for, each parsed on its own within a size bound.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'  # the unrolled form never backtracks
# At the top level: one string, one structural character, or one bare scalar, after optional whitespace.
_TOP_TOKEN = re.compile(rb"\s*(?:" + _STRING + rb'|[{}\[\]:,]|[^"{}\[\]:,\s]+)')
# Inside a member's value: a whole run of strings and other text up to the next bracket, or a bracket.
_DEEP_TOKEN = re.compile(rb"(?:" + _STRING + rb'|[^"{}\[\]])+|[{}\[\]]')
_MAX_KEY_BYTES = 4096
_TICK_EVERY = 65_536


class JsonShapeError(ValueError):
    """The text is not a JSON object whose top level can be walked."""


@dataclass(frozen=True)
class Member:
    """One top-level member: its key and where its value's text lies."""

    key: str
    start: int
    end: int


def top_level_members(
    data: bytes | memoryview, wanted: frozenset[str], tick: Callable[[], None] = lambda: None
) -> dict[str, Member]:
    """The members of the top-level object whose (decoded) key is in `wanted`; a repeated key keeps its
    last occurrence, as json.loads does."""
    if _spellings(wanted).search(data) is None:
        return {}  # no wanted key at any depth: nothing to walk for (a tokenizer.json, say)
    found: dict[str, Member] = {}
    depth = 0
    expecting_key = False
    key: str | None = None
    value_start = -1
    pos, steps = 0, 0
    while True:
        steps += 1
        if steps % _TICK_EVERY == 0:
            tick()
        match = (_DEEP_TOKEN if depth >= 2 else _TOP_TOKEN).match(data, pos)
        if match is None:
            if depth == 0 and not bytes(data[pos:]).strip():
                break
            raise JsonShapeError(f"unreadable JSON at byte {pos}")
        pos = match.end()
        token = match.group().lstrip()
        first = token[:1]
        if depth == 0:
            if first != b"{" or steps != 1:
                raise JsonShapeError(f"not a single JSON object (byte {match.start()})")
            depth, expecting_key = 1, True
        elif first in (b"{", b"["):
            depth += 1
        elif first in (b"}", b"]"):
            depth -= 1
            if depth == 0:
                _close(found, wanted, key, value_start, pos - 1)
                key = None
                if _TOP_TOKEN.match(data, pos) is not None:
                    raise JsonShapeError(f"data after the top-level object (byte {pos})")
                return found
        elif depth == 1 and first == b",":
            _close(found, wanted, key, value_start, pos - 1)
            key, expecting_key = None, True
        elif depth == 1 and first == b":" and key is not None:
            value_start = pos
        elif depth == 1 and first == b'"' and expecting_key:
            expecting_key = False
            key = _decode_key(token, match.start())
    raise JsonShapeError("the top-level object is not closed")


@functools.lru_cache(maxsize=8)
def _spellings(keys: frozenset[str]) -> re.Pattern[bytes]:
    """Every way JSON can spell one of `keys` as a member name: each character literal or \\u-escaped."""

    def char(c: str) -> bytes:
        code = f"{ord(c):04x}"
        hex_any_case = "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in code)
        return b"(?:" + re.escape(c.encode()) + rb"|\\u" + hex_any_case.encode() + b")"

    names = b"|".join(b"".join(char(c) for c in key) for key in sorted(keys))
    return re.compile(rb'"(?:' + names + rb')"\s*:')


def _close(found: dict[str, Member], wanted: frozenset[str], key: str | None, start: int, end: int) -> None:
    if key in wanted and start >= 0:
        found[key] = Member(key, start, end)


def _decode_key(token: bytes, at: int) -> str:
    if len(token) > _MAX_KEY_BYTES:
        return ""  # no key we look for is that long, even spelled with escapes
    try:
        decoded = json.loads(token)
    except ValueError as exc:
        raise JsonShapeError(f"key at byte {at} is not a JSON string") from exc
    return decoded if isinstance(decoded, str) else ""

