"""Bounded decoding of data transforms that payloads hide behind (base64, hex, zlib, gzip, bz2, lzma)."""

from __future__ import annotations

import base64
import binascii
import bz2
import codecs
import lzma
import zlib


class PayloadTooLarge(ValueError):
    """Decoding would produce more than the nested payload limit."""


_CODEC_SCHEMES = {
    "base64": "base64", "base_64": "base64", "base64_codec": "base64",
    "hex": "hex", "hex_codec": "hex",
    "zlib": "zlib", "zip": "zlib", "zlib_codec": "zlib",
    "bz2": "bz2", "bz2_codec": "bz2",
    "latin1": "identity", "latin-1": "identity", "iso-8859-1": "identity",
    "utf-8": "identity", "utf8": "identity", "ascii": "identity",
}  # fmt: skip


class CorruptPayload(ValueError):
    """The data does not decode; the real call raises too, so nothing further runs on its output."""


def _bounded_decompress(decompressor: object, data: bytes, limit: int) -> bytes:
    try:
        out = decompressor.decompress(data, limit + 1)  # type: ignore[attr-defined]
    except (zlib.error, lzma.LZMAError) as exc:  # neither is a ValueError; bz2 raises OSError
        raise CorruptPayload(str(exc)) from exc
    if len(out) > limit:
        raise PayloadTooLarge(f"expands past {limit} bytes")
    return bytes(out)


def decode_payload(scheme: str, data: bytes | memoryview, encoding: str | None, limit: int) -> bytes:
    """Apply one transform to constant bytes, never producing more than `limit` bytes."""
    if len(data) > limit:
        raise PayloadTooLarge(f"input of {len(data)} bytes")
    raw = bytes(data)
    if scheme == "codec":
        scheme = _CODEC_SCHEMES.get((encoding or "utf-8").lower().replace(" ", ""), "")
        if not scheme:
            raise LookupError(f"codec {encoding!r} not modelled")
    if scheme == "identity":
        return raw
    if scheme == "base64":
        return base64.b64decode(raw)
    if scheme == "base64url":
        return base64.urlsafe_b64decode(raw)
    if scheme == "base32":
        return base64.b32decode(raw)
    if scheme == "hex":
        return binascii.unhexlify(b"".join(raw.split()))
    if scheme == "a85":
        return base64.a85decode(raw)
    if scheme == "b85":
        return base64.b85decode(raw)
    if scheme == "zlib":
        return _bounded_decompress(zlib.decompressobj(), raw, limit)
    if scheme == "gzip":
        return _bounded_decompress(zlib.decompressobj(16 + zlib.MAX_WBITS), raw, limit)
    if scheme == "bz2":
        return _bounded_decompress(bz2.BZ2Decompressor(), raw, limit)
    if scheme == "lzma":
        return _bounded_decompress(lzma.LZMADecompressor(), raw, limit)
    if scheme == "rot13":
        return codecs.encode(raw.decode("latin-1"), "rot13").encode("latin-1")
    raise LookupError(f"unknown scheme {scheme}")
