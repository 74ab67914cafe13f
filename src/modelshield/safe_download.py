"""Scan on download: fetch one pinned model version, scan it, and hand back its local path only if it passed.

(Named after `safe_load`; a module called `download` would shadow the `modelshield.download` function.)

The version is downloaded into a private staging directory next to where it will live (so the final move is
a rename on one file system), scanned there, and moved into place only when nothing counted is at or above
the threshold and every file was fully scanned. A refused version leaves nothing behind: the staging
directory is removed, and a cached copy of the same version (scanned earlier, under another policy) goes
too.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from modelshield.connectors import (
    ConnectorSettings,
    DownloadBudget,
    VersionRef,
    connector_for,
    is_remote_address,
)
from modelshield.connectors.staging import cached_version_dir, download_cache_dir, private_directory
from modelshield.engine.findings import Severity
from modelshield.engine.result import ScanResult
from modelshield.engine.scanner import scan_paths
from modelshield.errors import UnsafeModelError, UsageError
from modelshield.policy.model import Policy
from modelshield.remote import pinned_targets
from modelshield.safe_load import check_policy

STAGING_DIR_NAME = ".staging"


@dataclass(frozen=True)
class ScannedDownload:
    """A version that passed: where it now lives, which exact version it is, and the scan it passed."""

    path: Path
    version: VersionRef
    result: ScanResult
    reused: bool = False
    """True when the version was already in the cache and was scanned again there, not downloaded."""


def download(
    address: str,
    *,
    dest: str | os.PathLike[str] | None = None,
    policy: Policy | None = None,
    fail_on: Severity | str | None = None,
    budget: DownloadBudget | None = None,
    settings: ConnectorSettings | None = None,
) -> Path:
    """Download the model version at `address` (`hf://org/name@rev`, `models:/name/3`, `s3://bucket/key`),
    scan it, and return the local directory holding exactly the scanned version.

    The version goes to `dest` (absent or an empty directory) or to the download cache
    (`<cache>/hf/<org>/<name>/<commit sha>`). Raises `UnsafeModelError`, carrying the scan result, when a
    finding counts at or above the threshold (`fail_on`, else the policy's) or a file could not be fully
    scanned; `SourceError` when the address cannot be resolved or downloaded within the budget."""
    policy = policy or Policy()
    if fail_on is not None:
        policy = replace(policy, fail_on=Severity(fail_on.lower() if isinstance(fail_on, str) else fail_on))
    return download_scanned(address, policy, dest=dest, budget=budget, settings=settings).path


def download_scanned(
    address: str,
    policy: Policy,
    *,
    dest: str | os.PathLike[str] | None = None,
    budget: DownloadBudget | None = None,
    settings: ConnectorSettings | None = None,
) -> ScannedDownload:
    """`download` under a policy whose threshold is already set, also returning the pinned version and
    the scan result it passed."""
    if not is_remote_address(address):
        raise UsageError(f"not a remote model address (hf://, models:/, s3://): {address}")
    connector = connector_for(address, settings)
    version = connector.resolve(address)
    cache = download_cache_dir()
    target = Path(dest) if dest is not None else cached_version_dir(cache, version)
    if dest is None and target.is_symlink():
        raise UsageError(f"the cache entry for {version.address} is a symbolic link; remove it: {target}")
    if dest is None and target.is_dir():
        return _rescan_cached(version, target, policy)
    if dest is not None:
        _check_destination(target)
    staging_parent = target.parent if dest is not None else cache / STAGING_DIR_NAME
    with private_directory(parent=staging_parent, prefix=".modelshield-staging-") as staging:
        root = connector.download(version, staging / "files", budget or DownloadBudget())
        result = _scan(version, root, policy)
        try:
            check_policy(result, policy)
        except UnsafeModelError:
            if dest is None:
                shutil.rmtree(target, ignore_errors=True)
            raise
        _move_into_place(root, target)
    return ScannedDownload(target, version, result)


def _scan(version: VersionRef, root: Path, policy: Policy) -> ScanResult:
    return scan_paths([], policy=policy, targets=list(pinned_targets(version, root)))


def _rescan_cached(version: VersionRef, cached: Path, policy: Policy) -> ScannedDownload:
    """A version already in the cache passed once; it is scanned again under this policy, and removed
    if it no longer passes."""
    result = _scan(version, cached, policy)
    try:
        check_policy(result, policy)
    except UnsafeModelError:
        shutil.rmtree(cached, ignore_errors=True)
        raise
    return ScannedDownload(cached, version, result, reused=True)


def _check_destination(target: Path) -> None:
    if target.is_symlink():
        raise UsageError(f"destination is a symbolic link: {target}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"destination exists and is not an empty directory: {target}")


def _move_into_place(root: Path, target: Path) -> None:
    """Rename the scanned tree to `target` (same file system, so readers see all of it or none of it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        try:
            target.rmdir()  # an empty destination, or a cache entry another run left empty
        except OSError:
            shutil.rmtree(target)  # a cache entry another run installed meanwhile; this scan replaces it
    os.replace(root, target)
