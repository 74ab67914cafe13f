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
from modelshield.engine.result import FileResult, FormatNode, ScanResult
from modelshield.errors import UnsafeModelError
from modelshield.policy.loader import load_policy
from modelshield.policy.model import Policy

if TYPE_CHECKING:
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
    "Location",
    "Policy",
    "ScanIssue",
    "ScanResult",
    "Severity",
    "Suppression",
    "UnsafeModelError",
    "Verdict",
    "__version__",
    "load_policy",
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


def __getattr__(name: str) -> Any:
    # Scan-before-load helpers are imported on first use: `import modelshield` stays quick for the CLI.
    if name in _SAFE_LOAD_NAMES:
        from modelshield import safe_load

        return getattr(safe_load, name)
    raise AttributeError(f"module 'modelshield' has no attribute {name!r}")


def scan(
    path_or_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    policy: Policy | None = None,
    *,
    compute_hash: bool = True,
    deep: bool = False,
) -> ScanResult:
    """Scan files or directories (walked recursively, identified by content) and return the result.

    `policy` (e.g. `load_policy("policy.toml")`) is applied to the finished result: disabled rules
    are left out, re-graded findings carry their new severity, suppressed findings are marked.
    `deep=True` also reads float tensors for payloads hidden in their low bits (slow on large models)."""
    from modelshield.engine.scanner import ScanOptions, scan_paths

    if isinstance(path_or_paths, (str, os.PathLike)):
        paths: list[str | os.PathLike[str]] = [path_or_paths]
    else:
        paths = list(path_or_paths)
    return scan_paths(paths, policy=policy, options=ScanOptions(compute_hash=compute_hash, deep=deep))
