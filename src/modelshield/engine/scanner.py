"""The scan entry point: expand paths to files, scan each one by content, hash it, collect results."""

from __future__ import annotations

import hashlib
import importlib
import os
import stat
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from modelshield.engine.blob import ByteReader, FileBlob, open_file_blob
from modelshield.engine.context import ScanContext, SideFileSeen
from modelshield.engine.findings import Location, ScanIssue
from modelshield.engine.hash_cache import FileStamp, HashCache, StampedHash
from modelshield.engine.limits import DEFAULT_LIMITS, Limits
from modelshield.engine.result import FileResult, FormatNode, ScanResult
from modelshield.engine.result_cache import ResultCache, StoredScan
from modelshield.errors import UsageError
from modelshield.policy.apply import apply_policy
from modelshield.policy.model import Policy

if TYPE_CHECKING:
    # Imported where used: a scan run by workers never loads the format handlers in this process.
    from modelshield.engine.dispatch import Dispatcher
    from modelshield.engine.workers import WorkerPool
    from modelshield.formats.base import FormatHandler

HASH_CHUNK = 4 * 1024 * 1024
INLINE_HASH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ScanOptions:
    """How to scan, independent of what the scan judges (that is the policy)."""

    compute_hash: bool = True
    limits: Limits = DEFAULT_LIMITS
    deep: bool = False
    """Read tensor data for payloads hidden in weights (costly: every float tensor is read)."""
    jobs: int = 1
    """Files scanned at once, each in a worker process; 1 scans in this process."""
    jobs_are_a_ceiling: bool = False
    """`jobs` was not chosen by the user: worker processes start only when the work pays for their
    start-up (many files, or many bytes to hash); otherwise the files are scanned in this process.
    When they do start, this process is one of the `jobs`: it scans small files alongside `jobs - 1`
    workers (a chosen `--jobs N` scans every file in one of N workers, to contain a crash to its file)."""
    isolate: bool = False
    """Scan every file in a child process held to the limits' child memory, CPU and wall-clock bounds."""
    hash_cache: bool = True
    """Keep files' hashes by stamp (device, inode, size, mtime, ctime): an unchanged file is hashed once."""
    result_cache: bool = True
    """Keep finished results by content hash and scan settings: content already scanned is not parsed
    again (used only with hashing and the hash cache, which say what the content is without reading it)."""
    cache_dir: Path | None = None
    """Where the caches live (default: `sqlite_cache.default_cache_dir()`)."""
    handlers_module: str = "modelshield.formats"
    """The module whose HANDLERS scan each file, in this process and in workers (tests bring their own)."""

    def __post_init__(self) -> None:
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise UsageError(f"jobs must be a whole number of at least 1, got {self.jobs!r}")


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
    process just to be hashed. A small file is hashed at once: a thread would cost more than it saves."""

    def __init__(self, reader: ByteReader, size: int) -> None:
        self._digest: str | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if size <= INLINE_HASH_BYTES:
            self._run(reader)
        else:
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
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._digest is not None
        return self._digest


@dataclass(frozen=True)
class ScannedFile:
    """A file's result and what the caches need from its scan: the file's stamp when its content did
    not change while it was scanned, the wall-clock time the scan began, the side files handlers looked
    for, and (when this scan hashed the file) that hash."""

    result: FileResult
    fresh_hash: StampedHash | None = None
    hashing_began_ns: int = 0
    scanned_stamp: FileStamp | None = None
    side_files: tuple[SideFileSeen, ...] = ()

    def settled(self) -> bool:
        """Whether the content scanned is the content hashed, and it and every side file changed long
        enough before the scan to key a cache by their stamps (see FileStamp.settled_before)."""
        began = self.hashing_began_ns
        stamp = self.scanned_stamp
        return (
            stamp is not None
            and stamp.settled_before(began)
            and all(seen.stamp is None or seen.stamp.settled_before(began) for seen in self.side_files)
        )


def scan_file(target: FileTarget, dispatcher: Dispatcher, policy: Policy, options: ScanOptions) -> FileResult:
    """Scan one file; every failure becomes an issue of this file's result."""
    return scan_target(target, dispatcher, policy, options).result


def scan_target(
    target: FileTarget,
    dispatcher: Dispatcher,
    policy: Policy,
    options: ScanOptions,
    known: StampedHash | None = None,
) -> ScannedFile:
    """Scan one file; `known` is its hash from the cache or a duplicate check, used only when the file
    opened is still in exactly the stamped state (else it is hashed again)."""
    started = time.monotonic()
    if target.refusal is not None:
        return ScannedFile(refused(target))
    hashing_began = time.time_ns()
    try:
        with open_file_blob(target.path, target.display) as blob:
            opened = _stamp_of(blob)
            reuse = known if options.compute_hash and known is not None and known.stamp == opened else None
            hashing = options.compute_hash and reuse is None
            hasher = _BackgroundHash(blob.stream(), blob.size) if hashing else None
            ctx = ScanContext(
                limits=options.limits, policy=policy, deep=options.deep, folder=target.path.parent
            )
            scanned = dispatcher.scan(blob, ctx)
            digest = reuse.sha256 if reuse is not None else hasher.result() if hasher else None
            unchanged = opened if opened is not None and _stamp_of(blob) == opened else None
    except OSError as exc:
        issue = ScanIssue("io", f"cannot read: {exc.strerror or exc}", Location((target.display,)))
        return ScannedFile(not_scanned(target.display, "unreadable", issue))
    result = FileResult(
        path=target.display,
        size=blob.size,
        sha256=digest,
        tree=scanned.tree,
        findings=tuple(scanned.findings),
        issues=tuple(scanned.issues),
        duration_seconds=round(time.monotonic() - started, 6),
    )
    fresh = StampedHash(unchanged, digest) if hasher and unchanged and digest is not None else None
    return ScannedFile(result, fresh, hashing_began, unchanged, tuple(ctx.side_files_seen))


def refused(target: FileTarget) -> FileResult:
    """The result of a file refused before scanning (a link out of the tree, not a regular file)."""
    issue = ScanIssue("not-scanned", target.refusal or "not scanned", Location((target.display,)))
    return not_scanned(target.display, "not-scanned", issue)


def not_scanned(display: str, node_format: str, issue: ScanIssue, size: int = 0) -> FileResult:
    """The result of a file that could not be scanned at all."""
    return FileResult(display, size, None, FormatNode(display, node_format, 0), (), (issue,))


def _stamp_of(blob: FileBlob) -> FileStamp | None:
    fd = blob.whole_file_descriptor()
    return FileStamp.of(os.fstat(fd)) if fd is not None else None


def new_dispatcher(handlers_module: str) -> Dispatcher:
    """A dispatcher over the HANDLERS of `handlers_module`."""
    from modelshield.engine.dispatch import Dispatcher

    return Dispatcher(load_handlers(handlers_module))


def load_handlers(module_name: str) -> tuple[FormatHandler, ...]:
    """The HANDLERS tuple of the named module (`modelshield.formats` unless a test brings its own)."""
    return tuple(importlib.import_module(module_name).HANDLERS)


def scan_paths(
    paths: Iterable[str | os.PathLike[str]],
    policy: Policy | None = None,
    options: ScanOptions | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    targets: list[FileTarget] | None = None,
    today: date | None = None,
) -> ScanResult:
    """Scan files and directories; `on_file` is called after each file (for progress display).

    Files are reported in the order of `expand_paths` whatever order they finish in; `on_file` sees
    them as they finish. The policy's callable lists act during the scan; its rule settings and
    suppressions are then applied to the finished result, with suppression expiry judged against
    `today` (UTC by default). `on_file` sees each file as scanned, before that pass."""
    from modelshield import __version__

    policy = policy or Policy()
    options = options or ScanOptions()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    started = time.monotonic()
    listed = list(targets if targets is not None else expand_paths(paths))
    with ExitStack() as stack:
        cache = HashCache(options.cache_dir) if options.compute_hash and options.hash_cache else None
        if cache is not None:
            stack.enter_context(cache)
        stored = _result_cache(policy, options) if cache is not None and options.result_cache else None
        if stored is not None:
            stack.enter_context(stored)

        def start_pool(to_scan: Sequence[FileTarget]) -> WorkerPool | None:
            """Worker processes for the files still to scan, when isolation or their number asks for them."""
            parallel = options.jobs > 1 and len(to_scan) > 1 and _workers_pay(to_scan, options, cache)
            if not to_scan or not (options.isolate or parallel):
                return None
            from modelshield.engine.workers import WorkerPool

            workers = min(options.jobs - _parent_helps(options), len(to_scan))
            return stack.enter_context(WorkerPool(workers, options, policy))

        # Without a result cache every file is scanned: workers start before the plan, so their start-up
        # overlaps its stamping and hashing. With one, they start only for the files it cannot answer.
        scannable = [target for target in listed if target.refusal is None]
        pool = start_pool(scannable) if stored is None else None
        plan = plan_scan(listed, options, cache)
        run = _ScanRun(listed, plan, policy, options, (cache, stored), on_file, pool)
        results = run.run(None if stored is None else start_pool)
    finished = ScanResult(
        files=tuple(results),
        tool_version=__version__,
        started_at=started_at,
        duration_seconds=round(time.monotonic() - started, 6),
    )
    return apply_policy(finished, policy, today or datetime.now(timezone.utc).date())


def _result_cache(policy: Policy, options: ScanOptions) -> ResultCache:
    from modelshield.engine.scan_settings import scan_settings_key

    settings = scan_settings_key(policy, options.limits, options.deep, options.handlers_module)
    return ResultCache(settings, options.cache_dir)


WORKERS_MIN_FILES = 64
WORKERS_MIN_HASHED_BYTES = 512 * 1024 * 1024
"""Below both, starting worker processes (a tenth of a second or more each) costs more than it saves."""


def _parent_helps(options: ScanOptions) -> bool:
    """Whether this process scans files alongside the workers (see ScanOptions.jobs_are_a_ceiling)."""
    return options.jobs_are_a_ceiling and not options.isolate


def _workers_pay(listed: Sequence[FileTarget], options: ScanOptions, cache: HashCache | None) -> bool:
    """Whether worker processes pay for their start-up: many files, or many bytes still to hash (a file
    whose hash the cache holds costs nothing to hash)."""
    if not options.jobs_are_a_ceiling:
        return True
    paths = [target.path for target in listed if target.refusal is None]
    if len(paths) >= WORKERS_MIN_FILES:
        return True
    if not options.compute_hash:
        return False
    total = 0
    for path in paths:
        stamp = FileStamp.at(path)
        if stamp is not None and (cache is None or cache.lookup(stamp) is None):
            total += stamp.size
    return total >= WORKERS_MIN_HASHED_BYTES


@dataclass(frozen=True)
class ScanPlan:
    """What is known before scanning: hashes (cached, or computed because sizes collide) and which
    files are byte-for-byte copies of an earlier one, scanned once for all."""

    known: Mapping[int, StampedHash]
    copy_of: Mapping[int, int]
    """Index of a duplicate → index of the first file with the same content."""


def plan_scan(targets: Sequence[FileTarget], options: ScanOptions, cache: HashCache | None) -> ScanPlan:
    """Stamp every file, look its hash up in the cache, hash the files whose size another file shares
    (only those can be identical) and pair every duplicate with the first file of its content."""
    if not options.compute_hash:
        return ScanPlan({}, {})
    stamps: dict[int, FileStamp] = {}
    for index, target in enumerate(targets):
        if target.refusal is None:
            with suppress(OSError):
                stamp = FileStamp.of(os.stat(target.path))
                if stamp is not None:
                    stamps[index] = stamp
    known: dict[int, StampedHash] = {}
    if cache is not None:
        for index, stamp in stamps.items():
            digest = cache.lookup(stamp)
            if digest is not None:
                known[index] = StampedHash(stamp, digest)
    by_size: dict[int, list[int]] = defaultdict(list)
    for index, stamp in stamps.items():
        by_size[stamp.size].append(index)
    shared = sorted(index for group in by_size.values() if len(group) > 1 for index in group)
    began = time.time_ns()
    to_hash = [index for index in shared if index not in known]
    for index, hashed in zip(
        to_hash, _hash_all([targets[i].path for i in to_hash], options.jobs), strict=True
    ):
        if hashed is not None:
            known[index] = hashed
            if cache is not None and hashed.stamp.settled_before(began):
                cache.store(hashed.stamp, hashed.sha256)
    first_with: dict[str, int] = {}
    copy_of: dict[int, int] = {}
    for index in shared:
        if index in known:
            first = first_with.setdefault(known[index].sha256, index)
            if first != index:
                copy_of[index] = first
    return ScanPlan(known, copy_of)


def _hash_all(paths: Sequence[Path], threads: int) -> Iterator[StampedHash | None]:
    if threads <= 1 or len(paths) <= 1:
        return map(hash_file, paths)
    from concurrent.futures import ThreadPoolExecutor

    # hashlib and reads release the GIL: threads hash several large files at once.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return iter(list(pool.map(hash_file, paths)))


def hash_file(path: Path) -> StampedHash | None:
    """The SHA-256 of the file at `path` with its stamp; None if it cannot be read or changed meanwhile."""
    try:
        with open(path, "rb") as fh:
            before = FileStamp.of(os.fstat(fh.fileno()))
            digest = hashlib.sha256()
            while chunk := fh.read(HASH_CHUNK):
                digest.update(chunk)
            after = FileStamp.of(os.fstat(fh.fileno()))
    except OSError:
        return None
    return StampedHash(before, digest.hexdigest()) if before is not None and before == after else None


def as_copy(result: FileResult, display: str) -> FileResult:
    """`result` of a file with the same content, reported for `display`: the path, the head of every
    location chain and that name where the findings quote it are rewritten."""
    original = result.path

    def renamed(location: Location) -> Location:
        if not location.chain or location.chain[0] != original:
            return location
        detail = location.detail.replace(original, display) if location.detail else location.detail
        return replace(location, chain=(display, *location.chain[1:]), detail=detail)

    def reworded(text: str) -> str:
        return text.replace(original, display)

    return replace(
        result,
        path=display,
        tree=replace(result.tree, name=display),
        findings=tuple(
            replace(
                f, location=renamed(f.location), message=reworded(f.message), evidence=reworded(f.evidence)
            )
            for f in result.findings
        ),
        issues=tuple(
            replace(i, location=renamed(i.location), message=reworded(i.message)) for i in result.issues
        ),
        duration_seconds=0.0,
    )


class _ScanRun:
    """One scan's files through the scanner, in this process or in workers, in listing order."""

    def __init__(
        self,
        targets: list[FileTarget],
        plan: ScanPlan,
        policy: Policy,
        options: ScanOptions,
        caches: tuple[HashCache | None, ResultCache | None],
        on_file: Callable[[FileResult], None] | None,
        pool: WorkerPool | None,
    ) -> None:
        self._targets = targets
        self._pool = pool
        self._plan = plan
        self._policy = policy
        self._options = options
        self._cache, self._stored = caches
        self._on_file = on_file
        self._results: list[FileResult | None] = [None] * len(targets)
        self._copies: dict[int, list[int]] = defaultdict(list)
        for copy, first in plan.copy_of.items():
            self._copies[first].append(copy)

    def run(
        self, start_pool: Callable[[Sequence[FileTarget]], WorkerPool | None] | None = None
    ) -> list[FileResult]:
        """Every file's result; `start_pool` starts workers (or not) for what the result cache leaves."""
        pending = [i for i in range(len(self._targets)) if i not in self._plan.copy_of]
        if self._stored is not None:
            pending = [i for i in pending if not self._reuse(i)]
        if start_pool is not None:
            self._pool = start_pool([self._targets[i] for i in pending if self._targets[i].refusal is None])
        while pending:
            pending = self._scan(pending)  # copies whose original changed under the scan come back
        return [result for result in self._results if result is not None]

    def _scan(self, indexes: list[int]) -> list[int]:
        leftovers: list[int] = []
        dispatcher: Dispatcher | None = None
        in_workers = []
        for index in indexes:
            target = self._targets[index]
            if target.refusal is not None:
                leftovers += self._finish(index, ScannedFile(refused(target)))
            elif self._pool is not None:
                in_workers.append(index)
            else:
                dispatcher = dispatcher or new_dispatcher(self._options.handlers_module)
                known = self._plan.known.get(index)
                leftovers += self._finish(
                    index, scan_target(target, dispatcher, self._policy, self._options, known)
                )
        if self._pool is not None and in_workers:
            tasks = [(self._targets[i], self._plan.known.get(i)) for i in in_workers]
            local = None
            if _parent_helps(self._options):
                helper = new_dispatcher(self._options.handlers_module)

                def local(position: int) -> ScannedFile:
                    target, known = tasks[position]
                    return scan_target(target, helper, self._policy, self._options, known)

            for position, scanned in self._pool.scan(tasks, local):
                leftovers += self._finish(in_workers[position], scanned)
        return leftovers

    def _reuse(self, index: int) -> bool:
        """Finish a file from the result cache when its content (by the hash cache) was scanned before
        under the same settings and the file is still in the state the hash is known for."""
        assert self._stored is not None
        started = time.monotonic()
        known = self._plan.known.get(index)
        if known is None or self._targets[index].refusal is not None:
            return False
        stored = self._stored.lookup(known.sha256)
        target = self._targets[index]
        if stored is None or not stored.reusable_for(target.path):
            return False
        if FileStamp.at(target.path) != known.stamp:
            return False
        result = stored.result
        if result.path != target.display:
            result = as_copy(result, target.display)
        result = replace(result, duration_seconds=round(time.monotonic() - started, 6), from_cache=True)
        # Copies of it share its hash: _finish reports them too and leaves nothing over.
        return not self._finish(index, ScannedFile(result))

    def _finish(self, index: int, scanned: ScannedFile) -> list[int]:
        result = scanned.result
        self._record(index, result)
        fresh = scanned.fresh_hash
        if (
            fresh is not None
            and self._cache is not None
            and fresh.stamp.settled_before(scanned.hashing_began_ns)
        ):
            self._cache.store(fresh.stamp, fresh.sha256)
        if self._stored is not None and result.sha256 is not None and scanned.settled():
            real = str(self._targets[index].path.resolve()) if scanned.side_files else None
            self._stored.store(StoredScan(result, scanned.side_files, real))
        leftovers = []
        for copy in self._copies.pop(index, ()):
            if result.sha256 is not None and result.sha256 == self._plan.known[copy].sha256:
                self._record(copy, as_copy(result, self._targets[copy].display))
            else:
                leftovers.append(copy)
        return leftovers

    def _record(self, index: int, result: FileResult) -> None:
        self._results[index] = result
        if self._on_file is not None:
            self._on_file(result)
