"""Safetensors: the header is checked the way the reference loader checks it; tensor data is never read."""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from modelshield.analysis import weights
from modelshield.analysis.payloads import identify_archive, identify_executable
from modelshield.engine.blob import Blob, BufferBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, Location, ScanIssue
from modelshield.engine.rules import Rule
from modelshield.formats.base import ScanEvent
from modelshield.formats.pickle import looks_like_pickle
from modelshield.rules import safetensors as rules

name = "safetensors"
version = "1"

LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100_000_000
"""The reference library's MAX_HEADER_SIZE: it refuses a longer header."""
MAX_JSON_DEPTH = 64
"""A real header nests three deep (root, tensor entry, shape); serde_json stops at 128."""
MAX_FINDINGS_PER_RULE = 20
MAX_CHILD_REGIONS = 16
_U64 = 2**64
_JSON_SPACE = b" \t\r\n"

DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
"""Every dtype the format defines (safetensors 0.8), with its width in bits."""

_TENSOR_FIELDS = frozenset({"dtype", "shape", "data_offsets"})
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_INNERMOST_PAIR = re.compile(rb"[\[{][\]}]")

_CODE = re.compile(
    r"\b__import__\s*\(|\b(?:eval|exec|compile|execfile)\s*\(|\bos\.(?:system|popen|exec\w*|spawn\w*)\b"
    r"|\bsubprocess\b|\bpty\.spawn\b|\bimport\s+(?:os|sys|subprocess|socket|pty|shutil|ctypes|builtins|"
    r"importlib|requests|urllib)\b|\bfrom\s+[\w.]+\s+import\b|\bgetattr\s*\(|\blambda(?:\s+[\w\s,*=]{0,40})?:"
    r"|\b(?:curl|wget)\s+\S+.{0,40}\|\s*(?:ba|z)?sh\b|\brm\s+-rf\b|/bin/(?:ba|z)?sh\b|\bpowershell\b"
    r"|\bnc\s+-[el]",
    re.IGNORECASE | re.DOTALL,
)
_URL = re.compile(r"\b(?:https?|ftp|s3|gs|file)://[^\s\"'<>]+", re.IGNORECASE)
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_\s]{16,}={0,2}")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){8,}")
_DATA_URI = re.compile(r"data:[\w/+.\-]*(?:;[\w\-]+=[\w\-]+)*;base64,", re.IGNORECASE)


class _HeaderError(ValueError):
    """The header cannot be read as the reference loader reads it."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as declared in the header, with its byte range relative to the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    nbytes: int | None
    """shape × dtype size in bytes, None when it overflows or is not a whole number of bytes."""


def _header_length(blob: Blob) -> int | None:
    head = blob.head(LENGTH_BYTES)
    if len(head) < LENGTH_BYTES:
        return None
    length: int = struct.unpack("<Q", head)[0]
    return length


_SIGNATURE_KEYS = (b'"data_offsets"', b'"__metadata__"')


def sniff(blob: Blob) -> bool:
    """A header length, then a JSON object. A length that runs past the file (judged by `scan`) is
    accepted only when the header names safetensors' own keys: text files (source code, JSON) read
    as a length are huge, and their ninth byte may well be a brace."""
    length = _header_length(blob)
    if length is None or length < 2:
        return False
    window = blob.head(LENGTH_BYTES + min(length, 256))[LENGTH_BYTES:].lstrip(_JSON_SPACE)
    if window[:1] != b"{":
        return False
    rest = window[1:].lstrip(_JSON_SPACE)
    if not (rest[:1] in (b'"', b"}") or (not rest and len(window) < length)):
        return False
    if length <= blob.size - LENGTH_BYTES:
        return True
    head = blob.head(LENGTH_BYTES + 4096)
    return any(key in head for key in _SIGNATURE_KEYS)


def _nests_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether the JSON nests more than `limit` levels: innermost bracket pairs are peeled off one level
    per pass (each pass runs in C), so the check costs `limit` passes at most, however long the header."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        brackets, peeled = _INNERMOST_PAIR.subn(b"", brackets)
        if not peeled:
            return len(brackets) > limit  # unbalanced: the parser rejects it, but must not recurse on it
    return bool(brackets)


def _refuse_constant(text: str) -> object:
    raise _HeaderError(f"{text} is not JSON")


def _parse_json(raw: bytes, duplicates: list[str]) -> object:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _HeaderError(f"header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if _nests_deeper_than(raw, MAX_JSON_DEPTH):
        raise _HeaderError(f"header nests more than {MAX_JSON_DEPTH} levels deep")

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        out = dict(items)  # the last value wins, as in serde_json
        if len(out) != len(items):
            seen: set[str] = set()
            for key, _ in items:
                if key in seen and len(duplicates) < MAX_FINDINGS_PER_RULE:
                    duplicates.append(key)
                seen.add(key)
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=_refuse_constant)
    except _HeaderError:
        raise
    except (ValueError, RecursionError) as exc:
        raise _HeaderError(f"header is not valid JSON: {exc}") from None


def _is_u64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _U64


def _element_count(shape: tuple[int, ...]) -> int | None:
    """The product of the dimensions, None once it passes 64 bits (checked per step, never a huge int)."""
    if 0 in shape:
        return 0
    count = 1
    for dim in shape:
        count *= dim
        if count >= _U64:
            return None
    return count


@dataclass(frozen=True)
class _LazyLocation:
    """A tensor entry's location, built only when a finding needs it (headers list many thousands)."""

    chain: tuple[str, ...]
    offset: int
    tensor: str

    def build(self) -> Location:
        return Location(self.chain, offset=self.offset, detail=f"tensor {self.tensor!r:.80}")


class _Reporter:
    """Caps findings per rule, so a header with a million bad entries stays a readable report."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(
        self, rule: Rule, location: Location | _LazyLocation, message: str, evidence: str = ""
    ) -> Finding | None:
        n = self.counts.get(rule.id, 0) + 1
        self.counts[rule.id] = n
        if n > MAX_FINDINGS_PER_RULE:
            return None
        where = location.build() if isinstance(location, _LazyLocation) else location
        return rule.at(where, message, evidence=evidence)

    def summary(self, chain: tuple[str, ...]) -> Iterator[Finding]:
        for rule_id, n in self.counts.items():
            if n > MAX_FINDINGS_PER_RULE:
                rule = _RULES_BY_ID[rule_id]
                yield rule.at(
                    Location(chain, offset=LENGTH_BYTES),
                    f"{n - MAX_FINDINGS_PER_RULE} more findings of this rule were not listed",
                )


_RULES_BY_ID = {rule.id: rule for rule in rules.RULES}


def _tensor_entries(
    top: dict[str, object], chain: tuple[str, ...], report: _Reporter
) -> Iterator[TensorEntry | Finding]:
    for key, entry in top.items():
        if key == "__metadata__":
            continue
        where = _LazyLocation(chain, LENGTH_BYTES, key)
        problem: Finding | None = None
        if not isinstance(entry, dict) or not _TENSOR_FIELDS <= entry.keys():
            found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            problem = report(
                rules.HEADER_MALFORMED,
                where,
                "tensor entry is not an object with dtype, shape and data_offsets",
                evidence=f"{found!r:.200}",
            )
            if problem:
                yield problem
            continue
        extra = sorted(set(entry) - _TENSOR_FIELDS)
        if extra and (
            problem := report(rules.UNKNOWN_FIELD, where, "tensor entry has extra fields", f"{extra!r:.200}")
        ):
            yield problem
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        valid = True
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            valid = False
            if problem := report(rules.BAD_DTYPE, where, "unknown dtype", f"{dtype!r:.80}"):
                yield problem
        if not isinstance(shape, list) or not all(_is_u64(d) for d in shape):
            valid = False
            if problem := report(
                rules.BAD_SHAPE,
                where,
                "shape is not a list of non-negative 64-bit integers",
                f"{shape!r:.200}",
            ):
                yield problem
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_u64(o) for o in offsets)):
            valid = False
            if problem := report(
                rules.HEADER_MALFORMED,
                where,
                "data_offsets is not a pair of non-negative 64-bit integers",
                f"{offsets!r:.200}",
            ):
                yield problem
        if not (valid and isinstance(dtype, str) and isinstance(shape, list) and isinstance(offsets, list)):
            continue
        dims = tuple(int(d) for d in shape)
        count = _element_count(dims)
        bits = None if count is None else count * DTYPE_BITS[dtype]
        nbytes = None if bits is None or bits % 8 or bits // 8 >= _U64 else bits // 8
        yield TensorEntry(key, dtype, dims, int(offsets[0]), int(offsets[1]), nbytes)


def _metadata_payloads(value: str, limit: int) -> Iterator[tuple[str, bytes, str]]:
    """(encoding, decoded bytes, what it is) for every reading of `value` that is a payload."""
    candidates: list[tuple[str, bytes]] = []
    if value and max(map(ord, value)) < 256:
        candidates.append(("raw", value.encode("latin-1")))
    text = _DATA_URI.sub("", value.strip(), count=1)
    if _BASE64.fullmatch(text):
        compact = "".join(text.split())
        if (len(compact) * 3) // 4 <= limit:
            urlsafe = "-" in compact or "_" in compact
            standard = (compact.translate(_URLSAFE_TO_STANDARD) if urlsafe else compact).rstrip("=")
            try:
                decoded = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
                candidates.append(("base64url" if urlsafe else "base64", decoded))
            except (binascii.Error, ValueError):
                pass
    if _HEX.fullmatch(text) and len(text) // 2 <= limit:
        candidates.append(("hex", bytes.fromhex(text)))
    for label, data in list(candidates):
        if data[:1] == b"\x78" and len(data) > 2 and (data[0] * 256 + data[1]) % 31 == 0:
            try:
                inflated = zlib.decompressobj().decompress(data, limit + 1)
            except zlib.error:
                continue
            if len(inflated) <= limit:
                candidates.append((f"{label}+zlib", inflated))
    for label, data in candidates:
        kind = _payload_kind(data, decoded=label != "raw")
        if kind is not None:
            yield label, data, kind


def _payload_kind(data: bytes, *, decoded: bool) -> str | None:
    executable = identify_executable(data[:4096], lambda offset, n: data[offset : offset + n])
    if executable is not None:
        return executable.description
    archive = identify_archive(data)
    if archive is not None and decoded:
        return archive
    # A pickle must end with its STOP: random bytes that happen to start like one do not.
    if len(data) >= 8 and data.rstrip()[-1:] == b"." and looks_like_pickle(data):
        return "pickle"
    return None


def _scan_metadata(metadata: object, blob: Blob, ctx: ScanContext, report: _Reporter) -> Iterator[ScanEvent]:
    if metadata is None:
        return
    where = Location(blob.chain, offset=LENGTH_BYTES, detail="__metadata__")
    if not isinstance(metadata, dict):
        if problem := report(
            rules.METADATA_TYPE, where, "__metadata__ is not an object", f"{type(metadata).__name__}"
        ):
            yield problem
        return
    limit = ctx.limits.max_nested_payload_bytes
    children = 0
    for key, value in metadata.items():
        at = Location(blob.chain, offset=LENGTH_BYTES, detail=f"__metadata__[{key!r:.80}]")
        if not isinstance(value, str):
            if problem := report(
                rules.METADATA_TYPE, at, "metadata value is not a string", f"{json.dumps(value)[:200]}"
            ):
                yield problem
            continue
        code = _CODE.search(value) or _CODE.search(key)
        if code and (
            problem := report(rules.METADATA_CODE, at, "metadata value looks like code", f"{value[:200]!r}")
        ):
            yield problem
        url = _URL.search(value)
        if url and (
            problem := report(rules.METADATA_URL, at, "metadata value contains a URL", url.group(0)[:200])
        ):
            yield problem
        for encoding, data, kind in _metadata_payloads(value, limit):
            if problem := report(
                rules.METADATA_PAYLOAD,
                at,
                f"metadata value holds a {kind} ({encoding}, {len(data)} bytes)",
                data[:48].hex(" "),
            ):
                yield problem
            if children < MAX_CHILD_REGIONS:
                children += 1
                yield BufferBlob(data, blob.child_chain(f"__metadata__[{key[:80]}] ({encoding})"))


def _region(blob: Blob, offset: int, length: int, element: str) -> Blob:
    """A child blob over part of `blob`, zero-copy when the blob is in memory already."""
    return blob.slice(offset, length, element)


def _scan_layout(
    tensors: list[TensorEntry], blob: Blob, data_start: int, data_length: int, report: _Reporter
) -> Iterator[ScanEvent]:
    """Model the loader: tensors sorted by offsets must tile the data section exactly from 0 to its end."""
    covered = 0
    regions = 0
    last: TensorEntry | None = None
    for tensor in sorted(tensors, key=lambda t: (t.begin, t.end)):
        width = DTYPE_BITS[tensor.dtype] // 8
        misaligned = width > 1 and tensor.begin % min(width, 8) and tensor.end > tensor.begin
        if tensor.begin == covered and tensor.end - tensor.begin == tensor.nbytes and not misaligned:
            if tensor.end <= data_length:
                covered, last = tensor.end, tensor
                continue
        where = Location(blob.chain, offset=data_start + tensor.begin, detail=f"tensor {tensor.name!r:.80}")
        span = f"data_offsets [{tensor.begin}, {tensor.end}], {tensor.dtype} {list(tensor.shape)!r:.120}"
        problem: Finding | None = None
        if tensor.end < tensor.begin or tensor.nbytes is None or tensor.end - tensor.begin != tensor.nbytes:
            expected = (
                "overflows 64 bits or is not whole bytes" if tensor.nbytes is None else f"{tensor.nbytes}"
            )
            problem = report(
                rules.SIZE_MISMATCH, where, f"byte range does not match shape × dtype size ({expected})", span
            )
            if problem:
                yield problem
        if tensor.end > data_length or tensor.begin > data_length:
            if problem := report(
                rules.OFFSET_OUT_OF_RANGE,
                where,
                f"tensor data ends past the data section ({data_length} bytes)",
                span,
            ):
                yield problem
        elif tensor.begin < covered and last is not None:
            if problem := report(
                rules.OVERLAPPING_TENSORS, where, f"tensor overlaps {last.name!r:.80}", span
            ):
                yield problem
        elif tensor.begin > covered:
            if problem := report(
                rules.LAYOUT_GAP,
                where,
                f"{tensor.begin - covered} bytes before this tensor belong to no tensor",
                f"gap [{covered}, {tensor.begin})",
            ):
                yield problem
            if regions < MAX_CHILD_REGIONS:
                regions += 1
                yield _region(
                    blob, data_start + covered, tensor.begin - covered, f"(gap before {tensor.name[:80]})"
                )
        if misaligned:
            if problem := report(
                rules.UNALIGNED_TENSOR,
                where,
                f"tensor starts at an offset not a multiple of {min(width, 8)}",
                span,
            ):
                yield problem
        if covered < tensor.end <= data_length:
            covered, last = tensor.end, tensor
    if covered < data_length:
        trailing = data_length - covered
        yield rules.APPENDED_DATA.at(
            Location(blob.chain, offset=data_start + covered, detail="after the last tensor"),
            f"{trailing} bytes follow the last tensor; the header does not cover them",
            evidence=blob.read_at(data_start + covered, 32).hex(" "),
        )
        yield _region(blob, data_start + covered, trailing, "(data after tensors)")


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    length = _header_length(blob)
    if length is None:
        return
    header_at = Location(blob.chain, offset=0, detail="header length")
    if length > MAX_HEADER_BYTES:
        yield rules.HEADER_LENGTH.at(
            header_at,
            f"header declares {length} bytes; the safetensors library refuses more than {MAX_HEADER_BYTES}",
            evidence=blob.head(LENGTH_BYTES).hex(" "),
        )
        return
    if length > blob.size - LENGTH_BYTES:
        yield rules.HEADER_LENGTH.at(
            header_at,
            f"header declares {length} bytes; the file holds {blob.size - LENGTH_BYTES} after the length",
            evidence=blob.head(LENGTH_BYTES).hex(" "),
        )
        return
    if length > ctx.limits.max_config_bytes:
        yield ScanIssue(
            "limit",
            f"header of {length} bytes is larger than {ctx.limits.max_config_bytes} (max_config_bytes); "
            "not parsed",
            Location(blob.chain, offset=LENGTH_BYTES, detail="max_config_bytes"),
        )
        return
    duplicates: list[str] = []
    try:
        top = _parse_json(blob.read_at(LENGTH_BYTES, length), duplicates)
    except _HeaderError as exc:
        yield rules.HEADER_MALFORMED.at(Location(blob.chain, offset=LENGTH_BYTES, detail="header"), str(exc))
        return
    for key in duplicates:
        yield rules.DUPLICATE_KEY.at(
            Location(blob.chain, offset=LENGTH_BYTES, detail="header"),
            f"key {key!r:.80} appears more than once; the safetensors library keeps the last value",
            evidence=f"{key!r:.200}",
        )
    if not isinstance(top, dict):
        yield rules.HEADER_MALFORMED.at(
            Location(blob.chain, offset=LENGTH_BYTES, detail="header"),
            f"header is a JSON {type(top).__name__}, not an object",
        )
        return
    ctx.check_time()
    report = _Reporter()
    tensors: list[TensorEntry] = []
    for event in _tensor_entries(top, blob.chain, report):
        if isinstance(event, TensorEntry):
            tensors.append(event)
        else:
            yield event
    yield from _scan_metadata(top.get("__metadata__"), blob, ctx, report)
    data_start = LENGTH_BYTES + length
    yield from _scan_layout(tensors, blob, data_start, blob.size - data_start, report)
    yield from report.summary(blob.chain)
    if ctx.deep:
        floats = _float_tensors(tensors, data_start, blob.size - data_start)
        yield from weights.scan_tensors(blob, ctx, floats)


def _float_tensors(
    tensors: list[TensorEntry], data_start: int, data_length: int
) -> list[weights.FloatTensor]:
    """Float tensors whose byte range is sound, for the opt-in weights analysis."""
    return [
        weights.FloatTensor(t.name, t.dtype, data_start + t.begin, t.end - t.begin)
        for t in tensors
        if t.dtype in weights.FLOAT_WIDTHS and t.nbytes == t.end - t.begin and t.begin <= t.end <= data_length
    ]
