"""Hostile inputs that each push one scan limit: bombs, deep nesting, huge declared counts, long runs."""

from __future__ import annotations

import gzip
import pickle
import random
import struct
import zlib

from tests.samples import archives

MiB = 1 << 20
PROTO4 = b"\x80\x04"


def nested_zip(depth: int) -> bytes:
    """A zip holding a zip holding a zip… `depth` archives deep, a text file at the bottom."""
    data = archives.zip_with({"bottom.txt": b"the bottom\n"})
    for level in range(depth - 1):
        data = archives.raw_zip([archives.RawEntry(f"level{level}.zip".encode(), data)])
    return data


def stored_pickles_zip(count: int, size: int) -> bytes:
    """`count` stored members, each a harmless pickle of about `size` bytes."""
    member = pickle.dumps(b"w" * size, protocol=4)
    return archives.raw_zip([archives.RawEntry(f"part{i}.pkl".encode(), member) for i in range(count)])


def many_members_zip(count: int) -> bytes:
    return archives.raw_zip([archives.RawEntry(f"m{i}.txt".encode(), b"x") for i in range(count)])


def zip64_declaring(entries: int) -> bytes:
    """A zip whose zip64 end record declares `entries` members around a directory that holds one."""
    body = archives.raw_zip([archives.RawEntry(b"only.txt", b"one member")])
    eocd_at = body.rindex(b"PK\x05\x06")
    directory_size, directory_offset = struct.unpack_from("<2L", body, eocd_at + 12)
    head = body[:eocd_at]
    record = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, directory_size, directory_offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(head), 1)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return head + record + locator + eocd


def gzip_zeros(mebibytes: int) -> bytes:
    """A gzip stream of `mebibytes` MiB of zeros, built without holding the zeros (CRC left zero)."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + archives.zeros_deflate(mebibytes) + struct.pack("<2L", 0, (mebibytes << 20) & 0xFFFFFFFF)


def zstd_zeros(mebibytes: int) -> bytes:
    """A zstd frame of `mebibytes` MiB of zeros, compressed a MiB at a time."""
    import zstandard

    squeezer = zstandard.ZstdCompressor(level=3).compressobj(size=mebibytes << 20)
    block = bytes(MiB)
    return b"".join(squeezer.compress(block) for _ in range(mebibytes)) + squeezer.flush()


def noise(size: int, seed: int = 5) -> bytes:
    """Bytes that do not compress (deterministic)."""
    return random.Random(seed).randbytes(size)


def half_noise(size: int) -> bytes:
    """Bytes that compress about two to one: a ratio no bomb check objects to."""
    return noise(size // 2).hex().encode()


def gzip_of(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def deflated_zip(members: dict[str, bytes]) -> bytes:
    return archives.raw_zip(
        [archives.RawEntry(name.encode(), data, method=8) for name, data in members.items()]
    )


# -- pickles --------------------------------------------------------------------------------------------


def pickle_of_numbers(count: int) -> bytes:
    """A list of `count` distinct numbers: two opcodes and one kept value each."""
    body = b"".join(b"J" + struct.pack("<i", i) for i in range(count))
    return PROTO4 + b"](" + body + b"e."


def pickle_of_empty_dicts(count: int) -> bytes:
    """`count` one-byte EMPTY_DICT opcodes, each an object the machine keeps."""
    return PROTO4 + b"(" + b"}" * count + b"l."


def pickle_of_calls(count: int) -> bytes:
    """`count` calls of builtins.list(), the callable memoised once and fetched again each time."""
    return b"\x80\x02c__builtin__\nlist\nq\x00" + b"h\x00)R0" * count + b"N."


def pickle_memoising(count: int) -> bytes:
    """One value put into the memo `count` times under new indices."""
    return PROTO4 + b"N" + b"\x94" * count + b"0N."


def pickle_declaring_string(length: int) -> bytes:
    """BINUNICODE8 declaring `length` bytes that are not there."""
    return PROTO4 + b"\x8d" + struct.pack("<Q", length) + b"abcdefgh."


def consecutive_pickles(count: int) -> bytes:
    return pickle.dumps(1, protocol=2) * count


def pickle_decompressing(compressed: bytes) -> bytes:
    """A pickle that calls zlib.decompress on a constant (as payload stagers do)."""
    return b"\x80\x03czlib\ndecompress\nB" + struct.pack("<I", len(compressed)) + compressed + b"\x85R."


def zlib_zeros(size: int) -> bytes:
    return zlib.compress(bytes(size), 9)


def stored_keras(config: bytes) -> bytes:
    """A .keras zip with its members stored (no compression, so no bomb check stands in the way)."""
    return archives.raw_zip(
        [
            archives.RawEntry(b"metadata.json", b'{"keras_version": "3.0.0"}'),
            archives.RawEntry(b"config.json", config),
            archives.RawEntry(b"model.weights.h5", b""),
        ]
    )


def wide_keras_config(items: int) -> bytes:
    """A Keras config holding one list of `items` zeros (two bytes each)."""
    return b'{"class_name": "Sequential", "config": {"layers": [], "x": [' + b"0," * items + b"0]}}"


def padded_tokenizer_config(size: int) -> bytes:
    """A tokenizer_config.json whose list of chat templates is padded with `{}` entries to about `size`
    bytes (a large object is walked for its judged members; this member itself is too large to parse)."""
    last = b'{"name": "default", "template": "{{ x }}"}]}'
    return b'{"x": 1, "chat_template": [' + b"{}," * (size // 3) + last


def flow_yaml_config(size: int) -> bytes:
    """A Hydra config whose one flow sequence of `{}` fills about `size` bytes: the YAML parser's worst."""
    return b"_target_: torch.nn.Linear\nx: [" + b"{}," * (size // 3) + b"{}]\n"


def gzip_of_big_pickle(mebibytes: int) -> bytes:
    """A gzip'd pickle of one `mebibytes` MiB bytes object made of a repeated 1000-byte block: it
    compresses about 200 to 1, so it is no bomb until past a hundred MiB, yet far too big to hold."""
    size = mebibytes << 20
    squeezer = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = [squeezer.compress(PROTO4 + b"\x8e" + struct.pack("<Q", size))]
    block = random.Random(3).randbytes(1000) * 1024
    parts.extend(squeezer.compress(block) for _ in range(size // len(block)))
    parts.append(squeezer.compress(b"."))
    parts.append(squeezer.flush())
    return b"".join(parts)


def safetensors_padded_header(size: int) -> bytes:
    """A one-tensor safetensors file whose header carries about `size` bytes of `{}` in an unknown field."""
    header = (
        b'{"__metadata__": {"format": "pt"}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], '
        b'"junk": [' + b"{}," * max(0, (size - 120) // 3) + b"{}]}}"
    )
    return struct.pack("<Q", len(header)) + header + bytes(4)
