"""The key under which a scan's results may be stored and reused: everything besides the content that
shapes a file's result. Another scanner build (even an edited source file of the same version), another
Python, an optional parsing library added, removed or upgraded, another policy, other limits or options:
another key, so no stored result outlives what produced it."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from modelshield.engine.limits import Limits
from modelshield.policy.model import Policy

OPTIONAL_PARSERS = ("h5py", "jinja2", "numpy", "py7zr", "yaml", "zstandard")
"""Libraries the handlers use when installed: with or without them, results differ."""


def scan_settings_key(policy: Policy, limits: Limits, deep: bool, handlers_module: str) -> str:
    """SHA-256 of the scanner build, the policy, the limits and the options that change findings."""
    document = {
        "scanner": scanner_fingerprint(),
        "policy": policy.fingerprint(),
        "limits": dataclasses.asdict(limits),
        "deep": deep,
        "handlers": handlers_module,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1)
def scanner_fingerprint() -> str:
    """SHA-256 of this scanner's version, its installed files (path, size, mtime), the Python running it
    and the optional parsing libraries it would use (where each is installed, and when)."""
    from modelshield import __version__

    package = Path(__file__).resolve().parent.parent
    parts: list[object] = [__version__, sys.version, sys.implementation.cache_tag]
    parts.extend(_installed_files(package))
    parts.extend([name, *_library_stamp(name)] for name in OPTIONAL_PARSERS)
    canonical = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _installed_files(package: Path) -> list[list[object]]:
    out: list[list[object]] = []
    pending = [(str(package), "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name != "__pycache__":
                    pending.append((entry.path, f"{prefix}{entry.name}/"))
                continue
            try:
                status = entry.stat()
            except OSError:
                continue
            out.append([prefix + entry.name, status.st_size, status.st_mtime_ns])
    return out


def _library_stamp(name: str) -> list[object]:
    """Where the library's top module is and its file's size and mtime, without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return [None]
    if spec is None or not spec.origin:
        return [None]
    try:
        status = os.stat(spec.origin)
    except OSError:
        return [spec.origin]
    return [spec.origin, status.st_size, status.st_mtime_ns]
