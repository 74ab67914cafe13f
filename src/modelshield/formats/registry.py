"""Format handlers named in the registry and imported on first use.

A scan of a pickle should not pay for importing the HDF5, ONNX and TensorFlow parsers, and a tensor
storage should not be offered to every sniffer in turn. Each entry names its handler's module and, where
one exists, a cheap test on the first (or last) bytes that every content the handler's own sniffer accepts
also passes (`formats/signatures.py`; `tests/formats/test_registry.py` holds each test to that). The
module is imported the first time that test passes, then its sniffer decides as before.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import cast

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.formats.base import FormatHandler, ScanEvent

Prefilter = Callable[[Blob], bool]


class LazyHandler:
    """A FormatHandler by reference: `module`, or the object `attribute` of it."""

    def __init__(
        self, name: str, module: str, attribute: str | None = None, could_be: Prefilter | None = None
    ) -> None:
        self.name = name
        self.module = module
        self.attribute = attribute
        self.could_be = could_be
        """A necessary condition for the handler's sniffer, cheap enough to ask of every blob; None: ask
        the sniffer itself."""
        self._loaded: FormatHandler | None = None

    def __repr__(self) -> str:
        target = f"{self.module}.{self.attribute}" if self.attribute else self.module
        return f"LazyHandler({self.name!r} → {target})"

    @property
    def handler(self) -> FormatHandler:
        """The handler itself, imported now if it was not yet."""
        if self._loaded is None:
            module = importlib.import_module(self.module)
            loaded = getattr(module, self.attribute) if self.attribute else module
            if loaded.name != self.name:
                raise RuntimeError(f"the registry names {self.module} {self.name!r}; it is {loaded.name!r}")
            self._loaded = cast(FormatHandler, loaded)
        return self._loaded

    @property
    def version(self) -> str:
        return self.handler.version

    @property
    def first_bytes(self) -> frozenset[int] | None:
        """The first bytes of every content the prefilter passes, when it says (see `FirstByteTest`)."""
        first_bytes = getattr(self.could_be, "first_bytes", None)
        return first_bytes if isinstance(first_bytes, frozenset) else None

    def sniff(self, blob: Blob) -> bool:
        if self.could_be is not None and not self.could_be(blob):
            return False
        return self.handler.sniff(blob)

    def anchored(self, blob: Blob) -> bool:
        """Whether the handler's format starts at byte 0 (see `formats.base.starts_at_head`)."""
        anchored = getattr(self.handler, "anchored", None)
        return True if anchored is None else bool(anchored(blob))

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        return self.handler.scan(blob, ctx)


def check_unique_names(handlers: tuple[LazyHandler, ...]) -> tuple[LazyHandler, ...]:
    """The registry itself, refused at import when two entries share a name (reports would confuse them)."""
    seen: set[str] = set()
    for entry in handlers:
        if entry.name in seen:
            raise RuntimeError(f"two format handlers are named {entry.name!r}")
        seen.add(entry.name)
    return handlers
