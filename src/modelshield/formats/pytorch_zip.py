"""PyTorch zip checkpoints (torch.save since 1.6): the records torch.load reads, and what it never reads."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from functools import cached_property

from modelshield.analysis import weights
from modelshield.analysis.pickle_values import GlobalRef
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue, Severity
from modelshield.engine.limits import DEFAULT_LIMITS, LimitExceeded
from modelshield.formats.base import ScanEvent
from modelshield.formats.compressed import ExpansionRecord
from modelshield.formats.pickle import run_pickle
from modelshield.formats.torch_storages import FLOAT_STORAGES, STORAGE_ELEMENT_SIZES
from modelshield.formats.zip_reader import (
    STORED,
    SUPPORTED_METHODS,
    NotAZipError,
    ZipArchive,
    ZipMember,
    looks_like_zip,
    member_blobs,
    member_element,
    open_member,
    read_member_bytes,
    read_zip,
    starts_with_zip_header,
    zip_findings,
)
from modelshield.policy.model import Policy
from modelshield.rules import pytorch as rules

name = "pytorch"
version = "1"

# What torch.save writes besides data.pkl and data/<key>; TorchScript adds its own (torchscript.py).
STANDARD_RECORDS = frozenset(
    {
        "version",
        ".data/version",
        "byteorder",
        ".format_version",
        ".storage_alignment",
        ".data/serialization_id",
    }
)
MIN_FILE_VERSION, MAX_FILE_VERSION = 1, 64  # torch accepts a small range; anything else is hand-made
SMALL_RECORD_BYTES = 64
HEAD_PROBE_BYTES = 512

# Bytes per element of the storage types torch.save names in persistent ids.


@dataclass(frozen=True)
class TorchLayout:
    """The archive as torch's reader sees it: the directory every record is looked up under."""

    archive: ZipArchive
    prefix: str

    def record(self, relative: str) -> ZipMember | None:
        """The record torch would read: names fold case in its lookup; the last copy stands for all."""
        copies = self.copies(relative)
        return copies[-1] if copies else None

    @cached_property
    def _by_folded_name(self) -> dict[str, list[ZipMember]]:
        index: dict[str, list[ZipMember]] = {}
        for member in self.archive.members:
            index.setdefault(member.name.lower(), []).append(member)
        return index

    def copies(self, relative: str) -> list[ZipMember]:
        return list(self._by_folded_name.get(f"{self.prefix}/{relative}".lower(), ()))

    def relative(self, member: ZipMember) -> str | None:
        start = f"{self.prefix}/".lower()
        return member.name[len(start) :] if member.name.lower().startswith(start) else None


def sniff_archive(blob: Blob) -> ZipArchive | None:
    """The parsed zip for sniffers (cached per blob, so several zip layouts can ask cheaply)."""
    key = __name__ + ".archive"
    if key in blob.memo:
        known = blob.memo[key]
        return known if isinstance(known, ZipArchive) else None
    archive = None
    if looks_like_zip(blob):
        try:
            archive = read_zip(blob, _sniff_context())
        except (NotAZipError, LimitExceeded, ValueError, OSError):
            archive = None
    blob.memo[key] = archive
    return archive


def _sniff_context() -> ScanContext:
    return ScanContext(limits=DEFAULT_LIMITS, policy=Policy())


def torch_layout(archive: ZipArchive) -> TorchLayout | None:
    """PyTorch's reader takes the archive directory from the first central-directory record."""
    if not archive.members:
        return None
    first = archive.members[0].name
    if "/" not in first:
        return None
    return TorchLayout(archive, first.split("/", 1)[0])


def layout_for(blob: Blob) -> TorchLayout | None:
    archive = sniff_archive(blob)
    return torch_layout(archive) if archive is not None else None


def sniff(blob: Blob) -> bool:
    layout = layout_for(blob)
    # torch's miniz lookup folds case, so any spelling of data.pkl is the one it may load
    return layout is not None and bool(layout.copies("data.pkl"))


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    archive = read_zip(blob, ctx)
    layout = torch_layout(archive)
    yield from zip_findings(blob, ctx, archive)
    if layout is not None:
        yield from record_checks(blob, ctx, layout)
        referenced = yield from storage_checks(blob, ctx, layout, "data.pkl", "data")
        yield from unread_members(blob, ctx, layout, referenced, extra_known=())
    yield from member_blobs(blob, ctx, archive)


def record_checks(blob: Blob, ctx: ScanContext, layout: TorchLayout) -> Iterator[ScanEvent]:
    """version / .data/version / byteorder, read as torch reads them; duplicate data.pkl copies."""
    archive = layout.archive
    version_record = layout.record(".data/version") or layout.record("version")
    if version_record is None:
        yield rules.MISSING_RECORD.at(
            ctx.where(blob, detail=f"{layout.prefix}/version"),
            "no version record: torch.save always writes one",
        )
    else:
        text = _small_record(blob, ctx, version_record)
        if (
            text is None
            or not re.fullmatch(r"\s*\d+\s*", text)
            or not (MIN_FILE_VERSION <= int(text) <= MAX_FILE_VERSION)
        ):
            yield rules.MISSING_RECORD.at(
                member_location(blob, archive, version_record),
                "version record is not a supported format version",
                evidence=repr(text)[:80],
            )
    byteorder = layout.record("byteorder")
    if byteorder is not None:
        text = _small_record(blob, ctx, byteorder)
        if text not in ("little", "big"):
            yield rules.MISSING_RECORD.at(
                member_location(blob, archive, byteorder),
                "byteorder record is neither 'little' nor 'big'",
                evidence=repr(text)[:80],
            )
    for pickle_name in ("data.pkl", "constants.pkl"):
        copies = layout.copies(pickle_name)
        for extra in copies[1:]:
            yield rules.DUPLICATE_PICKLE.at(
                member_location(blob, archive, extra),
                f"{len(copies)} records named {pickle_name}: zipfile reads #{copies[-1].index}, "
                "torch's reader may pick any copy",
                evidence=", ".join(f"#{m.index} {m.name!r} @{m.header_offset}" for m in copies),
            )


def storage_checks(
    blob: Blob, ctx: ScanContext, layout: TorchLayout, pickle_name: str, tensor_dir: str
) -> Generator[ScanEvent, None, set[str]]:
    """Persistent ids in a pickle vs the storage records present; returns the storage keys referenced.

    Sizes come from the central directory: storage bytes are never read.
    """
    referenced: set[str] = set()
    for member in layout.copies(pickle_name):  # every copy: which one a reader picks is not certain
        referenced |= yield from _storage_references(blob, ctx, layout, member, tensor_dir)
    return referenced


def _storage_references(
    blob: Blob, ctx: ScanContext, layout: TorchLayout, member: ZipMember, tensor_dir: str
) -> Generator[ScanEvent, None, set[str]]:
    referenced: set[str] = set()
    where = member_location(blob, layout.archive, member)
    try:
        data = read_member_bytes(blob, ctx, member, ctx.limits.max_materialized_bytes)
        chain = blob.child_chain(member_element(layout.archive, member))
        run = run_pickle(chain, memoryview(data), 0, ctx).run
    except (ValueError, OSError) as exc:
        yield ScanIssue("unparsed", f"storage references in {member.name} not checked: {exc}", where)
        return referenced
    for pid in run.persistent_ids[: ctx.limits.max_members_per_archive]:
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
            yield rules.ODD_PERSISTENT_ID.at(
                where, "persistent id is not a torch storage reference", evidence=repr(pid)[:200]
            )
            continue
        _, storage_type, key, location, numel = pid
        if not isinstance(key, str):
            yield rules.ODD_PERSISTENT_ID.at(where, "storage key is not a string", evidence=repr(pid)[:200])
            continue
        referenced.add(key)
        record = layout.record(f"{tensor_dir}/{key}")
        type_name = storage_type.qualname.rsplit(".", 1)[-1] if isinstance(storage_type, GlobalRef) else "?"
        evidence = f"('storage', {type_name}, {key!r}, {location!r}, {numel!r})"
        if record is None:
            yield rules.MISSING_STORAGE.at(
                where, f"storage {key!r} has no record {layout.prefix}/{tensor_dir}/{key}", evidence=evidence
            )
            continue
        element = STORAGE_ELEMENT_SIZES.get(type_name)
        if element is not None and isinstance(numel, int) and record.uncompressed_size < numel * element:
            yield rules.MISSING_STORAGE.at(
                member_location(blob, layout.archive, record),
                f"storage {key!r} needs {numel * element} bytes, its record holds {record.uncompressed_size}",
                evidence=evidence,
            )
        float_dtype = FLOAT_STORAGES.get(type_name)
        if ctx.deep and float_dtype:
            yield from _deep_storage(blob, ctx, layout, record, f"{tensor_dir}/{key}", float_dtype)
    return referenced


def _deep_storage(
    blob: Blob, ctx: ScanContext, layout: TorchLayout, record: ZipMember, name: str, dtype: str
) -> Iterator[ScanEvent]:
    """`--deep` over one float storage: a stored record is read in place, a compressed one (an archive
    re-packed with deflate) through the bounded decompressing reader, within the expansion limits."""
    size = record.uncompressed_size
    if record.local is None or record.method not in SUPPORTED_METHODS or not blob.random_access:
        yield ScanIssue(
            "deep-unsupported",
            f"--deep did not read storage {name!r} (compression method {record.method})",
            member_location(blob, layout.archive, record),
        )
        return
    if record.method == STORED:
        at = record.local.data_offset
        yield from weights.scan_tensors(blob, ctx, [weights.FloatTensor(name, dtype, at, size)])
        return
    expansion = ExpansionRecord(compressed_size=record.compressed_size)
    start, stored = record.local.data_offset, record.compressed_size
    with open_member(blob, ctx, record.method, start, stored, size, expansion) as reader:
        chain = member_location(blob, layout.archive, record).chain
        tensor = weights.FloatTensor(name, dtype, 0, size, weights.SequentialReads(reader.read), chain)
        yield from weights.scan_tensors(blob, ctx, [tensor])


def unread_members(
    blob: Blob,
    ctx: ScanContext,
    layout: TorchLayout,
    referenced: set[str],
    extra_known: tuple[str, ...],
    loader: str = "torch.load",
) -> Iterator[ScanEvent]:
    """Members torch.load never reads: outside the archive directory, unknown records, stray storages."""
    folded = {key.lower() for key in referenced}
    for member in layout.archive.members:
        if member.is_dir:
            continue
        relative = layout.relative(member)
        if relative is not None and _is_known(relative, folded, extra_known):
            continue
        what = _content_kind(blob, ctx, member)
        severity = Severity.MEDIUM if what != "data" else Severity.LOW
        if relative is not None and relative.startswith("data/") and what == "data":
            message = f"storage record {member.name!r} is referenced by no tensor"
        else:
            message = f"{member.name!r} ({what}) is never read by {loader}"
        yield rules.EMBEDDED_CONTENT.at(
            member_location(blob, layout.archive, member),
            message,
            severity=severity,
            evidence=f"{member.uncompressed_size} bytes, {what}",
        )


def _is_known(relative: str, referenced: set[str], extra_known: tuple[str, ...]) -> bool:
    """`referenced` holds storage keys already folded to lower case."""
    relative = relative.lower()  # torch's lookups fold case
    if relative in STANDARD_RECORDS or relative == "data.pkl":
        return True
    if relative.startswith("data/") and relative[len("data/") :] in referenced:
        return True
    return any(
        relative == k.lower() or (k.endswith("/") and relative.startswith(k.lower())) for k in extra_known
    )


_EXECUTABLE_MAGICS = (b"\x7fELF", b"MZ", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
_ARCHIVE_MAGICS = (
    b"PK\x03\x04",
    b"\x1f\x8b",
    b"7z\xbc\xaf\x27\x1c",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",
)


def _content_kind(blob: Blob, ctx: ScanContext, member: ZipMember) -> str:
    """A word for what a member holds, from its first bytes (the member itself is scanned as a child)."""
    lower = member.name.lower()
    try:
        head = _member_head(blob, ctx, member)
    except (ValueError, OSError, LimitExceeded):
        head = b""
    if head.startswith(_EXECUTABLE_MAGICS):
        return "executable"
    if head.startswith(_ARCHIVE_MAGICS) or head[257:262] == b"ustar":
        return "archive"
    if head.startswith(b"#!"):
        return "script"
    if lower.endswith((".py", ".pyc", ".sh", ".so", ".dll", ".dylib", ".exe", ".bat", ".ps1")):
        return "code"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5 or lower.endswith((".pkl", ".pickle")):
        return "pickle"
    return "data"


def _member_head(blob: Blob, ctx: ScanContext, member: ZipMember) -> bytes:
    if member.local is None or member.method not in SUPPORTED_METHODS:
        return b""
    if member.method == STORED:
        start = member.local.data_offset
        return (
            blob.read_at(start, min(HEAD_PROBE_BYTES, member.compressed_size)) if start < blob.size else b""
        )
    return read_member_bytes(blob, ctx, member, HEAD_PROBE_BYTES)


def _small_record(blob: Blob, ctx: ScanContext, member: ZipMember) -> str | None:
    try:
        raw = read_member_bytes(blob, ctx, member, SMALL_RECORD_BYTES)
    except (ValueError, OSError):
        return None
    return raw.decode("latin1").strip()


def member_location(
    blob: Blob, archive: ZipArchive, member: ZipMember, detail: str | None = None
) -> Location:
    """Where a member is, as the chain of the child blob the zip reader makes for it."""
    return Location(chain=blob.child_chain(member_element(archive, member)), detail=detail)


# A zip behind other data is read a second time, after the format that starts at byte 0.
anchored = starts_with_zip_header
