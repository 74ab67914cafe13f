"""modelshield: find what is dangerous inside AI/ML model files before anyone loads them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from modelshield.engine.findings import (
    Category,
    Confidence,
    Finding,
    Location,
    ScanIssue,
    Severity,
    Suppression,
    Verdict,
)
from modelshield.engine.limits import DEFAULT_LIMITS, Limits
from modelshield.engine.result import FileResult, FormatNode, ScanResult
from modelshield.errors import UnsafeModelError
from modelshield.policy.model import Policy

if TYPE_CHECKING:
    from modelshield.policy.loader import load_policy, load_policy_and_limits
    from modelshield.safe_download import download
    from modelshield.safe_load import (
        safe_joblib_load,
        safe_np_load,
        safe_open,
        safe_pickle_load,
        safe_torch_load,
    )

__version__ = "0.1.0"

__all__ = [
    "Category",
    "Confidence",
    "FileResult",
    "Finding",
    "FormatNode",
    "Limits",
    "Location",
    "Policy",
    "ScanIssue",
    "ScanResult",
    "Severity",
    "Suppression",
    "UnsafeModelError",
    "Verdict",
    "__version__",
    "download",
    "load_policy",
    "load_policy_and_limits",
    "safe_joblib_load",
    "safe_np_load",
    "safe_open",
    "safe_pickle_load",
    "safe_torch_load",
    "scan",
]

_SAFE_LOAD_NAMES = frozenset(
    {"safe_open", "safe_torch_load", "safe_joblib_load", "safe_pickle_load", "safe_np_load"}
)

_POLICY_LOADER_NAMES = frozenset({"load_policy", "load_policy_and_limits"})


def __getattr__(name: str) -> Any:
    # Scan-before-load helpers are imported on first use: `import modelshield` stays quick for the CLI.
    if name in _SAFE_LOAD_NAMES:
        from modelshield import safe_load

        return getattr(safe_load, name)
    if name == "download":  # scan on download; imported on first use like the helpers above
        from modelshield.safe_download import download

        return download
    if name in _POLICY_LOADER_NAMES:  # the TOML reader, needed only when a policy file is read
        from modelshield.policy import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'modelshield' has no attribute {name!r}")


def scan(
    path_or_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    policy: Policy | None = None,
    *,
    compute_hash: bool = True,
    deep: bool = False,
    limits: Limits | None = None,
    jobs: int = 1,
    isolate: bool = False,
    hash_cache: bool = True,
) -> ScanResult:
    """Scan files or directories (walked recursively, identified by content) and return the result.

    `policy` (e.g. `load_policy("policy.toml")`) is applied to the finished result: disabled rules
    are left out, re-graded findings carry their new severity, suppressed findings are marked.
    `deep=True` also reads float tensors for payloads hidden in their low bits (slow on large models).
    `limits` bounds what each file's scan may read, expand, nest and spend (default: `Limits()`; a
    policy file's `[limits]` comes from `load_policy_and_limits`).
    `jobs` files are scanned at once in worker processes (1: in this process); `isolate=True` scans
    every file in a child process held to the limits' child memory, CPU and wall-clock bounds, where
    a crash or a limit hit makes that file an error result. Files come back in the same order.
    `hash_cache=False` neither reads nor writes the caches: the hash cache (`engine.hash_cache`) and the
    result cache that relies on it (`engine.result_cache`: content already scanned under the same
    settings is reported from it, `FileResult.from_cache`)."""
    from modelshield.engine.scanner import ScanOptions, scan_paths

    if isinstance(path_or_paths, (str, os.PathLike)):
        paths: list[str | os.PathLike[str]] = [path_or_paths]
    else:
        paths = list(path_or_paths)
    options = ScanOptions(
        compute_hash=compute_hash,
        deep=deep,
        limits=limits or DEFAULT_LIMITS,
        jobs=jobs,
        isolate=isolate,
        hash_cache=hash_cache,
    )
    return scan_paths(paths, policy=policy, options=options)
