"""Legacy PyTorch checkpoints (torch.save before 1.6, or _use_new_zipfile_serialization=False):
five pickles, then raw storages walked by their size headers only."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass

from modelshield.analysis import weights
from modelshield.analysis.pickle_values import GlobalRef, SymDict, SymList
from modelshield.analysis.pickle_vm import PickleMachine, PickleRun, opcodes_plausible
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import ScanIssue
from modelshield.engine.limits import Limits
from modelshield.formats.base import ScanEvent
from modelshield.formats.pickle import scan_pickles
from modelshield.formats.torch_storages import FLOAT_STORAGES, STORAGE_ELEMENT_SIZES
from modelshield.rules import pytorch as rules

name = "pytorch-legacy"
version = "1"

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
PICKLES = ("magic number", "protocol version", "sys_info", "object", "storage keys")
SNIFF_BYTES = 256
SIZE_HEADER = 8
_SNIFF_LIMITS = Limits(max_pickle_opcodes=64)


@dataclass(frozen=True)
class LegacyPickle:
    """One of the five leading pickles: where it lies, what it would leave on the stack."""

    run: PickleRun
    value: object


def sniff(blob: Blob) -> bool:
    return _layout(blob) is not None


def _layout(blob: Blob) -> str | None:
    """ "stream" (magic-number file) or "tar-storages" (the storages member of the older tar layout)."""
    head = memoryview(blob.head(SNIFF_BYTES))
    if len(head) < 2 or not (head[0] == 0x80 or opcodes_plausible(head)):
        return None  # not a pickle stream at all: skip the machine (storages are checked by the thousand)
    try:
        first = _run(head, 0, _SNIFF_LIMITS)
        if not first.run.stopped:
            return None
        if _is_int(first.value, MAGIC_NUMBER):
            return "stream"
        if not isinstance(first.value, int) or isinstance(first.value, bool) or first.value < 0:
            return None
        second = _run(head, first.run.end, _SNIFF_LIMITS)
    except Exception:  # noqa: BLE001 - a failed probe means "not this format"
        return None
    if not second.run.stopped:
        return None
    if first.value == 0:
        return "tar-storages" if isinstance(second.value, SymList) else None
    if _storage_record(second.value) is not None:
        return "tar-storages"
    return "tar-tensors" if _tensor_record(second.value) else None


def _tensor_record(value: object) -> bool:
    """A tar-layout tensor header pickle: (key, storage key, tensor type)."""
    if not isinstance(value, tuple) or len(value) != 3 or not isinstance(value[2], GlobalRef):
        return False
    return value[2].qualname.startswith("torch.") and value[2].qualname.endswith("Tensor")


def _storage_record(value: object) -> tuple[str, int | None, str] | None:
    """(key, element size, type name) of a tar-layout storage header pickle: (key, location, storage type)."""
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    key, location, storage_type = value
    if not isinstance(key, str) or not isinstance(location, str) or not isinstance(storage_type, GlobalRef):
        return None
    if not storage_type.qualname.startswith("torch.") or not storage_type.qualname.endswith("Storage"):
        return None
    type_name = storage_type.qualname.rsplit(".", 1)[-1]
    return key, STORAGE_ELEMENT_SIZES.get(type_name), type_name


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    layout = _layout(blob)
    if layout == "tar-storages":
        yield from _scan_tar_storages(blob, ctx)
        return
    if layout == "tar-tensors":
        yield from _scan_tar_tensors(blob, ctx)
        return
    # Every one of the five pickles is a full unpickler load for torch.load with weights_only=False.
    yield from scan_pickles(blob, ctx, start=0, max_pickles=len(PICKLES))
    pickles = yield from _structure(blob, ctx)
    if pickles is None:
        return
    types = _storage_types(pickles[3].run)
    value = pickles[4].value
    keys = value.items if isinstance(value, SymList) else value
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        yield rules.LEGACY_HEADER.at(
            ctx.where(blob, offset=pickles[4].run.start, detail="storage keys"),
            "the storage-keys pickle is not a list of strings",
            evidence=repr(value)[:200],
        )
        yield ScanIssue("unparsed", "storage region not walked", ctx.where(blob, offset=pickles[4].run.end))
        return
    floats = yield from _walk_storages(blob, ctx, pickles[4].run.end, keys, types)
    if ctx.deep:
        yield from _deep_weights(blob, ctx, floats, pickles[2].value)


def _structure(blob: Blob, ctx: ScanContext) -> Generator[ScanEvent, None, list[LegacyPickle] | None]:
    """The five pickles' values (run again, symbolically, for their results only)."""
    data = blob.view()
    pickles: list[LegacyPickle] = []
    pos = 0
    for label in PICKLES:
        if pos >= len(data):
            break
        item = _run(data, pos, ctx.limits)
        if not item.run.stopped:
            break
        pickles.append(item)
        pos = item.run.end
        del label
    if len(pickles) < len(PICKLES):
        missing = PICKLES[len(pickles)]
        yield rules.LEGACY_HEADER.at(
            ctx.where(blob, offset=pos, detail=missing), f"the {missing} pickle is missing or broken"
        )
        yield ScanIssue("unparsed", "storage region not walked", ctx.where(blob, offset=pos))
        return None
    if not _is_int(pickles[1].value, PROTOCOL_VERSION):
        yield rules.LEGACY_HEADER.at(
            ctx.where(blob, offset=pickles[1].run.start, detail="protocol version"),
            "protocol version is not 1001; torch.load refuses the file after unpickling it",
            evidence=repr(pickles[1].value)[:80],
        )
    return pickles


def _run(data: memoryview, start: int, limits: Limits) -> LegacyPickle:
    machine = PickleMachine(data, start, limits)
    run = machine.run()
    value = machine.stack[-1] if run.stopped and machine.stack else None
    return LegacyPickle(run, value)


def _is_int(value: object, expected: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == expected


def _storage_types(run: PickleRun) -> dict[str, str]:
    """Storage key → storage class name (FloatStorage), from ('storage', type, key, location, numel) ids."""
    types: dict[str, str] = {}
    for pid in run.persistent_ids:
        if isinstance(pid, tuple) and len(pid) >= 4 and pid[0] == "storage" and isinstance(pid[2], str):
            storage_type = pid[1]
            type_name = (
                storage_type.qualname.rsplit(".", 1)[-1] if isinstance(storage_type, GlobalRef) else ""
            )
            types.setdefault(pid[2], type_name)
    return types


def _walk_storages(
    blob: Blob, ctx: ScanContext, start: int, keys: list[str], types: dict[str, str]
) -> Generator[ScanEvent, None, list[weights.FloatTensor]]:
    """Follow each storage's 8-byte element count to the next; nothing else is read. Returns the float
    storages walked, for `--deep`."""
    floats: list[weights.FloatTensor] = []
    offset = start
    for key in keys:
        ctx.check_time()
        element = STORAGE_ELEMENT_SIZES.get(types.get(key, ""))
        if element is None:
            yield ScanIssue(
                "unparsed",
                f"element size of storage {key!r} unknown; storages after it not walked",
                ctx.where(blob, offset=offset, detail=f"storage {key}"),
            )
            return floats
        if offset + SIZE_HEADER > blob.size:
            yield _truncated(blob, ctx, offset, key)
            return floats
        nbytes = int.from_bytes(blob.read_at(offset, SIZE_HEADER), "little") * element
        if offset + SIZE_HEADER + nbytes > blob.size:
            yield _truncated(blob, ctx, offset + SIZE_HEADER + nbytes, key)
            return floats
        dtype = FLOAT_STORAGES.get(types[key])
        if dtype is not None:
            floats.append(weights.FloatTensor(f"storage {key}", dtype, offset + SIZE_HEADER, nbytes))
        offset += SIZE_HEADER + nbytes
    if offset < blob.size:
        extra = blob.size - offset
        yield rules.LEGACY_APPENDED.at(
            ctx.where(blob, offset=offset, detail="after the last storage"),
            f"{extra} bytes follow the last storage",
            evidence=blob.read_at(offset, 16).hex(" "),
        )
        yield _slice(blob, offset, extra, "appended data")
    return floats


def _deep_weights(
    blob: Blob, ctx: ScanContext, floats: list[weights.FloatTensor], sys_info: object
) -> Iterator[ScanEvent]:
    """`--deep` over the float storages: written in the saving machine's byte order, which sys_info
    states (the tar layout has no sys_info and is read as little-endian, as torch.load reads it)."""
    little = sys_info.get_str_key("little_endian") if isinstance(sys_info, SymDict) else True
    if floats and little is False:
        yield ScanIssue(
            "deep-unsupported", "--deep reads little-endian weights only", ctx.where(blob, offset=0)
        )
        return
    yield from weights.scan_tensors(blob, ctx, floats)


def _scan_tar_storages(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    """count, then per storage a (key, location, type) pickle + 8-byte count + bytes, then a views pickle.

    torch.load unpickles every one of these, so each pickle is scanned; the bytes between are skipped.
    """
    data = blob.view()
    pos = yield from scan_pickles(blob, ctx, start=0, max_pickles=1)
    count = _run(data, 0, ctx.limits).value
    assert isinstance(count, int)
    floats: list[weights.FloatTensor] = []
    for index in range(count):
        ctx.check_time()
        header = _run(data, pos, ctx.limits)
        pos = yield from scan_pickles(blob, ctx, start=pos, max_pickles=1)
        record = _storage_record(header.value) if header.run.stopped else None
        key, element, type_name = record or ("", None, "")
        if element is None:
            yield rules.LEGACY_HEADER.at(
                ctx.where(blob, offset=header.run.start, detail=f"storage #{index}"),
                "storage header is not (key, location, storage type) of a known type",
                evidence=repr(header.value)[:200],
            )
            yield ScanIssue("unparsed", "rest of the storages member not walked", ctx.where(blob, offset=pos))
            return
        if pos + SIZE_HEADER > blob.size:
            yield _truncated(blob, ctx, pos, key)
            return
        nbytes = int.from_bytes(blob.read_at(pos, SIZE_HEADER), "little") * element
        if pos + SIZE_HEADER + nbytes > blob.size:
            yield _truncated(blob, ctx, pos + SIZE_HEADER + nbytes, key)
            return
        dtype = FLOAT_STORAGES.get(type_name)
        if dtype is not None:
            floats.append(weights.FloatTensor(f"storage {key}", dtype, pos + SIZE_HEADER, nbytes))
        pos += SIZE_HEADER + nbytes
    if ctx.deep:
        yield from _deep_weights(blob, ctx, floats, None)
    end = yield from scan_pickles(blob, ctx, start=pos, max_pickles=1)  # the storage views
    if end < blob.size:
        yield rules.LEGACY_APPENDED.at(
            ctx.where(blob, offset=end, detail="after the storage views"),
            f"{blob.size - end} bytes follow the storage views",
            evidence=blob.read_at(end, 16).hex(" "),
        )
        yield _slice(blob, end, blob.size - end, "appended data")


def _scan_tar_tensors(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    """count, then per tensor a (key, storage key, type) pickle + ndim, sizes, strides and offset."""
    data = blob.view()
    pos = yield from scan_pickles(blob, ctx, start=0, max_pickles=1)
    count = _run(data, 0, ctx.limits).value
    assert isinstance(count, int)
    for index in range(count):
        ctx.check_time()
        header = _run(data, pos, ctx.limits)
        pos = yield from scan_pickles(blob, ctx, start=pos, max_pickles=1)
        if not header.run.stopped or not _tensor_record(header.value) or pos + 8 > blob.size:
            yield rules.LEGACY_HEADER.at(
                ctx.where(blob, offset=header.run.start, detail=f"tensor #{index}"),
                "tensor header is not (key, storage key, tensor type) followed by its geometry",
                evidence=repr(header.value)[:200],
            )
            yield ScanIssue("unparsed", "rest of the tensors member not walked", ctx.where(blob, offset=pos))
            return
        ndim = int.from_bytes(blob.read_at(pos, 4), "little", signed=True)
        pos += 8 + 16 * max(ndim, 0) + 8  # ndim (+4 unused), sizes, strides, storage offset
        if ndim < 0 or pos > blob.size:
            yield _truncated(blob, ctx, min(pos, blob.size), f"tensor #{index}")
            return
    if pos < blob.size:
        yield rules.LEGACY_APPENDED.at(
            ctx.where(blob, offset=pos, detail="after the last tensor"),
            f"{blob.size - pos} bytes follow the last tensor",
            evidence=blob.read_at(pos, 16).hex(" "),
        )
        yield _slice(blob, pos, blob.size - pos, "appended data")


def _truncated(blob: Blob, ctx: ScanContext, offset: int, key: str) -> ScanEvent:
    return rules.LEGACY_TRUNCATED.at(
        ctx.where(blob, offset=min(offset, blob.size), detail=f"storage {key}"),
        f"the file ends inside storage {key!r}",
    )


def _slice(blob: Blob, offset: int, length: int, element: str) -> Blob:
    return blob.slice(offset, length, element)
