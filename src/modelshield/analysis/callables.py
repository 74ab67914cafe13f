"""Verdicts for Python callables named in model files: known safe, known dangerous (and why), or unknown.

The lists are shipped data (policy/allowlist.toml, policy/denylist.toml), never derived from what is
installed where the scanner runs, so a verdict is the same on every machine."""

from __future__ import annotations

import fnmatch
import pkgutil
import re
import sys
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from modelshield.analysis.pickle_effects import compat_name
from modelshield.engine.findings import Category
from modelshield.policy.model import Policy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

# Attribute names whose traversal escapes into interpreter internals (globals, builtins, subclasses).
ESCAPE_ATTRIBUTES = frozenset(
    {
        "__globals__", "__builtins__", "__subclasses__", "__code__", "__closure__", "__func__",
        "__self__", "__import__", "__loader__", "__spec__", "__getattribute__", "func_globals",
        "gi_frame", "f_globals", "f_locals", "f_back", "tb_frame", "__reduce__", "__reduce_ex__",
    }
)  # fmt: skip

# Module aliases that reach the same code under another name.
MODULE_ALIASES = {
    "posix": "os",
    "nt": "os",
    "_io": "io",
    "_operator": "operator",
    "_functools": "functools",
    "_pickle": "pickle",
    "__builtin__": "builtins",
    "exceptions": "builtins",
}


class Judgement(Enum):
    SAFE = "safe"
    DANGEROUS = "dangerous"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CallableVerdict:
    """The verdict on one qualified name, with the reason and (when dangerous) the kind of harm."""

    name: str
    judgement: Judgement
    reason: str
    category: Category | None = None


@dataclass(frozen=True)
class _DenyEntry:
    category: Category
    reason: str


@dataclass(frozen=True)
class _Lists:
    allowed: frozenset[str]
    rebuild_namespaces: tuple[str, ...]
    deny_exact: dict[str, _DenyEntry]
    deny_modules: dict[str, _DenyEntry]
    deny_globs: tuple[tuple[str, _DenyEntry], ...]


def shipped_text(name: str) -> str:
    """A data file shipped in `modelshield.policy`, read through the package's loader (pkgutil, not
    importlib.resources: that one imports tempfile and zipfile, a tenth of a small scan's start-up)."""
    data = pkgutil.get_data("modelshield.policy", name)
    if data is None:
        raise FileNotFoundError(f"modelshield.policy/{name} cannot be read through its package's loader")
    return data.decode("utf-8")


def _read_toml(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = tomllib.loads(shipped_text(name))
    return parsed


_SIMPLE_ENTRY = re.compile(r'^"([^"\\]+)"\s*=\s*"(?:[^"\\]|\\.)*"\s*$')


def read_allowlist(text: str) -> dict[str, dict[str, str]]:
    """The allowlist's sections and keys. The shipped file holds only `[section]` headers and
    `"name" = "why"` lines, which this reads far faster than a full TOML parse (the file has
    thousands of lines and every scan loads it); anything else falls back to tomllib. A test
    checks both readings agree."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[") and stripped.endswith("]") and '"' not in stripped:
            current = sections.setdefault(stripped[1:-1].strip(), {})
            continue
        match = _SIMPLE_ENTRY.match(stripped)
        if match is None or current is None:
            return {k: dict(v) for k, v in tomllib.loads(text).items()}
        current[match.group(1)] = ""
    return sections


@lru_cache(maxsize=1)
def _shipped_lists() -> _Lists:
    allow = read_allowlist(shipped_text("allowlist.toml"))
    deny = _read_toml("denylist.toml")
    deny_exact: dict[str, _DenyEntry] = {}
    deny_modules: dict[str, _DenyEntry] = {}
    deny_globs: list[tuple[str, _DenyEntry]] = []
    for group in deny.get("deny", []):
        entry = _DenyEntry(Category(group["category"]), group["reason"])
        for name in group["names"]:
            if name.endswith(".*") and "*" not in name[:-2]:
                deny_modules.setdefault(name[:-2], entry)
            elif "*" in name:
                deny_globs.append((name, entry))
            else:
                deny_exact.setdefault(name, entry)
    return _Lists(
        allowed=frozenset(allow.get("callables", {})),
        rebuild_namespaces=tuple(sorted(allow.get("rebuild_namespaces", {}), key=len, reverse=True)),
        deny_exact=deny_exact,
        deny_modules=deny_modules,
        deny_globs=tuple(deny_globs),
    )


def _normalise(name: str) -> str:
    module, _, attr = name.rpartition(".")
    if module:
        module, attr = compat_name(module, attr)
    head, _, rest = module.partition(".")
    if head in MODULE_ALIASES:
        module = MODULE_ALIASES[head] + ("." + rest if rest else "")
    return f"{module}.{attr}" if module else attr


def _matches_pattern(name: str, patterns: frozenset[str]) -> bool:
    if name in patterns:
        return True
    parts = name.split(".")
    return any(".".join(parts[:i]) + ".*" in patterns for i in range(1, len(parts) + 1))


class CallableJudge:
    """Judges qualified names against the shipped lists and the user's policy."""

    def __init__(self, policy: Policy) -> None:
        self._lists = _shipped_lists()
        self._policy = policy
        self._cache: dict[tuple[str, bool], CallableVerdict] = {}

    def judge(self, name: str, *, rebuild: bool = False) -> CallableVerdict:
        """Verdict for calling (or, with rebuild=True, plainly re-creating an instance of) `name`."""
        key = (name, rebuild)
        if key not in self._cache:
            self._cache[key] = self._judge(name, rebuild)
        return self._cache[key]

    def _judge(self, name: str, rebuild: bool) -> CallableVerdict:
        normal = _normalise(name)
        candidates = (name, normal) if normal != name else (name,)
        if any(_matches_pattern(c, self._policy.denied_callables) for c in candidates):
            return CallableVerdict(name, Judgement.DANGEROUS, "denied by policy", Category.CODE_EXECUTION)
        escape = self._escape(normal)
        if escape is not None:
            return escape
        if any(c in self._lists.allowed for c in candidates) or any(
            _matches_pattern(c, self._policy.allowed_callables) for c in candidates
        ):
            return CallableVerdict(name, Judgement.SAFE, "on the allowlist")
        denied = self._deny_lookup(normal)
        if denied is not None:
            return CallableVerdict(name, denied.judgement, denied.reason, denied.category)
        if rebuild and any(normal.startswith(ns + ".") for ns in self._lists.rebuild_namespaces):
            return CallableVerdict(name, Judgement.SAFE, "class of a trusted library, rebuilt from state")
        return CallableVerdict(name, Judgement.UNKNOWN, "on neither the allowlist nor the denylist")

    def _escape(self, name: str) -> CallableVerdict | None:
        parts = name.split(".")
        for part in parts[1:]:
            if part in ESCAPE_ATTRIBUTES:
                return CallableVerdict(
                    name,
                    Judgement.DANGEROUS,
                    f"traverses {part}, which reaches interpreter internals",
                    Category.CODE_EXECUTION,
                )
        return None

    def _deny_lookup(self, name: str) -> CallableVerdict | None:
        direct = self._deny_direct(name)
        if direct is not None:
            return direct
        # A dotted traversal (protocol 4 names, getattr chains) is judged by what it reaches.
        parts = name.split(".")
        for start in range(1, len(parts) - 1):
            reached = self._deny_direct(".".join(parts[start:]))
            if reached is not None:
                return CallableVerdict(
                    name,
                    Judgement.DANGEROUS,
                    f"reaches {'.'.join(parts[start:])}: {reached.reason}",
                    reached.category,
                )
        return None

    def _deny_direct(self, name: str) -> CallableVerdict | None:
        lists = self._lists
        entry = lists.deny_exact.get(name)
        if entry is None:
            # A denied name covers what lies beneath it (a class's methods, a module's members).
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                prefix = ".".join(parts[:end])
                entry = lists.deny_modules.get(prefix) or (lists.deny_exact.get(prefix) if end > 1 else None)
                if entry is not None:
                    break
        if entry is None:
            for pattern, glob_entry in lists.deny_globs:
                if fnmatch.fnmatchcase(name, pattern):
                    entry = glob_entry
                    break
        if entry is None:
            return None
        return CallableVerdict(name, Judgement.DANGEROUS, entry.reason, entry.category)
