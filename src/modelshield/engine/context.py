"""ScanContext: what a handler may consult while scanning one file (limits, policy, budgets)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from modelshield.engine.blob import Blob
from modelshield.engine.findings import Location
from modelshield.engine.hash_cache import FileStamp
from modelshield.engine.limits import LimitExceeded, Limits, ReadBudget
from modelshield.policy.model import Policy


@dataclass(frozen=True)
class SideFileSeen:
    """A side file a handler looked for beside the scanned file, and the state of what it found there
    (None: no usable file). A stored result is valid only while every side file is still so."""

    name: str
    stamp: FileStamp | None

    def still_so(self, folder: Path) -> bool:
        """Whether the name still leads, from `folder`, to a file in exactly the same state."""
        target = resolve_side_file(folder, self.name)
        return (FileStamp.at(target) if target is not None else None) == self.stamp


def resolve_side_file(folder: Path, name: str) -> Path | None:
    """The regular file `name` (relative) in `folder`, when it resolves inside it; links are followed
    only as far as they stay inside."""
    try:
        root = folder.resolve(strict=True)
        target = (folder / name).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    return target if target.is_relative_to(root) and target.is_file() else None


@dataclass
class ScanContext:
    """Per-file state shared by every handler that runs on that file and its members."""

    limits: Limits
    policy: Policy
    depth: int = 0
    deep: bool = False
    """Opt-in analyses that read tensor data (weights statistics) are on."""
    folder: Path | None = None
    """The scanned file's folder on disk, where its loader finds side files (ONNX external data, an
    OpenVINO .bin); None when the bytes have no folder (a stream, a test buffer)."""
    expanded_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    shared: dict[str, object] = field(default_factory=dict)
    """Per-file state handlers share, keyed by the owning module (a callable judge, parsed headers)."""
    reads: ReadBudget = field(init=False)
    """Bytes handlers read from this file and its members (decompressed ones included)."""
    side_files_seen: list[SideFileSeen] = field(default_factory=list)
    """Every side file handlers looked for: the result depends on them as well as on the file."""

    def __post_init__(self) -> None:
        self.reads = ReadBudget(self.limits.max_bytes_read_per_file)

    def side_file(self, blob: Blob, name: str) -> Path | None:
        """The regular file `name` (relative) beside the scanned file, where a loader finds it, when
        `blob` is that file itself and the name resolves inside its folder; links are followed only as
        far as they stay inside it."""
        if self.folder is None or len(blob.chain) != 1:
            return None
        target = resolve_side_file(self.folder, name)
        self.side_files_seen.append(SideFileSeen(name, FileStamp.at(target) if target is not None else None))
        return target

    def where(self, blob: Blob, **position: object) -> Location:
        """A location inside `blob` (offset=, opcode_index=, opcode=, detail=)."""
        return Location(chain=blob.chain, **position)  # type: ignore[arg-type]

    def count_expanded(self, n: int) -> None:
        """Account for decompressed bytes; the whole file's expansion is bounded."""
        self.expanded_bytes += n
        if self.expanded_bytes > self.limits.max_expanded_bytes_per_file:
            raise LimitExceeded(
                "max_expanded_bytes_per_file", self.expanded_bytes, self.limits.max_expanded_bytes_per_file
            )
        self.reads.spend(n)

    def check_budgets(self) -> None:
        """Stop when the file's time or read budget is spent (called before each member is scanned)."""
        self.check_time()
        self.reads.check()

    def check_time(self) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed > self.limits.max_seconds_per_file:
            raise LimitExceeded("max_seconds_per_file", round(elapsed, 3), self.limits.max_seconds_per_file)
