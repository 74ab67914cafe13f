"""Format handlers that crash, hang, spin or exhaust memory on purpose, ahead of the real ones: tests
point worker processes at this module (ScanOptions.handlers_module) to prove a misbehaving parser
costs one file an error result and nothing more. Never used outside tests."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.formats import HANDLERS as REAL_HANDLERS
from modelshield.formats.base import FormatHandler, ScanEvent

MAGIC = b"MISBEHAVE:"
MiB = 1024 * 1024


def _segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _exit() -> None:
    os._exit(3)


def _hang() -> None:
    time.sleep(3600)


def _spin() -> None:
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        pass


def _allocate() -> None:
    # Only ever run under the test's small RLIMIT_AS, which stops it after a few chunks.
    hoard = [bytearray(32 * MiB) for _ in range(64)]
    del hoard


_KEPT: list[bytearray] = []


def _bloat() -> None:
    _KEPT.append(bytearray(b"x" * (300 * MiB)))  # touched, so resident
    _log_pid()


def _log_pid() -> None:
    with open(os.environ["MISBEHAVE_PID_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")


def _garbage_reply() -> None:
    os.write(int(sys.argv[2]), (8).to_bytes(8, "big") + b"not json")
    time.sleep(3600)


ACTIONS = {
    b"segv": _segfault,
    b"exit": _exit,
    b"hang": _hang,
    b"spin": _spin,
    b"allocate": _allocate,
    b"garbage": _garbage_reply,
    b"bloat": _bloat,
    b"pid": _log_pid,
}


class MisbehavingHandler:
    """Reads `MISBEHAVE:<action>` and does it."""

    name = "misbehaving"
    version = "1"

    def sniff(self, blob: Blob) -> bool:
        return blob.head(len(MAGIC)) == MAGIC

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        ACTIONS[blob.head(64)[len(MAGIC) :].strip()]()
        yield from ()


HANDLERS: tuple[FormatHandler, ...] = (MisbehavingHandler(), *REAL_HANDLERS)
