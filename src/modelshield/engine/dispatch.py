"""Walk a blob through the format handlers: identify by content, recurse into children, capture errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, Location, ScanIssue
from modelshield.engine.limits import LimitExceeded
from modelshield.engine.result import FormatNode
from modelshield.formats.base import FormatHandler, starts_at_head


@dataclass
class BlobScan:
    """What scanning one blob and everything inside it produced."""

    tree: FormatNode
    findings: list[Finding] = field(default_factory=list)
    issues: list[ScanIssue] = field(default_factory=list)


@dataclass(frozen=True)
class Identification:
    """The handler for a blob and, for a polyglot, the handler of its second reading."""

    primary: FormatHandler | None
    secondary: FormatHandler | None = None


def identify(blob: Blob, handlers: Sequence[FormatHandler]) -> Identification:
    """The first handler (most specific first) whose sniffer accepts the content; a format found
    away from byte 0 yields to a later one that starts there, and becomes the second reading."""
    deferred: FormatHandler | None = None
    for handler in handlers:
        if handler.sniff(blob):
            if deferred is None and not starts_at_head(handler, blob):
                deferred = handler
                continue
            if deferred is not None and not starts_at_head(handler, blob):
                continue
            return Identification(handler, deferred)
    return Identification(deferred)


class FirstByteIndex:
    """For a value of a blob's first byte, the handlers (in order) that may accept it: a handler that
    declares `first_bytes` refuses content starting with any other byte, and is not asked about it.
    Each value's list is made when a blob first starts with it."""

    def __init__(self, handlers: tuple[FormatHandler, ...]) -> None:
        declared = [(handler, getattr(handler, "first_bytes", None)) for handler in handlers]
        self._limits = [
            (handler, first if isinstance(first, frozenset) else None) for handler, first in declared
        ]
        self._handlers: dict[int, tuple[FormatHandler, ...]] = {}

    def __getitem__(self, byte: int) -> tuple[FormatHandler, ...]:
        found = self._handlers.get(byte)
        if found is None:
            found = self._handlers[byte] = tuple(
                handler for handler, first in self._limits if first is None or byte in first
            )
        return found


class Dispatcher:
    """Scans a blob tree. Handlers are tried in order; a failure in one blob never stops the rest."""

    def __init__(self, handlers: Sequence[FormatHandler]) -> None:
        self._handlers = tuple(handlers)
        self._by_first_byte = FirstByteIndex(self._handlers)

    def scan(self, blob: Blob, ctx: ScanContext) -> BlobScan:
        out = BlobScan(tree=FormatNode(name=blob.name, format="unknown", size=0))
        with blob.reads_counted(ctx.reads):
            out.tree = self._scan_into(blob, ctx, out)
        return out

    def _scan_into(self, blob: Blob, ctx: ScanContext, out: BlobScan) -> FormatNode:
        try:
            size = blob.size
            first = blob.head(1)
            found = identify(blob, self._by_first_byte[first[0]] if first else self._handlers)
            handler = found.primary
        except LimitExceeded as exc:
            out.issues.append(ScanIssue("limit", str(exc), Location(blob.chain)))
            return FormatNode(blob.name, "unreadable", 0)
        except Exception as exc:  # noqa: BLE001 - a hostile blob must not stop the scan
            out.issues.append(ScanIssue("error", f"could not read content: {exc!r}", Location(blob.chain)))
            return FormatNode(blob.name, "unreadable", 0)
        if handler is None:
            return FormatNode(blob.name, "data", size)

        children = self._run_handler(handler, blob, ctx, out)
        if found.secondary is not None:
            second = self._run_handler(found.secondary, blob, ctx, out)
            children.append(
                FormatNode(
                    f"(same bytes read as {found.secondary.name})", found.secondary.name, size, tuple(second)
                )
            )
        return FormatNode(blob.name, handler.name, size, tuple(children))

    def _run_handler(
        self, handler: FormatHandler, blob: Blob, ctx: ScanContext, out: BlobScan
    ) -> list[FormatNode]:
        children: list[FormatNode] = []
        try:
            for event in handler.scan(blob, ctx):
                if isinstance(event, Finding):
                    if event.rule_id not in ctx.policy.disabled_rules:
                        out.findings.append(event)
                elif isinstance(event, ScanIssue):
                    out.issues.append(event)
                else:
                    children.append(self._scan_child(event, ctx, out))
        except LimitExceeded as exc:
            out.issues.append(
                ScanIssue("limit", f"{handler.name}: {exc}", Location(blob.chain, detail=exc.limit))
            )
        except RecursionError:
            out.issues.append(ScanIssue("error", f"{handler.name}: nesting too deep", Location(blob.chain)))
        except Exception as exc:  # noqa: BLE001 - reported as an issue, never as clean
            out.issues.append(
                ScanIssue("error", f"{handler.name} handler failed: {exc!r}", Location(blob.chain))
            )
        return children

    def _scan_child(self, child: Blob, ctx: ScanContext, out: BlobScan) -> FormatNode:
        if ctx.depth + 1 > ctx.limits.max_nesting_depth:
            out.issues.append(
                ScanIssue(
                    "limit",
                    f"nesting deeper than {ctx.limits.max_nesting_depth} levels; not scanned",
                    Location(child.chain, detail="max_nesting_depth"),
                )
            )
            return FormatNode(child.name, "not-scanned", 0)
        ctx.depth += 1
        try:
            ctx.check_budgets()
            return self._scan_into(child, ctx, out)
        finally:
            ctx.depth -= 1
