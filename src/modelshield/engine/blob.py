"""Blob: a bounded, read-only view of bytes (a file, an archive member, a decompressed stream)
with the provenance chain that says where it came from."""

from __future__ import annotations

import mmap
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from modelshield.engine.limits import LimitExceeded

HEAD_BYTES = 4096


class ByteReader(Protocol):
    """What a blob's stream offers: sequential reads, and closing as a context manager."""

    def read(self, n: int = -1, /) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> ByteReader: ...

    def __exit__(self, exc_type: object, exc: object, traceback: object, /) -> None: ...


class Blob(ABC):
    """Bytes to scan plus where they came from. Handlers read through this interface only."""

    def __init__(self, chain: tuple[str, ...]) -> None:
        self.chain = chain

    @property
    @abstractmethod
    def size(self) -> int:
        """Length in bytes (declared length for streams not yet read)."""

    @abstractmethod
    def head(self, n: int = HEAD_BYTES) -> bytes:
        """The first `n` bytes (fewer if the blob is shorter)."""

    @abstractmethod
    def view(self) -> memoryview:
        """All bytes as one buffer; streams are materialised within the materialisation limit."""

    @abstractmethod
    def stream(self) -> ByteReader:
        """A fresh sequential reader from the start."""

    def tail(self, n: int) -> bytes:
        data = self.view()
        return bytes(data[max(0, len(data) - n) :])

    def read_at(self, offset: int, n: int) -> bytes:
        data = self.view()
        return bytes(data[offset : offset + n])

    @property
    def name(self) -> str:
        return self.chain[-1]

    def child_chain(self, element: str) -> tuple[str, ...]:
        return (*self.chain, element)


class BufferBlob(Blob):
    """A blob over bytes already addressable in memory (a buffer, an mmap, or a slice of either)."""

    def __init__(self, data: bytes | bytearray | memoryview | mmap.mmap, chain: tuple[str, ...]) -> None:
        super().__init__(chain)
        self._view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data

    @property
    def size(self) -> int:
        return len(self._view)

    def head(self, n: int = HEAD_BYTES) -> bytes:
        return bytes(self._view[:n])

    def view(self) -> memoryview:
        return self._view

    def stream(self) -> ByteReader:
        return _MemoryViewReader(self._view)

    def slice(self, offset: int, length: int, element: str) -> BufferBlob:
        """A child blob over part of this one, without copying."""
        return BufferBlob(self._view[offset : offset + length], self.child_chain(element))


class StreamBlob(Blob):
    """A blob whose bytes come from a stream (decompression); read lazily and within limits."""

    def __init__(
        self,
        opener: Callable[[], ByteReader],
        declared_size: int,
        chain: tuple[str, ...],
        max_bytes: int,
    ) -> None:
        super().__init__(chain)
        self._opener = opener
        self._declared_size = declared_size
        self._max_bytes = max_bytes
        self._head: bytes | None = None
        self._data: memoryview | None = None

    @property
    def size(self) -> int:
        return len(self._data) if self._data is not None else self._declared_size

    def head(self, n: int = HEAD_BYTES) -> bytes:
        if self._data is not None:
            return bytes(self._data[:n])
        if self._head is None or (len(self._head) < n and len(self._head) == HEAD_BYTES):
            with self._opener() as reader:
                self._head = reader.read(max(n, HEAD_BYTES))
        return self._head[:n]

    def view(self) -> memoryview:
        if self._data is None:
            with self._opener() as reader:
                data = reader.read(self._max_bytes + 1)
            if len(data) > self._max_bytes:
                raise LimitExceeded(
                    "max_materialized_bytes",
                    len(data),
                    self._max_bytes,
                    f"{' › '.join(self.chain)} expands past {self._max_bytes} bytes",
                )
            self._data = memoryview(data)
        return self._data

    def stream(self) -> ByteReader:
        if self._data is not None:
            return _MemoryViewReader(self._data)
        return self._opener()


class _MemoryViewReader:
    """A minimal binary reader over a memoryview (io.BytesIO would copy the buffer)."""

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n is None or n < 0 else min(len(self._data), self._pos + n)
        out = bytes(self._data[self._pos : end])
        self._pos = end
        return out

    def readinto(self, buffer: bytearray | memoryview) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: len(self._data)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def __enter__(self) -> _MemoryViewReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def open_file_blob(path: Path, display_name: str) -> Iterator[BufferBlob]:
    """Map a regular file read-only; pages are only touched when a handler reads them."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            yield BufferBlob(b"", (display_name,))
            return
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
                mapped.madvise(mmap.MADV_RANDOM)
            view = memoryview(mapped)
            blob = BufferBlob(view, (display_name,))
            try:
                yield blob
            finally:
                blob._view.release()
                view.release()
        finally:
            try:
                mapped.close()
            except BufferError:
                # A handler kept a slice alive; the mapping is released when that slice is collected.
                pass
