"""Pickle streams of any protocol (raw pickle, joblib, dill, cloudpickle): every pickle in the stream
is run on the symbolic machine and judged; nested payloads go back to the dispatcher."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from modelshield.analysis.callables import CallableJudge
from modelshield.analysis.pickle_judge import judge_run
from modelshield.analysis.pickle_vm import PickleMachine, PickleRun, opcode_name, opcodes_plausible
from modelshield.engine.blob import Blob, BufferBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.engine.limits import LimitExceeded, Limits
from modelshield.formats.base import ScanEvent
from modelshield.formats.joblib import joblib_inline_data
from modelshield.rules import pickle as rules

name = "pickle"
version = "1"

PROBE_BYTES = 64 * 1024
PROBE_MIN_OPCODES = 16
_PROBE_LIMITS = Limits(max_pickle_opcodes=4096)


def looks_like_pickle(data: memoryview | bytes) -> bool:
    """True when the bytes start a stream CPython's unpickler would accept as a pickle."""
    view = memoryview(data)
    if not could_start_pickle(view):
        return False
    if view[0] == 0x80:
        return view[1] <= 5 and (len(view) < 3 or opcode_name(view[2]) is not None)
    probe = view[:PROBE_BYTES]
    try:
        run = PickleMachine(probe, 0, _PROBE_LIMITS).run()
    except Exception:  # noqa: BLE001 - any failure of a probe means "not a pickle"
        return False
    if run.stopped:
        # A stream that imports something is a pickle even when the import fails at load; text that
        # merely decodes into opcodes (CSV, RECORD files) imports nothing and breaks somewhere.
        return run.opcodes >= 2 and (not run.malformed or bool(run.imports))
    truncated_by_window = len(view) > PROBE_BYTES and all(
        a.message.endswith("(truncated pickle)") for a in run.anomalies if a.kind == "malformed"
    )
    return truncated_by_window and run.opcodes >= PROBE_MIN_OPCODES


def could_start_pickle(head: memoryview | bytes) -> bool:
    """False when `head` alone rules a pickle out, whatever follows it: too short, or first opcodes
    no pickle has (the 4 KiB `opcodes_plausible` walks are enough)."""
    if len(head) < 2:
        return False
    if head[0] == 0x80:
        return True
    return opcode_name(head[0]) is not None and head[0] != ord(".") and opcodes_plausible(head)


def sniff(blob: Blob) -> bool:
    # Most content is refused on its first bytes: the 64 KiB probe is read only for what may be a pickle
    return could_start_pickle(blob.head()) and looks_like_pickle(blob.head(PROBE_BYTES + 1))


def _judge_for(ctx: ScanContext) -> CallableJudge:
    judge = ctx.shared.get(__name__)
    if not isinstance(judge, CallableJudge):
        judge = ctx.shared[__name__] = CallableJudge(ctx.policy)
    return judge


@dataclass(frozen=True)
class MachineRun:
    """One symbolic run of one pickle, with what stopped it early."""

    run: PickleRun
    issues: tuple[str, ...]
    limit_hit: LimitExceeded | None


def run_pickle(chain: tuple[str, ...], data: memoryview, start: int, ctx: ScanContext) -> MachineRun:
    """Run the machine over the pickle at `start`, once per file: a container handler that needs a
    member's persistent ids (PyTorch storages) and the pickle handler share the same run."""
    cache = ctx.shared.setdefault(f"{__name__}.runs", {})
    assert isinstance(cache, dict)
    key = (chain, start, len(data))
    cached = cache.get(key)
    if isinstance(cached, MachineRun):
        return cached
    deadline = ctx.started + ctx.limits.max_seconds_per_file
    machine = PickleMachine(data, start, ctx.limits, deadline=deadline, inline_data=joblib_inline_data)
    result = MachineRun(machine.run(), tuple(machine.issues), machine.limit_hit)
    cache[key] = result
    return result


def scan_pickles(
    blob: Blob, ctx: ScanContext, *, start: int = 0, max_pickles: int | None = None
) -> Generator[ScanEvent, None, int]:
    """Scan consecutive pickles from `start`; returns the offset just after the last one scanned, or the
    blob's end when a limit stopped the scan (what follows was not read as pickles, nor is it trailing
    data to scan again: the limit's issue says so)."""
    data = blob.view()
    judge = _judge_for(ctx)
    limits = ctx.limits
    pos = start
    count = 0
    while pos < len(data) and (max_pickles is None or count < max_pickles):
        if count > 0 and not looks_like_pickle(data[pos:]):
            break
        if count >= limits.max_pickles_per_stream:
            yield ScanIssue(
                "limit",
                f"more than {limits.max_pickles_per_stream} pickles in one stream; the rest was not scanned",
                Location(blob.chain, offset=pos, detail="max_pickles_per_stream"),
            )
            return len(data)
        machine = run_pickle(blob.chain, data, pos, ctx)
        run = machine.run
        count += 1
        yield from judge_run(run, blob, judge)
        for nested in run.nested:
            element = f"{nested.loader} payload @opcode {nested.site.opcode_index}"
            yield BufferBlob(nested.data, blob.child_chain(element))
        for issue in machine.issues:
            yield ScanIssue("partial", issue, Location(blob.chain, offset=run.end))
        if machine.limit_hit is not None:
            hit = machine.limit_hit
            yield ScanIssue(
                "limit",
                f"pickle analysis stopped at opcode #{run.opcodes}: {hit}; the rest was not scanned",
                Location(blob.chain, offset=run.end, detail=hit.limit),
            )
            return len(data)
        pos = run.end
        if not run.stopped:
            break
    return pos


def scan(blob: Blob, ctx: ScanContext) -> Generator[ScanEvent, None, None]:
    end = yield from scan_pickles(blob, ctx)
    trailing = blob.size - end
    if trailing > 0:
        yield rules.TRAILING_DATA.at(
            Location(blob.chain, offset=end),
            f"{trailing} bytes follow the last pickle; pickle.load does not read them",
            evidence=repr(blob.read_at(end, 32)),
        )
        # The appended bytes are identified by content: an executable, an archive or another format.
        yield blob.slice(end, trailing, "(data after pickle)")
