"""Run a native parser in a child process with memory, CPU and wall-clock limits; results come back
as JSON text only, so nothing the child produces is ever unpickled or executed by the scanner."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelshield.engine.blob import Blob, FileBlob
from modelshield.engine.limits import DEFAULT_LIMITS, Limits, MiB

COPY_CHUNK = 1 * MiB


@dataclass(frozen=True)
class IsolationLimits:
    """Bounds on one child run: address space, CPU seconds, wall-clock seconds and output size."""

    memory_bytes: int = DEFAULT_LIMITS.child_memory_bytes
    cpu_seconds: int = DEFAULT_LIMITS.child_cpu_seconds
    wall_seconds: float = DEFAULT_LIMITS.child_wall_seconds
    output_bytes: int = 128 * MiB

    @classmethod
    def from_limits(cls, limits: Limits) -> IsolationLimits:
        """The child bounds a scan's `Limits` set (`child_memory_bytes`, `child_cpu_seconds`,
        `child_wall_seconds`)."""
        return cls(limits.child_memory_bytes, limits.child_cpu_seconds, limits.child_wall_seconds)

    def __post_init__(self) -> None:
        for value in (self.memory_bytes, self.cpu_seconds, self.wall_seconds, self.output_bytes):
            if value <= 0:
                raise ValueError("isolation limits must be positive")


@dataclass(frozen=True)
class IsolatedRun:
    """What a child run produced: its JSON document, or why there is none (crash, timeout, limit)."""

    document: dict[str, Any] | None
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.document is not None


def _limit_child(limits: IsolationLimits) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _child_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HDF5_"))}
    # HDF5 must never resolve another file or load a filter plugin on the scanned file's behalf.
    nowhere = os.path.join(tempfile.gettempdir(), "modelshield-no-such-dir", "x")
    env.update(
        HDF5_PLUGIN_PATH=nowhere,
        HDF5_EXT_PREFIX=nowhere,
        HDF5_EXTFILE_PREFIX=nowhere,
        HDF5_VDS_PREFIX=nowhere,
        HDF5_USE_FILE_LOCKING="FALSE",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
    )
    return env


def run_module(
    module: str,
    arguments: Sequence[str],
    limits: IsolationLimits,
    *,
    pass_fds: Sequence[int] = (),
    workdir: Path | None = None,
) -> IsolatedRun:
    """Run `python -I -m module arguments…` under `limits`; its stdout must be one JSON object."""
    import subprocess  # only when a child is needed: keeps start-up quick

    with _private_dir() as scratch:
        out_path = scratch / "stdout.json"
        err_path = scratch / "stderr.txt"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
                    [sys.executable, "-I", "-m", module, *arguments],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=workdir or scratch,
                    env=_child_environment(),
                    pass_fds=tuple(pass_fds),
                    preexec_fn=_limit_child(limits),  # noqa: PLW1509 - set before exec, in the child only
                    close_fds=True,
                )
            except OSError as exc:
                return IsolatedRun(None, f"could not start the isolated parser: {exc}")
            try:
                code = process.wait(timeout=limits.wall_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                return IsolatedRun(None, f"timed out after {limits.wall_seconds:g} s and was stopped")
        stderr = _read_bounded(err_path, 4096).decode("utf-8", "replace").strip().splitlines()
        last = stderr[-1][:300] if stderr else ""
        if code != 0:
            why = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            hint = " (memory or CPU limit reached)" if _looks_like_limit(code, last) else ""
            return IsolatedRun(None, f"{why}{hint}" + (f": {last}" if last else ""))
        if out_path.stat().st_size > limits.output_bytes:
            return IsolatedRun(None, f"produced more than {limits.output_bytes} bytes of output")
        try:
            document = json.loads(_read_bounded(out_path, limits.output_bytes))
        except (ValueError, RecursionError) as exc:
            return IsolatedRun(None, f"produced output that is not JSON: {str(exc)[:200]}")
        if not isinstance(document, dict):
            return IsolatedRun(None, "produced JSON that is not an object")
        return IsolatedRun(document)


def _looks_like_limit(code: int, last_line: str) -> bool:
    import signal

    return code in (-signal.SIGKILL, -signal.SIGXCPU, -signal.SIGSEGV) or "MemoryError" in last_line


def _read_bounded(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit)


@contextmanager
def _private_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="modelshield-"))  # mkdtemp makes it 0700
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class BlobTooLarge(Exception):
    """The blob is larger than the bound for copying it where a child can open it."""


@contextmanager
def blob_as_file(blob: Blob, max_bytes: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    """A path the child can open for `blob`, with the descriptors it must inherit.

    A whole scanned file is handed over as its open descriptor (`/dev/fd/N`), so the child reads the
    very file that was opened, not whatever the path names later. Any other blob is copied, within
    `max_bytes`, into a private directory removed afterwards.
    """
    fd = blob.whole_file_descriptor() if isinstance(blob, FileBlob) else None
    if fd is not None:
        yield f"/dev/fd/{fd}", (fd,)
        return
    if blob.size > max_bytes:
        raise BlobTooLarge(f"{blob.size} bytes is more than the {max_bytes} bytes copied for isolation")
    with _private_dir() as scratch:
        path = scratch / "blob"
        written = 0
        with blob.stream() as reader, open(path, "xb") as out:
            while True:
                chunk = reader.read(COPY_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > max_bytes:
                    raise BlobTooLarge(f"more than the {max_bytes} bytes copied for isolation")
                out.write(chunk)
        yield str(path), ()
