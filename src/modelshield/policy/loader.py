"""Reads a policy TOML file into a `Policy` (and its `[limits]` table into `Limits`), refusing anything it
does not understand, with file:line."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from modelshield.engine.findings import Severity
from modelshield.engine.limits import DEFAULT_LIMITS, InvalidLimit, Limits
from modelshield.errors import PolicyError
from modelshield.policy.model import Policy, SuppressionRule, is_qualified_name_pattern

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

FAIL_ON_VALUES = ("critical", "high", "medium", "low")
SEVERITY_VALUES = tuple(s.value for s in sorted(Severity, reverse=True))

_TOP_KEYS = frozenset(
    {"fail_on", "rules", "callables", "tensorflow_ops", "hydra_targets", "suppress", "limits"}
)
_RULES_KEYS = frozenset({"disable", "severity"})
_LIST_KEYS = frozenset({"allow", "deny"})
_SUPPRESS_KEYS = frozenset({"rule", "reason", "sha256", "path", "expires"})
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")

KeyPath = tuple[str | int, ...]


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """The policy in the TOML file at `path`; any problem raises `PolicyError` naming file, line and key.
    Its `[limits]` table is validated too; `load_policy_and_limits` also returns it."""
    return load_policy_and_limits(path)[0]


def load_policy_and_limits(path: str | os.PathLike[str]) -> tuple[Policy, Limits]:
    """The policy in the TOML file at `path` and the limits its `[limits]` table sets over the defaults
    (`max_member_bytes = "512MiB"`, `max_seconds_per_file = "30s"`, …)."""
    display = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"policy file not found: {display}") from None
    except IsADirectoryError:
        raise PolicyError(f"policy file is a directory: {display}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{display}: policy file is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {display}: {exc.strerror or exc}") from None
    return parse_policy_and_limits(text, display)


def parse_policy(text: str, source: str) -> Policy:
    """The policy in TOML `text`; `source` names the file in errors and in each suppression's origin."""
    return parse_policy_and_limits(text, source)[0]


def parse_policy_and_limits(text: str, source: str) -> tuple[Policy, Limits]:
    """The policy and the limits in TOML `text` (see `load_policy_and_limits`)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(exc, text, source) from None
    reader = _PolicyReader(document, _KeyLines(text), source)
    return reader.read(), reader.limits()


def _syntax_error(exc: tomllib.TOMLDecodeError, text: str, source: str) -> PolicyError:
    message = str(exc)
    lines = text.splitlines()
    found = re.search(r"\(at line (\d+), column \d+\)", message)
    if found is not None:
        line = int(found.group(1))
        key = _key_on_line(lines[line - 1]) if 0 < line <= len(lines) else None
    elif "end of document" in message:
        # Something left open (an array, a string): most likely by the last key written.
        line, key = next(
            ((number, k) for number in range(len(lines), 0, -1) if (k := _key_on_line(lines[number - 1]))),
            (len(lines), None),
        )
    else:
        return PolicyError(f"{source}: invalid TOML: {message}")
    where = f" in key '{key}'" if key else ""
    return PolicyError(f"{source}:{line}: invalid TOML{where}: {message}")


# A TOML key at the start of a line: bare, "basic" or 'literal', possibly dotted.
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_KEY_RE = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_TABLE_RE = re.compile(rf"^\s*\[\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*\]")
_ARRAY_TABLE_RE = re.compile(rf"^\s*\[\[\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*\]\]")
_PART_RE = re.compile(_KEY_PART)


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = []
    for match in _PART_RE.finditer(dotted):
        part = match.group(0)
        if part[0] == '"':
            try:
                part = json.loads(part)  # TOML basic-string escapes are JSON's, near enough for a key
            except ValueError:
                part = part[1:-1]
        elif part[0] == "'":
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


def _key_on_line(line: str) -> str | None:
    match = _KEY_RE.match(line)
    return ".".join(_split_key(match.group(1))) if match else None


class _KeyLines:
    """Where each key and table was written: tomllib keeps no positions, so the text is read again.

    Good enough for error messages: keys inside inline tables fall back to the line of the key
    holding the inline table, and lines inside multi-line strings are skipped.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        table: KeyPath = ()
        array_counts: dict[tuple[str, ...], int] = {}
        in_string: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            array_table = _ARRAY_TABLE_RE.match(line)
            plain_table = _TABLE_RE.match(line) if array_table is None else None
            key = _KEY_RE.match(line) if array_table is None and plain_table is None else None
            if array_table is not None:
                name = _split_key(array_table.group(1))
                index = array_counts.get(name, -1) + 1
                array_counts[name] = index
                table = (*name, index)
                self._lines.setdefault(table, number)
            elif plain_table is not None:
                table = _split_key(plain_table.group(1))
                self._lines.setdefault(table, number)
            elif key is not None:
                self._lines.setdefault((*table, *_split_key(key.group(1))), number)
                rest = line[key.end() :]
                for quotes in ('"""', "'''"):
                    if rest.count(quotes) % 2 == 1:
                        in_string = quotes

    def line_of(self, key: KeyPath) -> int | None:
        """The line of `key`, or of its nearest enclosing key or table that was found."""
        for end in range(len(key), 0, -1):
            line = self._lines.get(key[:end])
            if line is not None:
                return line
        return None


def _render_key(key: KeyPath) -> str:
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            shown = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            text += f".{shown}" if text else shown
    return text


@dataclass(frozen=True)
class _PolicyReader:
    document: Mapping[str, Any]
    lines: _KeyLines
    source: str

    def error(self, key: KeyPath, message: str) -> PolicyError:
        line = self.lines.line_of(key)
        where = f"{self.source}:{line}" if line is not None else self.source
        return PolicyError(f"{where}: {_render_key(key)}: {message}")

    def read(self) -> Policy:
        doc = self.document
        if not doc:
            # Like a verifier handed no rules: an empty policy is more likely a mistake than a choice.
            raise PolicyError(f"{self.source}: policy file sets nothing; pass no --policy for the defaults")
        self.refuse_unknown(doc, _TOP_KEYS, ())
        rules = self.table(doc, "rules", ())
        self.refuse_unknown(rules, _RULES_KEYS, ("rules",))
        disabled = self.rule_ids(rules, ("rules", "disable"))
        overrides = self.severity_overrides(rules, disabled)
        callables = self.name_lists(doc, "callables", qualified=True)
        tf_ops = self.name_lists(doc, "tensorflow_ops", qualified=False)
        hydra = self.name_lists(doc, "hydra_targets", qualified=True)
        return Policy(
            fail_on=self.fail_on(doc),
            allowed_callables=callables[0],
            denied_callables=callables[1],
            disabled_rules=frozenset(disabled),
            severity_overrides=overrides,
            allowed_tensorflow_ops=tf_ops[0],
            denied_tensorflow_ops=tf_ops[1],
            allowed_hydra_targets=hydra[0],
            denied_hydra_targets=hydra[1],
            suppressions=tuple(self.suppressions(doc)),
            source=self.source,
        )

    def limits(self) -> Limits:
        table = self.table(self.document, "limits", ())
        values: dict[str, object] = {}
        for name, value in table.items():
            if isinstance(value, (dict, list)):
                raise self.error(
                    ("limits", name), f"must be a number or a string with a unit, not {_toml_type(value)}"
                )
            values[name] = value
        try:
            return DEFAULT_LIMITS.with_overrides(values)
        except InvalidLimit as exc:
            raise self.error(("limits", exc.name), str(exc)) from None

    def refuse_unknown(self, table: Mapping[str, Any], known: frozenset[str], at: KeyPath) -> None:
        for key in table:
            if key not in known:
                expected = ", ".join(sorted(known))
                raise self.error((*at, key), f"unknown key (expected one of: {expected})")

    def table(self, parent: Mapping[str, Any], name: str, at: KeyPath) -> Mapping[str, Any]:
        value = parent.get(name, {})
        if not isinstance(value, dict):
            raise self.error((*at, name), f"must be a table, not {_toml_type(value)}")
        return value

    def string(self, parent: Mapping[str, Any], key: KeyPath) -> str:
        value = parent[str(key[-1])]
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {_toml_type(value)}")
        return value

    def string_list(self, parent: Mapping[str, Any], key: KeyPath) -> list[str]:
        value = parent.get(str(key[-1]), [])
        if not isinstance(value, list):
            raise self.error(key, f"must be an array of strings, not {_toml_type(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(key, f"item {index + 1} must be a string, not {_toml_type(item)}")
        return value

    def rule_id(self, value: str, key: KeyPath) -> str:
        from modelshield.rules import REGISTRY

        if value not in REGISTRY:
            raise self.error(key, f"unknown rule id {value!r}")
        return value

    def fail_on(self, doc: Mapping[str, Any]) -> Severity:
        if "fail_on" not in doc:
            return Policy().fail_on
        value = self.string(doc, ("fail_on",))
        if value.lower() not in FAIL_ON_VALUES:
            raise self.error(("fail_on",), f"must be one of {', '.join(FAIL_ON_VALUES)}, not {value!r}")
        return Severity(value.lower())

    def rule_ids(self, rules: Mapping[str, Any], key: KeyPath) -> list[str]:
        return [self.rule_id(value, key) for value in self.string_list(rules, key)]

    def severity_overrides(self, rules: Mapping[str, Any], disabled: list[str]) -> dict[str, Severity]:
        at: KeyPath = ("rules", "severity")
        table = self.table(rules, "severity", ("rules",))
        overrides: dict[str, Severity] = {}
        for rule_id, value in table.items():
            key = (*at, rule_id)
            self.rule_id(rule_id, key)
            if not isinstance(value, str) or value.lower() not in SEVERITY_VALUES:
                shown = repr(value) if isinstance(value, str) else _toml_type(value)
                raise self.error(key, f"must be one of {', '.join(SEVERITY_VALUES)}, not {shown}")
            if rule_id in disabled:
                raise self.error(key, "rule is also disabled in rules.disable; keep one of the two")
            overrides[rule_id] = Severity(value.lower())
        return overrides

    def name_lists(self, doc: Mapping[str, Any], name: str, *, qualified: bool) -> tuple[frozenset[str], ...]:
        table = self.table(doc, name, ())
        self.refuse_unknown(table, _LIST_KEYS, (name,))
        lists = []
        for which in ("allow", "deny"):
            key = (name, which)
            values = self.string_list(table, key)
            for value in values:
                if qualified and not is_qualified_name_pattern(value):
                    raise self.error(
                        key, f"{value!r} is not a qualified name (pkg.mod.Name) or prefix (pkg.*)"
                    )
                if not qualified and (not value or value != value.strip()):
                    raise self.error(key, f"{value!r} is not an op name")
            lists.append(frozenset(values))
        return tuple(lists)

    def suppressions(self, doc: Mapping[str, Any]) -> Iterator[SuppressionRule]:
        entries = doc.get("suppress", [])
        if not isinstance(entries, list):
            raise self.error(("suppress",), "must be an array of tables ([[suppress]])")
        for index, entry in enumerate(entries):
            at: KeyPath = ("suppress", index)
            if not isinstance(entry, dict):
                raise self.error(at, f"must be a table, not {_toml_type(entry)}")
            yield self.suppression(entry, at)

    def suppression(self, entry: Mapping[str, Any], at: KeyPath) -> SuppressionRule:
        self.refuse_unknown(entry, _SUPPRESS_KEYS, at)
        for required in ("rule", "reason"):
            if required not in entry:
                raise self.error((*at, required), "is required")
        rule = self.rule_id(self.string(entry, (*at, "rule")), (*at, "rule"))
        reason = self.string(entry, (*at, "reason"))
        if not reason.strip():
            raise self.error((*at, "reason"), "must not be empty: say why the finding is acceptable")
        sha256 = self.string(entry, (*at, "sha256")) if "sha256" in entry else None
        if sha256 is not None and not _HEX64.match(sha256):
            raise self.error((*at, "sha256"), "must be 64 hexadecimal digits")
        path = self.string(entry, (*at, "path")) if "path" in entry else None
        if path is not None and not path:
            raise self.error((*at, "path"), "must not be empty")
        if sha256 is None and path is None:
            raise self.error(
                at, "needs sha256 or path (or both); to silence a rule everywhere use rules.disable"
            )
        expires = entry.get("expires")
        if expires is not None and (isinstance(expires, datetime) or not isinstance(expires, date)):
            raise self.error(
                (*at, "expires"), f"must be a TOML date like 2026-12-31, not {_toml_type(expires)}"
            )
        line = self.lines.line_of(at)
        return SuppressionRule(
            rule=rule,
            reason=reason.strip(),
            source=f"{self.source}:{line}" if line is not None else self.source,
            sha256=sha256.lower() if sha256 is not None else None,
            path=path,
            expires=expires,
        )


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    return "a time"
