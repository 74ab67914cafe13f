"""Worker processes that scan files in parallel or in isolation. Tasks and results cross a pipe as
JSON text (the parent never unpickles what a worker sends); a worker that crashes, hangs or hits a
limit costs only the file it was scanning, which gets an error result, and is replaced.

Each worker is a fresh `python -I` (fork and exec, safe while the parent runs hashing threads) that
scans its files one after another: that is what pins a crash on one file (a ProcessPoolExecutor
breaks as a whole and cannot say which task killed it) and lets the parent hold each file to a wall
clock.
A worker that still holds more than RECYCLE_RSS_BYTES after a file retires itself and hands its queued
files back, so a heap inflated by one hostile file is not carried through the rest of a large scan.
multiprocessing's spawn and forkserver were not used: both re-run the caller's `__main__` in every
worker, which a library must not do to a script that imports it; the cost they would save is a
replacement worker's start-up (about 0.3 s of imports), paid only after a crash.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from modelshield.engine.findings import Location, ScanIssue
from modelshield.engine.hash_cache import StampedHash, is_sha256
from modelshield.engine.limits import Limits, MiB
from modelshield.engine.result_codec import (
    ResultDecodeError,
    decode_file_result,
    decode_side_files,
    decode_stamp,
    encode_file_result,
    encode_side_files,
    encode_stamp,
)
from modelshield.engine.scanner import (
    FileTarget,
    ScannedFile,
    ScanOptions,
    new_dispatcher,
    not_scanned,
    scan_target,
)
from modelshield.errors import ModelShieldError
from modelshield.policy.model import Policy

_WORKER_COMMAND = (
    # The parent's import path comes first: the worker must run the very modelshield the parent runs
    # (an install, a checkout on PYTHONPATH, which -I would otherwise ignore, or a test's own modules).
    "import json, sys; sys.path[:] = json.loads(sys.argv[3]); "
    "from modelshield.engine.workers import worker_main; worker_main()"
)
_FRAME_HEADER = struct.Struct(">Q")
_READY = b'{"ready": true}'
"""A worker's first message: it started, imported the handlers and set its limits."""
_REPLY_KEYS = frozenset(
    {"result", "fresh_hash", "hashing_began_ns", "scanned_stamp", "side_files", "out_of_memory"}
)
MAX_REPLY_BYTES = 64 * MiB
CLOSE_GRACE_SECONDS = 2.0
STARTUP_SECONDS = 60.0
MAX_STARTUP_FAILURES = 2
"""Workers in a row that fail to start before the scan gives up (it is the environment, not a file)."""
PIPELINE_TASKS = 4
PIPELINE_BYTES = 4 * MiB
"""Tasks queued ahead to one worker: at most this many, and more than one only while they are small
(a large file queued behind another could wait while a second worker sits idle)."""
LOCAL_MAX_BYTES = 4 * MiB
"""Files the caller scans itself when it helps the workers: small ones, answered in milliseconds."""
EXIT_OUT_OF_MEMORY = 86
"""Exit status of a worker that ran out of memory (under --isolate: reached child_memory_bytes)."""
EXIT_RECYCLED = 87
"""Exit status of a worker that retired itself after a reply, its memory grown past RECYCLE_RSS_BYTES."""
RECYCLE_RSS_BYTES = 256 * MiB
"""A worker holding this much after a file leaves: the heap a hostile file inflated (Python keeps its
arenas) is not carried into the next thousand files; a fresh worker takes its queued tasks."""

POST_SCAN_POLICY_FIELDS = frozenset({"fail_on", "severity_overrides", "suppressions", "source"})
"""Policy fields applied by the parent to the finished result; workers need only the others."""


def policy_scan_data(policy: Policy) -> dict[str, list[str]]:
    """The parts of `policy` that act during a scan, as plain data for a worker."""
    data: dict[str, list[str]] = {}
    for part in fields(Policy):
        if part.name in POST_SCAN_POLICY_FIELDS:
            continue
        value = getattr(policy, part.name)
        if not isinstance(value, frozenset) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"Policy.{part.name} is not a set of names: teach workers.py how to send it")
        data[part.name] = sorted(value)
    return data


def worker_setup(options: ScanOptions, policy: Policy) -> str:
    """What every worker is started with, as JSON text."""
    return json.dumps(
        {
            "compute_hash": options.compute_hash,
            "deep": options.deep,
            "isolate": options.isolate,
            "limits": asdict(options.limits),
            "handlers_module": options.handlers_module,
            "policy": policy_scan_data(policy),
        }
    )


def _encode_stamped(stamped: StampedHash | None) -> dict[str, Any] | None:
    if stamped is None:
        return None
    return {"stamp": encode_stamp(stamped.stamp), "sha256": stamped.sha256}


def _decode_stamped(data: object) -> StampedHash | None:
    if data is None:
        return None
    if not isinstance(data, dict) or data.keys() != {"stamp", "sha256"}:
        raise ResultDecodeError("a stamped hash is not an object of stamp and sha256")
    stamp, digest = decode_stamp(data["stamp"]), data["sha256"]
    if stamp is None:
        raise ResultDecodeError("a stamped hash without a stamp")
    if not is_sha256(digest):
        raise ResultDecodeError("sha256 is not lowercase hex of 64 digits")
    return StampedHash(stamp, digest)


def worker_main() -> None:
    """A worker's life (`python -I -c` runs it): read its setup, set its limits, then scan one file per
    task until the parent closes the task pipe. Arguments: the task and reply descriptors (and the
    import path, already applied by the command)."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a scan is interrupted
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    task_fd, reply_fd = int(sys.argv[1]), int(sys.argv[2])
    setup = json.loads(_read_frame(task_fd) or b"null")
    limits = Limits(**setup["limits"])
    isolate = bool(setup["isolate"])
    options = ScanOptions(
        compute_hash=setup["compute_hash"],
        deep=setup["deep"],
        limits=limits,
        hash_cache=False,
        handlers_module=setup["handlers_module"],
    )
    scan_parts: dict[str, Any] = {name: frozenset(values) for name, values in setup["policy"].items()}
    policy = Policy(**scan_parts)
    dispatcher = new_dispatcher(options.handlers_module)
    if isolate:
        resource.setrlimit(resource.RLIMIT_AS, (limits.child_memory_bytes, limits.child_memory_bytes))
    _write_frame(reply_fd, _READY)
    while (frame := _read_frame(task_fd)) is not None:
        task = json.loads(frame)
        if isolate:
            _limit_cpu_from_now(limits.child_cpu_seconds)
        target = FileTarget(Path(task["path"]), task["display"])
        try:
            scanned = scan_target(target, dispatcher, policy, options, _decode_stamped(task["known"]))
            exhausted = any("MemoryError" in issue.message for issue in scanned.result.issues)
            reply = {
                "result": encode_file_result(scanned.result),
                "fresh_hash": _encode_stamped(scanned.fresh_hash),
                "hashing_began_ns": scanned.hashing_began_ns,
                "scanned_stamp": encode_stamp(scanned.scanned_stamp),
                "side_files": encode_side_files(scanned.side_files),
                "out_of_memory": exhausted,
            }
            _write_frame(reply_fd, json.dumps(reply).encode("utf-8"))
        except MemoryError:
            os._exit(EXIT_OUT_OF_MEMORY)
        if exhausted:
            os._exit(EXIT_OUT_OF_MEMORY)  # what is left of this heap is not worth trusting with the next file
        if resident_bytes() > RECYCLE_RSS_BYTES:
            os._exit(EXIT_RECYCLED)


def resident_bytes() -> int:
    """This process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _read_frame(fd: int) -> bytes | None:
    """One length-prefixed message from a blocking descriptor; None at the end of the stream."""
    header = _read_exactly(fd, _FRAME_HEADER.size)
    if header is None:
        return None
    return _read_exactly(fd, _FRAME_HEADER.unpack(header)[0])


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 * MiB))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write_frame(fd: int, payload: bytes) -> None:
    _write_all(fd, _FRAME_HEADER.pack(len(payload)) + payload)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _limit_cpu_from_now(seconds: int) -> None:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + seconds
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    # The soft limit moves on with each file (CPU time adds up over a worker's life); the parent's
    # wall clock bounds a worker that would raise it again.
    resource.setrlimit(
        resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard)
    )


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    tasks: int
    """Descriptor the parent writes tasks to."""
    replies: int
    """Descriptor (non-blocking) the parent reads replies from."""
    received: bytearray = field(default_factory=bytearray)
    queued: deque[int] = field(default_factory=deque)
    """Tasks sent and not answered, in order: the first is the one being scanned."""
    queued_bytes: int = 0
    deadline: float = math.inf
    """When the first queued task runs out of wall-clock time (or the worker, of time to start)."""
    started: float = field(default_factory=time.monotonic)
    ready: bool = False


@dataclass(frozen=True)
class _Failure:
    kind: str
    what: str


Task = tuple[FileTarget, StampedHash | None]


class WorkerPool:
    """Up to `size` worker processes scanning the files of `scan`.

    A worker scans its tasks one after another, so whatever kills it is pinned on the first task it
    has not answered; the tasks queued behind that one go back to the pool. A few small tasks are
    queued ahead so a worker never waits for the parent to wake up between two small files. The
    first `size` workers start at once (their start-up overlaps the parent's own work); replacements
    start when a task needs them."""

    def __init__(self, size: int, options: ScanOptions, policy: Policy) -> None:
        self._size = max(1, size)
        self._setup = worker_setup(options, policy).encode("utf-8")
        self._path = json.dumps([os.path.abspath(entry) for entry in sys.path if entry])
        self._limits = options.limits
        self._isolate = options.isolate
        self._workers: list[_Worker] = []
        self._selector = selectors.DefaultSelector()
        self._tasks: Sequence[Task] = ()
        self._sizes: dict[int, int] = {}
        self._queue: deque[int] = deque()
        self._startup_failures = 0
        for _ in range(self._size):
            self._start()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def scan(
        self, tasks: Sequence[Task], local: Callable[[int], ScannedFile] | None = None
    ) -> Iterator[tuple[int, ScannedFile]]:
        """(position in `tasks`, its outcome) for every task, in the order they finish. With `local`,
        the caller scans small files itself (by position) while the workers are busy, taken from the
        end of the queue so the workers keep the order they were given."""
        self._tasks = tasks
        self._sizes = {i: known.stamp.size for i, (_, known) in enumerate(tasks) if known is not None}
        self._queue = deque(range(len(tasks)))
        while self._queue or any(w.queued for w in self._workers):
            self._fill()
            mine = self._take_local() if local is not None else None
            if mine is not None and local is not None:
                yield mine, local(mine)
                yield from self._collect(wait=False)
            else:
                yield from self._collect()

    def close(self) -> None:
        """Stop every worker: idle ones see their task pipe close, busy ones are killed."""
        for worker in list(self._workers):
            if worker.queued:
                worker.process.kill()
            self._retire(worker)
        self._selector.close()

    def _start(self) -> _Worker:
        task_read, task_write = os.pipe()
        reply_read, reply_write = os.pipe()
        try:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
                [sys.executable, "-I", "-c", _WORKER_COMMAND, str(task_read), str(reply_write), self._path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(task_read, reply_write),
                close_fds=True,
            )
        except BaseException:
            for fd in (task_write, reply_read):
                os.close(fd)
            raise
        finally:
            os.close(task_read)
            os.close(reply_write)
        os.set_blocking(reply_read, False)
        worker = _Worker(process, task_write, reply_read)
        self._workers.append(worker)
        self._selector.register(reply_read, selectors.EVENT_READ, worker)
        with suppress(OSError):  # if it died already, its first task finds out how
            _write_frame(task_write, self._setup)
        return worker

    def _fill(self) -> None:
        while self._queue and len(self._workers) < self._size:
            self._start()
        frames: dict[int, list[bytes]] = {}
        progress = True
        while self._queue and progress:  # one task per worker per round: small scans spread evenly
            progress = False
            for worker in self._workers:
                if self._queue and self._has_room(worker):
                    position = self._queue.popleft()
                    if not worker.queued:
                        worker.deadline = self._first_deadline(worker)
                    worker.queued.append(position)
                    worker.queued_bytes += self._size_of(position)
                    frames.setdefault(worker.tasks, []).append(self._task_frame(position))
                    progress = True
        for descriptor, batch in frames.items():
            with suppress(OSError):  # a worker that died is found out by its reply pipe
                _write_all(descriptor, b"".join(batch))

    def _take_local(self) -> int | None:
        """The last queued task when it is small enough not to keep the caller from its workers long."""
        if self._queue and self._size_of(self._queue[-1]) <= LOCAL_MAX_BYTES:
            return self._queue.pop()
        return None

    def _first_deadline(self, worker: _Worker) -> float:
        if worker.ready:
            return time.monotonic() + self._limits.child_wall_seconds
        return worker.started + STARTUP_SECONDS

    def _has_room(self, worker: _Worker) -> bool:
        if not worker.queued:
            return True
        return len(worker.queued) < PIPELINE_TASKS and worker.queued_bytes < PIPELINE_BYTES

    def _size_of(self, position: int) -> int:
        if position not in self._sizes:
            size = 0
            with suppress(OSError):
                size = os.stat(self._tasks[position][0].path).st_size
            self._sizes[position] = size
        return self._sizes[position]

    def _task_frame(self, position: int) -> bytes:
        target, known = self._tasks[position]
        message = {"path": os.fspath(target.path), "display": target.display, "known": _encode_stamped(known)}
        payload = json.dumps(message).encode("utf-8")
        return _FRAME_HEADER.pack(len(payload)) + payload

    def _collect(self, wait: bool = True) -> Iterator[tuple[int, ScannedFile]]:
        busy = [w for w in self._workers if w.queued]
        if not busy:
            return
        timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic()) if wait else 0.0
        for key, _ in self._selector.select(timeout):
            yield from self._read(key.data)
        now = time.monotonic()
        for worker in busy:
            if worker in self._workers and not worker.ready and now >= worker.deadline:
                worker.process.kill()
                self._not_started(worker, f"did not start within {STARTUP_SECONDS:g} s")
            elif worker in self._workers and worker.queued and now >= worker.deadline:
                worker.process.kill()
                seconds = self._limits.child_wall_seconds
                yield self._lose(
                    worker, _Failure("isolation", f"gave no result within {seconds:g} s (child_wall_seconds)")
                )

    def _read(self, worker: _Worker) -> Iterator[tuple[int, ScannedFile]]:
        try:
            chunk = os.read(worker.replies, 4 * MiB)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            if not worker.ready:
                self._not_started(worker, None)
            elif worker.queued:
                yield from self._ended_with_tasks(worker)
            else:
                self._retire(worker)
            return
        worker.received += chunk
        while worker in self._workers and len(worker.received) >= _FRAME_HEADER.size:
            length = _FRAME_HEADER.unpack_from(worker.received)[0]
            unasked = worker.ready and not worker.queued
            if length > MAX_REPLY_BYTES or unasked:
                worker.process.kill()  # a reply nobody asked for is as bad as a huge one
                if worker.ready:
                    yield self._lose(worker, _Failure("crash", f"sent an unexpected reply of {length} bytes"))
                else:
                    self._not_started(worker, f"sent a message of {length} bytes")
                return
            if len(worker.received) < _FRAME_HEADER.size + length:
                return
            frame = bytes(worker.received[_FRAME_HEADER.size : _FRAME_HEADER.size + length])
            del worker.received[: _FRAME_HEADER.size + length]
            if not worker.ready:
                if frame != _READY:
                    worker.process.kill()
                    self._not_started(worker, "did not say it was ready")
                    return
                worker.ready = True
                self._startup_failures = 0
                worker.deadline = self._first_deadline(worker) if worker.queued else math.inf
                continue
            position = worker.queued.popleft()
            worker.queued_bytes -= self._size_of(position)
            worker.deadline = time.monotonic() + self._limits.child_wall_seconds
            yield position, self._receive(worker, self._tasks[position][0], frame)

    def _not_started(self, worker: _Worker, what: str | None) -> None:
        """A worker that died or misbehaved before taking any task: not the fault of a file, so its
        tasks go back to the queue; when workers keep failing to start, the scan cannot go on."""
        ending = self._drop(worker)
        self._startup_failures += 1
        if self._startup_failures >= MAX_STARTUP_FAILURES:
            raise ModelShieldError(
                f"worker processes cannot start: the last one {what or ending.what} "
                "(--jobs 1 scans without them, unless --isolate is given)"
            )

    def _receive(self, worker: _Worker, target: FileTarget, frame: bytes) -> ScannedFile:
        try:
            reply = json.loads(frame)
            if not isinstance(reply, dict) or reply.keys() != _REPLY_KEYS:
                raise ResultDecodeError(f"the reply is not an object of {sorted(_REPLY_KEYS)}")
            result = decode_file_result(reply["result"])
            fresh = _decode_stamped(reply["fresh_hash"])
            scanned_stamp = decode_stamp(reply["scanned_stamp"])
            side_files = decode_side_files(reply["side_files"])
            began = reply["hashing_began_ns"]
            if isinstance(began, bool) or not isinstance(began, int):
                raise ResultDecodeError("hashing_began_ns is not an integer")
            if result.path != target.display:
                raise ResultDecodeError("the result is another file's")
        except (ValueError, RecursionError) as exc:  # ResultDecodeError is a ValueError
            worker.process.kill()
            self._drop(worker)
            return self._failed(target, _Failure("crash", f"sent a malformed result ({str(exc)[:200]})"))
        if reply["out_of_memory"] is True:
            self._drop(worker)  # it exits by itself; a fresh one takes its place
            issue = _issue(target, _Failure("isolation", self._out_of_memory()))
            return ScannedFile(replace(result, issues=(*result.issues, issue)))
        return ScannedFile(result, fresh, began, scanned_stamp, side_files)

    def _ended_with_tasks(self, worker: _Worker) -> Iterator[tuple[int, ScannedFile]]:
        """A worker gone with tasks queued: one that retired itself hands them all back; any other
        ending is pinned on the first of them, the file it was scanning."""
        ending = self._drop(worker)
        if ending.kind != "recycled":
            position = self._queue.popleft()
            yield position, self._failed(self._tasks[position][0], ending)

    def _lose(self, worker: _Worker, failure: _Failure | None) -> tuple[int, ScannedFile]:
        """The outcome of the task a worker died on (how it ended, unless `failure` says)."""
        position = worker.queued.popleft()
        ending = self._drop(worker)
        return position, self._failed(self._tasks[position][0], failure or ending)

    def _drop(self, worker: _Worker) -> _Failure:
        """Retire a worker, putting the tasks it had not started back at the head of the queue."""
        self._queue.extendleft(reversed(worker.queued))
        worker.queued.clear()
        return self._retire(worker)

    def _retire(self, worker: _Worker) -> _Failure:
        """Remove a worker that died or is being stopped, and say how it ended."""
        self._selector.unregister(worker.replies)
        os.close(worker.tasks)  # an idle worker reads the end of its tasks and exits
        os.close(worker.replies)
        try:
            code = worker.process.wait(CLOSE_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            code = worker.process.wait()
        self._workers.remove(worker)
        return self._ending(code)

    def _ending(self, code: int | None) -> _Failure:
        if code == EXIT_RECYCLED:
            return _Failure("recycled", f"retired itself holding more than {RECYCLE_RSS_BYTES} bytes")
        if code == EXIT_OUT_OF_MEMORY:
            return _Failure("isolation", self._out_of_memory())
        if code is not None and code < 0:
            number = -code
            if number == signal.SIGXCPU and self._isolate:
                return _Failure(
                    "isolation",
                    f"used its {self._limits.child_cpu_seconds} s of CPU time (child_cpu_seconds)",
                )
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = "unknown signal"
            return _Failure("crash", f"was killed by signal {number} ({name})")
        return _Failure("crash", f"exited with status {code}")

    def _out_of_memory(self) -> str:
        if self._isolate:
            return f"ran out of its {self._limits.child_memory_bytes} bytes of memory (child_memory_bytes)"
        return "ran out of memory"

    def _failed(self, target: FileTarget, failure: _Failure) -> ScannedFile:
        issue = _issue(target, failure)
        size = 0
        with suppress(OSError):
            size = os.stat(target.path).st_size
        return ScannedFile(not_scanned(target.display, "not-scanned", issue, size))


def _issue(target: FileTarget, failure: _Failure) -> ScanIssue:
    message = (
        f"the worker process scanning this file {failure.what}; the file may be crafted to crash or "
        "exhaust the scanner and was not fully scanned"
    )
    return ScanIssue(failure.kind, message, Location((target.display,)))
