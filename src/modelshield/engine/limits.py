"""Every bound the scanner keeps, in one validated object."""

from __future__ import annotations

from dataclasses import dataclass, fields

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class LimitExceeded(Exception):
    """Raised when scanning would cross a limit; the dispatcher turns it into an issue and a finding."""

    def __init__(self, limit: str, value: int | float, maximum: int | float, message: str = "") -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        super().__init__(message or f"{limit} limit exceeded: {value} > {maximum}")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one scan may read, expand, nest and spend."""

    max_nesting_depth: int = 12
    max_members_per_archive: int = 100_000
    max_member_bytes: int = 2 * GiB
    max_expanded_bytes_per_file: int = 8 * GiB
    max_expansion_ratio: float = 200.0
    max_materialized_bytes: int = 512 * MiB
    max_pickle_opcodes: int = 20_000_000
    max_pickle_memo_entries: int = 2_000_000
    max_pickle_string_bytes: int = 4 * GiB
    max_pickles_per_stream: int = 64
    max_nested_payload_bytes: int = 64 * MiB
    max_seconds_per_file: float = 300.0
    child_memory_bytes: int = 1 * GiB
    """Address-space limit of a child process that runs a native parser, or a whole file's scan under
    `--isolate`."""
    child_cpu_seconds: int = 120
    child_wall_seconds: float = 300.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"limit {f.name} must be a positive number, got {value!r}")
        if self.max_expansion_ratio < 1:
            raise ValueError("max_expansion_ratio must be at least 1")


DEFAULT_LIMITS = Limits()
