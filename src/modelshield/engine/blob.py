"""Blob: a bounded, read-only view of bytes (a file, an archive member, a decompressed stream)
with the provenance chain that says where it came from."""

from __future__ import annotations

import mmap
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from modelshield.engine.limits import LimitExceeded, ReadBudget

HEAD_BYTES = 4096
MATERIALIZE_CHUNK = 1 << 20


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
        self.memo: dict[str, object] = {}
        """What sniffers learned about these bytes, so the next handler to ask does not redo it."""

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
    def random_access(self) -> bool:
        """Whether reading at any offset is cheap (files and buffers; not decompressing streams)."""
        return True

    def slice(self, offset: int, length: int, element: str) -> Blob:
        """A child blob over part of this one (zero-copy where the blob allows it)."""
        return BufferBlob(self.view()[offset : offset + length], self.child_chain(element))

    @property
    def name(self) -> str:
        return self.chain[-1]

    def child_chain(self, element: str) -> tuple[str, ...]:
        return (*self.chain, element)

    @contextmanager
    def reads_counted(self, budget: ReadBudget) -> Iterator[None]:
        """While open, what handlers read from this blob's file is spent from `budget`."""
        yield


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
        return _memory_reader(self._view)

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
            # Grown a chunk at a time: one read of the whole size would hold it two or three times over.
            data = bytearray()
            with self._opener() as reader:
                while len(data) <= self._max_bytes and (chunk := reader.read(MATERIALIZE_CHUNK)):
                    data += chunk
            if len(data) > self._max_bytes:
                raise LimitExceeded(
                    "max_materialized_bytes",
                    len(data),
                    self._max_bytes,
                    f"{' › '.join(self.chain)} expands past {self._max_bytes} bytes (max_materialized_bytes)",
                )
            self._data = memoryview(data).toreadonly()
        return self._data

    def stream(self) -> ByteReader:
        if self._data is not None:
            return _memory_reader(self._data)
        return self._opener()

    @property
    def random_access(self) -> bool:
        return self._data is not None


class _OpenFile:
    """A scanned file: positional reads by default, a read-only mapping made only when a handler
    needs a whole region as one buffer (a pickle, a header). Pages never touched never count."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self._fh = fh
        self._fd = fh.fileno()
        self.fileno = self._fd
        self.size = size
        self._mapped: mmap.mmap | None = None
        self._view: memoryview | None = None
        self.budget: ReadBudget | None = None
        """Where handlers' reads are counted while a scan runs (hashing reads are not)."""

    def counted_pread(self, offset: int, n: int) -> bytes:
        data = self.pread(offset, n)
        if self.budget is not None:
            self.budget.spend(len(data))
        return data

    def pread(self, offset: int, n: int) -> bytes:
        n = max(0, min(n, self.size - offset))
        if n == 0 or offset < 0:
            return b""
        first = os.pread(self._fd, n, offset)
        if len(first) == n or not first:
            return first  # a short read (a file shrinking under us) is the rare case
        chunks = [first]
        offset += len(first)
        n -= len(first)
        while n > 0:
            chunk = os.pread(self._fd, n, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def view(self) -> memoryview:
        if self._view is None and self.size == 0:
            self._view = memoryview(b"")  # an empty file cannot be mapped
        if self._view is None:
            self._mapped = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
            if hasattr(self._mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
                self._mapped.madvise(mmap.MADV_RANDOM)
            self._view = memoryview(self._mapped)
        return self._view

    def close(self) -> None:
        if self._view is not None:
            self._view.release()
        if self._mapped is not None:
            try:
                self._mapped.close()
            except BufferError:
                pass  # a handler kept a slice alive; the mapping goes when that slice is collected


class FileBlob(Blob):
    """A region of a scanned file (the whole file, or a stored archive member inside it)."""

    def __init__(self, source: _OpenFile, offset: int, length: int, chain: tuple[str, ...]) -> None:
        super().__init__(chain)
        self._source = source
        self._offset = offset
        self._length = max(0, min(length, source.size - offset))
        self._head = b""  # every sniffer asks for the first bytes: read them once
        self._viewed = False

    @property
    def size(self) -> int:
        return self._length

    def head(self, n: int = HEAD_BYTES) -> bytes:
        n = min(n, self._length)
        if n > len(self._head):
            self._head = self._source.counted_pread(self._offset, max(n, min(HEAD_BYTES, self._length)))
        return self._head[:n]

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset >= self._length:
            return b""
        n = min(n, self._length - offset)
        if offset + n <= len(self._head):
            return self._head[offset : offset + n]
        return self._source.counted_pread(self._offset + offset, n)

    def tail(self, n: int) -> bytes:
        start = max(0, self._length - n)
        return self.read_at(start, self._length - start)

    def view(self) -> memoryview:
        # A handler that asks for a region whole is counted as reading all of it, once per blob; the
        # whole file mapped once is not counted, so a large model's own size never trips the budget.
        if not self._viewed and self._source.budget is not None and not self._is_whole_file():
            self._source.budget.spend(self._length)
        self._viewed = True
        return self._source.view()[self._offset : self._offset + self._length]

    def stream(self) -> ByteReader:
        start = self._offset
        # The budget is taken now: a reader made before the scan began (the hasher's) stays uncounted.
        read = self._source.pread if self._source.budget is None else self._source.counted_pread
        return _SpanReader(lambda pos, n: read(start + pos, n), self._length)

    def _is_whole_file(self) -> bool:
        return self._offset == 0 and self._length == self._source.size

    @contextmanager
    def reads_counted(self, budget: ReadBudget) -> Iterator[None]:
        previous, self._source.budget = self._source.budget, budget
        try:
            yield
        finally:
            self._source.budget = previous

    def whole_file_descriptor(self) -> int | None:
        """The open descriptor of the scanned file when this blob is all of it, else None (for a
        parser that must run in a child process and open the very file that was scanned)."""
        whole = len(self.chain) == 1 and self._is_whole_file()
        return self._source.fileno if whole else None

    def slice(self, offset: int, length: int, element: str) -> FileBlob:
        start = min(max(0, offset), self._length)
        return FileBlob(
            self._source, self._offset + start, min(length, self._length - start), self.child_chain(element)
        )


class _SpanReader:
    """Sequential reads over `length` bytes fetched by position (a memoryview slice or a pread):
    no copy of the whole span and no file offset shared between readers."""

    def __init__(self, read_span: Callable[[int, int], bytes], length: int) -> None:
        self._read_span = read_span
        self._length = length
        self._pos = 0

    def read(self, n: int = -1, /) -> bytes:
        remaining = self._length - self._pos
        out = self._read_span(self._pos, remaining if n is None or n < 0 else min(n, remaining))
        self._pos += len(out)
        return out

    def readinto(self, buffer: bytearray | memoryview) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = min(max(0, base + offset), self._length)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def __enter__(self) -> _SpanReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _memory_reader(data: memoryview) -> _SpanReader:
    return _SpanReader(lambda pos, n: bytes(data[pos : pos + n]), len(data))


@contextmanager
def open_file_blob(path: Path, display_name: str) -> Iterator[FileBlob]:
    """Open a regular file for scanning; bytes are read only where a handler asks for them."""
    with open(path, "rb") as fh:
        source = _OpenFile(fh, os.fstat(fh.fileno()).st_size)
        try:
            yield FileBlob(source, 0, source.size, (display_name,))
        finally:
            source.close()
