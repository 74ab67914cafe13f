"""Scan before load: open or load a model file only after a scan of the very same bytes passed the policy."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from modelshield.engine.result import ScanResult
from modelshield.errors import UnsafeModelError, UsageError
from modelshield.policy.model import Policy

COPY_CHUNK = 4 * 1024 * 1024
MAX_LISTED = 10

# Time of check against time of use: scanning a path and then letting a loader open the same path again
# would load whatever the path holds by then (a swapped file, a rewritten one). So the source is opened
# once, its bytes are copied from that one descriptor into a private file (in a fresh 0700 directory that
# only this process knows), the private copy is scanned, and the loader reads that same private copy.
# A copy costs disk space and one sequential read; it needs no memory bound (multi-GB checkpoints are
# fine) and, unlike a memory map of the source, cannot change under the scan when the source is written
# in place.


@contextmanager
def safe_open(path: str | os.PathLike[str], policy: Policy | None = None) -> Iterator[IO[bytes]]:
    """Scan a file, then yield it opened for binary reading, only if the scan passed the policy.

    Passing means no counted finding at or above `policy.fail_on` and every part scanned. Otherwise
    `UnsafeModelError` is raised, carrying the scan result. The yielded file is a private copy of the
    bytes that were scanned; it is closed and removed when the block ends.
    """
    policy = policy or Policy()
    with _private_copy(Path(path)) as copy:
        result = _scan_copy(copy, str(path), policy)
        check_policy(result, policy)
        with open(copy, "rb") as handle:
            yield handle


def check_policy(result: ScanResult, policy: Policy) -> None:
    """Raise `UnsafeModelError` unless nothing counted is at or above the threshold and all was scanned."""
    blocking = [f for f in result.findings if f.counts and f.severity >= policy.fail_on]
    if not blocking and result.fully_scanned:
        return
    lines = [f"{f.severity.value} {f.rule_id} at {f.location.render()}: {f.message}" for f in blocking]
    lines += [
        f"not scanned ({issue.kind}) at {issue.location.render()}: {issue.message}"
        for file in result.files
        for issue in file.issues
    ]
    lines += [f"not scanned ({issue.kind}): {issue.message}" for issue in result.input_issues]
    shown = lines[:MAX_LISTED]
    if len(lines) > MAX_LISTED:
        shown.append(f"… and {len(lines) - MAX_LISTED} more")
    reason = (
        f"findings at or above {policy.fail_on.value}" if blocking else "the file could not be fully scanned"
    )
    names = ", ".join(file.path for file in result.files) or "the input"
    raise UnsafeModelError(
        f"refused to load {names} ({result.verdict.value}): {reason}\n  " + "\n  ".join(shown), result
    )


def safe_pickle_load(path: str | os.PathLike[str], policy: Policy | None = None, **kwargs: Any) -> Any:
    """`pickle.load` of a file, only after its scan passed the policy."""
    import pickle

    with safe_open(path, policy) as handle:
        return pickle.load(handle, **kwargs)  # noqa: S301  # safe: only after the scan passed the policy


def safe_torch_load(path: str | os.PathLike[str], policy: Policy | None = None, **kwargs: Any) -> Any:
    """`torch.load` of a file (keyword arguments passed on), only after its scan passed the policy."""
    import torch

    with safe_open(path, policy) as handle:
        return torch.load(handle, **kwargs)  # safe: only after the scan passed the policy


def safe_joblib_load(path: str | os.PathLike[str], policy: Policy | None = None, **kwargs: Any) -> Any:
    """`joblib.load` of a single-file dump, only after its scan passed the policy."""
    import joblib  # type: ignore[import-untyped]

    with safe_open(path, policy) as handle:
        return joblib.load(handle, **kwargs)  # safe: only after the scan passed the policy


def safe_np_load(
    path: str | os.PathLike[str], policy: Policy | None = None, *, allow_pickle: bool = False, **kwargs: Any
) -> Any:
    """`numpy.load` of an .npy/.npz file, only after its scan passed the policy.

    An .npz archive is returned as a dict of arrays read in full: numpy's lazy `NpzFile` would read
    from the private copy after it is gone.
    """
    import numpy as np

    with safe_open(path, policy) as handle:
        loaded = np.load(handle, allow_pickle=allow_pickle, **kwargs)  # safe: only after the scan passed
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return {name: loaded[name] for name in loaded.files}
        return loaded


@contextmanager
def _private_copy(source: Path) -> Iterator[Path]:
    """Copy the file from one descriptor into a file only this process can reach; remove it afterwards."""
    try:
        source_handle = open(source, "rb")  # closed below, before the copy is used
    except FileNotFoundError:
        raise UsageError(f"no such file: {source}") from None
    except IsADirectoryError:
        raise UsageError(f"not a file (safe_open loads single files): {source}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from exc
    directory = Path(tempfile.mkdtemp(prefix="modelshield-load-"))
    try:
        copy = directory / source.name
        with source_handle:
            if not stat.S_ISREG(os.fstat(source_handle.fileno()).st_mode):
                raise UsageError(f"not a regular file: {source}")
            with open(copy, "xb") as target:
                shutil.copyfileobj(source_handle, target, COPY_CHUNK)
        os.chmod(copy, 0o400)
        yield copy
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _scan_copy(copy: Path, display: str, policy: Policy) -> ScanResult:
    from modelshield.engine.scanner import FileTarget, scan_paths

    return scan_paths([copy], policy=policy, targets=[FileTarget(copy, display)])
