"""One fuzz input through the dispatcher with a chosen handler tried first; what counts as a bug."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelshield.analysis.isolated import IsolationLimits
from modelshield.engine.blob import BufferBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.dispatch import BlobScan, Dispatcher
from modelshield.engine.limits import KiB, Limits, MiB
from modelshield.formats import HANDLERS, hdf5
from modelshield.formats.base import FormatHandler
from modelshield.policy.model import Policy

FUZZ_LIMITS = Limits(
    max_nesting_depth=6,
    max_members_per_archive=200,
    max_member_bytes=4 * MiB,
    max_expanded_bytes_per_file=16 * MiB,
    max_expansion_ratio=50.0,
    max_materialized_bytes=8 * MiB,
    max_pickle_opcodes=200_000,
    max_pickle_memo_entries=20_000,
    max_pickle_string_bytes=4 * MiB,
    max_pickles_per_stream=8,
    max_nested_payload_bytes=1 * MiB,
    max_seconds_per_file=10.0,
    child_memory_bytes=512 * MiB,
    child_cpu_seconds=10,
    child_wall_seconds=15.0,
)
"""Small bounds, so that a limit that does not hold shows up as memory or time growth quickly."""

# The HDF5 handler bounds its h5py child by a module constant (300 s wall), not by the scan's Limits; a
# crafted file that hangs h5py is stopped and reported either way, but at 300 s per input it would stall
# the fuzzer, so the run gives the child FUZZ_LIMITS' bounds.
hdf5.ISOLATION = IsolationLimits.from_limits(FUZZ_LIMITS)

MAX_INPUT_BYTES = 256 * KiB
FAILED_MARK = "handler failed"
"""The dispatcher's catch-all: a handler raised something it did not expect, and what follows is unscanned."""


class FuzzBug(Exception):
    """An input made the scan misbehave (see `check`)."""


@dataclass(frozen=True)
class HandlerTarget:
    """A handler under fuzz and the dispatcher that tries it before every other handler."""

    handler: FormatHandler
    dispatcher: Dispatcher


ALL = "all"
"""The multiplexed target: an input's first byte picks the handler, the rest is the content."""


def handler_names() -> list[str]:
    return [handler.name for handler in HANDLERS]


def target(name: str) -> HandlerTarget:
    """The dispatcher for fuzzing `name`: its handler first, so a mutated input still reaches it while
    its sniffer accepts; the rest in their usual order, for inputs it refuses and for child blobs."""
    chosen = [handler for handler in HANDLERS if handler.name == name]
    if len(chosen) != 1:
        raise KeyError(f"no handler named {name!r}; known: {', '.join(handler_names())}")
    rest: Sequence[FormatHandler] = [handler for handler in HANDLERS if handler.name != name]
    return HandlerTarget(chosen[0], Dispatcher([chosen[0], *rest]))


def scan(fuzz_target: HandlerTarget, data: bytes, name: str = "fuzz-input") -> BlobScan:
    ctx = ScanContext(limits=FUZZ_LIMITS, policy=Policy())
    return fuzz_target.dispatcher.scan(BufferBlob(data, (name,)), ctx)


def check(fuzz_target: HandlerTarget, data: bytes) -> BlobScan:
    """Scan `data`; raise FuzzBug when a handler failed. An exception escaping the dispatcher is a bug
    too, and propagates as itself."""
    scanned = scan(fuzz_target, data)
    failures = [issue for issue in scanned.issues if FAILED_MARK in issue.message]
    if failures:
        raise FuzzBug("; ".join(f"{' > '.join(i.location.chain)}: {i.message}" for i in failures))
    return scanned


def all_targets() -> list[HandlerTarget]:
    return [target(name) for name in handler_names()]


def check_multiplexed(targets: Sequence[HandlerTarget], data: bytes) -> None:
    """One input of the multiplexed target: byte 0 selects the handler (modulo their number)."""
    if data:
        check(targets[data[0] % len(targets)], data[1:])
