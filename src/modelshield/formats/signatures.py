"""What the first bytes of each format can look like: the registry's prefilters, and the magic numbers
the handlers share with them.

A prefilter is a necessary condition, never a verdict: it may let through content its handler then
refuses, but must never refuse content the handler's sniffer would accept (`tests/formats/
test_registry.py` checks that on every sample and on mutated ones). It reads at most a few kilobytes
of the head, or a zip's end record, and imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from modelshield.engine.blob import Blob

Prefilter = Callable[[Blob], bool]

NUMPY_MAGIC = b"\x93NUMPY"
SEVENZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
GGUF_MAGICS = (b"GGUF", b"FUGG")
TFLITE_IDENTIFIER = b"TFL3"
"""At byte 4, after the root table offset."""
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_FIRST_USER_BLOCK = 512
ZIP_LOCAL_SIG = b"PK\x03\x04"
ZIP_END_SIG = b"PK\x05\x06"
ZIP_END_RECORD = 22
ZIP_MAX_COMMENT = 0xFFFF
GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZFILE_PREFIX = b"ZF"
"""joblib's own zlib container: "ZF", the length in hex, then a zlib stream."""
LFS_VERSION_LINES = (b"version https://git-lfs.github.com/spec/", b"version https://hawser.github.com/spec/")
"""The Git LFS pointer spec's first line ("hawser" is the pre-release name of the spec)."""
ANNEX_PREFIX = b"/annex/objects/"
"""What an unlocked git-annex file holds: "/annex/objects/<key>" and a newline."""
PLACEHOLDER_PREFIXES = (*LFS_VERSION_LINES, ANNEX_PREFIX)

EXECUTABLE_MAGICS = (
    b"\x7fELF",
    b"MZ",
    b"#!",
    *(b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"),
    *(b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf", b"\xbe\xba\xfe\xca", b"\xbf\xba\xfe\xca"),
)
"""ELF, PE, a script's shebang, Mach-O (thin, then fat) in either byte order (`analysis/payloads.py`)."""

MSGPACK_MAPS = frozenset([*range(0x81, 0x90), 0xDE, 0xDF])
"""First bytes of a non-empty msgpack map (fixmap, map 16, map 32): a flax state dict is one."""

ONNX_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
"""ModelProto's field numbers (onnx.proto) and their wire types (0 varint, 2 length-delimited)."""
_ONNX_FIRST_BYTES = frozenset(
    (key & 0x7F) | (0x80 if key > 0x7F else 0) for key in ((n << 3) | w for n, w in ONNX_MODEL_FIELDS.items())
)
TF_KERAS_IDENTIFIER_PREFIX = b"_tf_keras_"
"""How every node identifier of a tf.keras `keras_metadata.pb` begins."""

TEXT_PROBE = 4096
"""Every text sniffer refuses a NUL within at least this many first bytes."""
_JSON_SPACE = b" \t\r\n"
_BOM_AND_SPACE = b"\xef\xbb\xbf" + _JSON_SPACE
_HDF5_MEMO = "hdf5.superblock"
_ZIP_MEMO = "signatures.zip_like"
_ZIP_END_PATTERN = re.compile(re.escape(ZIP_END_SIG))


class FirstByteTest:
    """A prefilter that passes content starting with one of `first_bytes` only: the dispatcher need not
    ask it about content that starts otherwise (`engine/dispatch.py`)."""

    def __init__(self, test: Prefilter, first_bytes: Iterable[int]) -> None:
        self._test = test
        self.first_bytes = frozenset(first_bytes)

    def __call__(self, blob: Blob) -> bool:
        return self._test(blob)


def magic(*prefixes: bytes, at: int = 0) -> Prefilter:
    """Content that starts (at byte `at`) with one of `prefixes`."""
    width = at + max(len(prefix) for prefix in prefixes)

    def starts_with(blob: Blob) -> bool:
        return blob.head(width)[at:].startswith(prefixes)

    if at == 0 and all(prefixes):
        return FirstByteTest(starts_with, (prefix[0] for prefix in prefixes))
    return starts_with


def first_byte_in(allowed: frozenset[int]) -> Prefilter:
    """Content whose first byte is one of `allowed`."""

    def first(blob: Blob) -> bool:
        head = blob.head(1)
        return bool(head) and head[0] in allowed

    return FirstByteTest(first, allowed)


def text(blob: Blob) -> bool:
    """No NUL among the first bytes (text formats: YAML, JSON, Python source, pointers)."""
    return b"\0" not in blob.head(TEXT_PROBE)


def text_with_any(*needles: bytes) -> Prefilter:
    """Text (see `text`) in which one of `needles` occurs, when it is short enough to be all in the
    probe; longer text passes (its sniffer may find one further on). A stream's size is only declared,
    so a stream passes too."""

    def mentions(blob: Blob) -> bool:
        head = blob.head(TEXT_PROBE)
        if b"\0" in head:
            return False
        whole = blob.random_access and blob.size <= len(head)
        return not whole or any(needle in head for needle in needles)

    return mentions


mlflow_text = text_with_any(b":", b"-", b"=", b"<", b">", b"@")
"""An MLmodel, conda or python_env file has a `key:`; a requirements file an option, a pin, a direct
reference or a URL."""
hydra_text = text_with_any(b"_target_")
remote_code_text = text_with_any(b"transformers")
"""Remote code imports transformers."""


def _json_object(blob: Blob) -> bool:
    return text(blob) and blob.head(64).lstrip(_BOM_AND_SPACE)[:1] == b"{"


json_object = FirstByteTest(_json_object, b"{" + _BOM_AND_SPACE)
"""Text whose first character, after a byte-order mark and white space, opens a JSON object."""


def _markup(blob: Blob) -> bool:
    return blob.head(2048).lstrip(_BOM_AND_SPACE)[:1] == b"<"


markup = FirstByteTest(_markup, b"<" + _BOM_AND_SPACE)
"""Content whose first character, after a byte-order mark and white space, opens an XML element (a
NUL later on does not stop an XML reader before it reports it)."""


def zip_like(blob: Blob) -> bool:
    """A zip by its first bytes, or (read at random) by an end record within its last 64 KiB: an archive
    appended to other data counts, as it does for zipfile."""
    known = blob.memo.get(_ZIP_MEMO)
    if isinstance(known, bool):
        return known
    answer = blob.head(4) in (ZIP_LOCAL_SIG, ZIP_END_SIG)
    if not answer and blob.random_access and blob.size >= ZIP_END_RECORD:
        # One read of the whole window; a compiled pattern scans it about twice as fast as `in`
        answer = _ZIP_END_PATTERN.search(blob.tail(ZIP_END_RECORD + ZIP_MAX_COMMENT)) is not None
    blob.memo[_ZIP_MEMO] = answer
    return answer


def tar_header(blob: Blob) -> bool:
    """A first 512-byte block that can be a tar header: a name, and an octal checksum field."""
    header = blob.head(512)
    if len(header) < 512 or header[0] == 0:
        return False
    field = header[148:156].replace(b"\0", b" ").strip()
    return bool(field) and all(c in b"01234567" for c in field)


def safetensors_header(blob: Blob) -> bool:
    """Eight bytes of header length, then (after JSON white space) a JSON object whose first member
    name or closing brace follows (or the header ends first)."""
    length = int.from_bytes(blob.head(8), "little")
    window = blob.head(8 + min(length, 256))[8:].lstrip(_JSON_SPACE)
    if length < 2 or window[:1] != b"{":
        return False
    return window[1:].lstrip(_JSON_SPACE)[:1] in (b'"', b"}", b"")


def protobuf_tag(blob: Blob) -> bool:
    """A first byte that starts a protobuf field key: a wire type protobuf defines, a field number above 0."""
    head = blob.head(1)
    if not head:
        return False
    first = head[0]
    return first & 7 in (0, 1, 2, 5) and (first >= 0x80 or first >> 3 != 0)


def _onnx_model_start(blob: Blob) -> bool:
    return blob.size >= 4 and blob.head(1)[:1] != b"" and blob.head(1)[0] in _ONNX_FIRST_BYTES


onnx_model_start = FirstByteTest(_onnx_model_start, _ONNX_FIRST_BYTES)
"""At least four bytes, the first of them the start of a ModelProto field key."""


def tf_keras_metadata(blob: Blob) -> bool:
    """A protobuf, or a damaged one that names a tf.keras node identifier near its start."""
    return protobuf_tag(blob) or TF_KERAS_IDENTIFIER_PREFIX in blob.head(256)


def pickle_start(blob: Blob) -> bool:
    """At least two bytes that begin as a pickle does: a PROTO opcode, or opcodes that read as such."""
    from modelshield.analysis.pickle_vm import opcodes_plausible

    head = blob.head(256)
    return len(head) >= 2 and (head[0] == 0x80 or opcodes_plausible(head))


def hdf5_superblock(blob: Blob) -> bool:
    """The HDF5 signature where the library looks for it (a stream is read from its start only)."""
    if not blob.random_access:
        return blob.head(8) == HDF5_SIGNATURE
    return superblock_offset(blob) is not None


def superblock_offset(blob: Blob) -> int | None:
    """Where the HDF5 signature is: byte 0, or after a user block of 512, 1024, 2048… bytes."""
    if _HDF5_MEMO in blob.memo:
        found = blob.memo[_HDF5_MEMO]
        return found if isinstance(found, int) else None
    found_at: int | None = 0 if blob.head(8) == HDF5_SIGNATURE else None
    offset = HDF5_FIRST_USER_BLOCK
    while found_at is None and offset + 8 <= blob.size:
        if blob.read_at(offset, 8) == HDF5_SIGNATURE:
            found_at = offset
        offset *= 2
    blob.memo[_HDF5_MEMO] = found_at
    return found_at


def plausible_lzma_dictionary(size: int) -> bool:
    """Writers use 2**n or 2**n + 2**(n-1); liblzma accepts 4 KiB up to 1.5 GiB."""
    if not 4096 <= size <= 3 << 29:
        return False
    return size & (size - 1) == 0 or (size // 3) & (size // 3 - 1) == 0 and size % 3 == 0


def lzma_alone_header(blob: Blob) -> bool:
    """An lzma-alone header: a properties byte liblzma accepts and a dictionary size writers use."""
    head = blob.head(14)
    if len(head) < 14 or head[0] >= 9 * 5 * 5:
        return False
    return plausible_lzma_dictionary(int.from_bytes(head[1:5], "little"))


def zlib_header(head: bytes) -> bool:
    """RFC 1950's two header bytes: deflate with a window of at most 32 KiB, a valid check, no dictionary."""
    if len(head) < 2:
        return False
    cmf, flg = head[0], head[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0 and not flg & 0x20


def zlib_stream(blob: Blob) -> bool:
    """Content that starts with a zlib header."""
    return zlib_header(blob.head(2))
