"""The scan entry point: expand paths to files, scan each one by content, hash it, collect results."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from modelshield.engine.blob import ByteReader, open_file_blob
from modelshield.engine.context import ScanContext
from modelshield.engine.dispatch import Dispatcher
from modelshield.engine.findings import Location, ScanIssue
from modelshield.engine.limits import DEFAULT_LIMITS, Limits
from modelshield.engine.result import FileResult, FormatNode, ScanResult
from modelshield.errors import UsageError
from modelshield.policy.apply import apply_policy
from modelshield.policy.model import Policy

HASH_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class ScanOptions:
    """How to scan, independent of what the scan judges (that is the policy)."""

    compute_hash: bool = True
    limits: Limits = DEFAULT_LIMITS
    deep: bool = False
    """Read tensor data for payloads hidden in weights (costly: every float tensor is read)."""


@dataclass(frozen=True)
class FileTarget:
    """A file to scan: its real path, the name shown in reports, and why it may not be scannable."""

    path: Path
    display: str
    refusal: str | None = None


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[FileTarget]:
    """Every regular file under the given paths, in sorted order, never leaving a given tree by a link."""
    for raw in paths:
        root = Path(raw)
        if not os.path.lexists(root):
            raise UsageError(f"no such file or directory: {raw}")
        if root.is_dir():
            yield from _walk(root)
        elif root.is_file():
            yield FileTarget(root, str(raw))
        else:
            yield FileTarget(root, str(raw), "not a regular file")


def _walk(root: Path) -> Iterator[FileTarget]:
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        here = Path(dirpath)
        for name in list(dirnames):
            if (here / name).is_symlink():
                target = (here / name).resolve()
                if not target.is_relative_to(real_root):
                    yield FileTarget(
                        here / name, str(here / name), f"directory link leaves the tree: {target}"
                    )
                dirnames.remove(name)  # links inside the tree are reached by their real path anyway
        for name in sorted(filenames):
            path = here / name
            display = str(path)
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(real_root):
                    yield FileTarget(path, display, f"link points outside the scanned tree: {target}")
                    continue
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                yield FileTarget(path, display, f"cannot stat: {exc.strerror}")
                continue
            if not stat.S_ISREG(mode):
                yield FileTarget(path, display, "not a regular file")
                continue
            yield FileTarget(path, display)


class _BackgroundHash:
    """SHA-256 of a blob computed in a thread while parsing goes on. It reads through the blob's own
    positional reader (hashlib and pread release the GIL), so no page of the file is mapped into the
    process just to be hashed."""

    def __init__(self, reader: ByteReader) -> None:
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(reader,), daemon=True)
        self._thread.start()

    def _run(self, reader: ByteReader) -> None:
        try:
            h = hashlib.sha256()
            with reader:
                while chunk := reader.read(HASH_CHUNK):
                    h.update(chunk)
            self._digest = h.hexdigest()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = exc

    def result(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._digest is not None
        return self._digest


def scan_file(target: FileTarget, dispatcher: Dispatcher, policy: Policy, options: ScanOptions) -> FileResult:
    """Scan one file; every failure becomes an issue of this file's result."""
    started = time.monotonic()
    if target.refusal is not None:
        issue = ScanIssue("not-scanned", target.refusal, Location((target.display,)))
        return FileResult(target.display, 0, None, FormatNode(target.display, "not-scanned", 0), (), (issue,))
    try:
        size = target.path.stat().st_size
        with open_file_blob(target.path, target.display) as blob:
            hasher = _BackgroundHash(blob.stream()) if options.compute_hash else None
            ctx = ScanContext(limits=options.limits, policy=policy, deep=options.deep)
            scanned = dispatcher.scan(blob, ctx)
            digest = hasher.result() if hasher else None
    except OSError as exc:
        issue = ScanIssue("io", f"cannot read: {exc.strerror or exc}", Location((target.display,)))
        return FileResult(target.display, 0, None, FormatNode(target.display, "unreadable", 0), (), (issue,))
    return FileResult(
        path=target.display,
        size=size,
        sha256=digest,
        tree=scanned.tree,
        findings=tuple(scanned.findings),
        issues=tuple(scanned.issues),
        duration_seconds=round(time.monotonic() - started, 6),
    )


def scan_paths(
    paths: Iterable[str | os.PathLike[str]],
    policy: Policy | None = None,
    options: ScanOptions | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    targets: list[FileTarget] | None = None,
    today: date | None = None,
) -> ScanResult:
    """Scan files and directories; `on_file` is called after each file (for progress display).

    The policy's callable lists act during the scan; its rule settings and suppressions are then
    applied to the finished result, with suppression expiry judged against `today` (UTC by default).
    `on_file` sees each file as scanned, before that pass."""
    from modelshield import __version__
    from modelshield.formats import HANDLERS

    policy = policy or Policy()
    options = options or ScanOptions()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.monotonic()
    dispatcher = Dispatcher(HANDLERS)
    results = []
    for target in targets if targets is not None else expand_paths(paths):
        result = scan_file(target, dispatcher, policy, options)
        results.append(result)
        if on_file is not None:
            on_file(result)
    finished = ScanResult(
        files=tuple(results),
        tool_version=__version__,
        started_at=started_at,
        duration_seconds=round(time.monotonic() - started, 6),
    )
    return apply_policy(finished, policy, today or datetime.now(timezone.utc).date())
