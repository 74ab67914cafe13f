"""HDF5 files and legacy Keras `.h5` models: the structures h5py writes by default are read in-process by
`hdf5_structure`; anything else is walked by h5py in an isolated child process (native HDF5 parsing has
its own CVEs). This side judges the plain data either reports and the user block."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from typing import Any

from modelshield.analysis.isolated import BlobTooLarge, IsolationLimits, blob_as_file, run_module
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.engine.limits import MiB
from modelshield.engine.rules import Rule
from modelshield.formats.base import ScanEvent
from modelshield.formats.hdf5_structure import DatasetMessages, read_report
from modelshield.formats.hdf5_weights import deep_datasets, deep_probed
from modelshield.formats.keras import scan_config as scan_keras_config
from modelshield.formats.signatures import HDF5_SIGNATURE, hdf5_superblock, superblock_offset
from modelshield.rules import hdf5 as rules

name = "hdf5"
version = "1"

SIGNATURE = HDF5_SIGNATURE
PROBE_MODULE = "modelshield.analysis.hdf5_probe"
USER_BLOCK_CHECK = 1 * MiB
MAX_FINDINGS_PER_RULE = 32
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def sniff(blob: Blob) -> bool:
    return hdf5_superblock(blob)


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    offset = superblock_offset(blob) if blob.random_access else 0
    if offset:
        yield from _user_block(blob, ctx, offset)
    datasets: list[DatasetMessages] | None = [] if ctx.deep else None
    report = read_report(blob, offset, datasets) if blob.random_access and offset is not None else None
    if report is not None:
        yield from _judge(blob, ctx, report)
        if datasets is not None:
            yield from deep_datasets(blob, ctx, datasets)
        return
    if importlib.util.find_spec("h5py") is None:
        yield _not_analysed(blob, "h5py is not installed (pip install 'modelshield[hdf5]')")
        return
    try:
        with blob_as_file(blob, ctx.limits.max_member_bytes) as (path, fds):
            arguments = [path, "--datasets"] if ctx.deep else [path]
            run = run_module(PROBE_MODULE, arguments, IsolationLimits.from_limits(ctx.limits), pass_fds=fds)
    except BlobTooLarge as exc:
        yield ScanIssue("limit", f"HDF5 content not analysed: {exc}", Location(blob.chain))
        return
    except OSError as exc:
        yield ScanIssue("error", f"HDF5 content not handed to the parser: {exc}", Location(blob.chain))
        return
    if run.document is None:
        yield ScanIssue(
            "isolation",
            f"the isolated HDF5 parser failed ({run.failure}); the file may be crafted to crash HDF5 "
            "and is not reported clean",
            Location(blob.chain),
        )
        return
    yield from _judge(blob, ctx, run.document)
    if ctx.deep:
        yield from _deep_probed(blob, ctx, run.document)


def _deep_probed(blob: Blob, ctx: ScanContext, report: dict[str, Any]) -> Iterator[ScanEvent]:
    """`--deep` over the datasets the h5py probe located; their bytes are read from the blob itself."""
    entries = report.get("datasets")
    if not blob.random_access or not isinstance(entries, list):
        yield ScanIssue(
            "deep-unsupported",
            "--deep did not read this HDF5 file's datasets (the file is not randomly accessible here, "
            "or h5py did not describe them)",
            Location(blob.chain),
        )
        return
    yield from deep_probed(blob, ctx, [entry for entry in entries if isinstance(entry, dict)])


def _not_analysed(blob: Blob, why: str) -> ScanIssue:
    return ScanIssue(
        "unsupported",
        f"HDF5 file (Keras H5 or other) recognised, but its contents are not analysed: {why}; "
        "the file is not reported clean",
        Location(blob.chain),
    )


def _user_block(blob: Blob, ctx: ScanContext, size: int) -> Iterator[ScanEvent]:
    head = blob.read_at(0, min(size, USER_BLOCK_CHECK))
    if size <= USER_BLOCK_CHECK and not head.strip(b"\x00"):
        return  # an all-zero user block is what h5py writes when asked to reserve one
    yield rules.HDF5_USER_BLOCK.at(
        ctx.where(blob, offset=0, detail="user block"),
        f"{size} bytes of user block before the HDF5 superblock",
        evidence=head[:64].hex(" "),
    )
    yield blob.slice(0, size, "(user block)")


def _judge(blob: Blob, ctx: ScanContext, report: dict[str, Any]) -> Iterator[ScanEvent]:
    where = Location(blob.chain)
    if isinstance(report.get("unavailable"), str):
        yield _not_analysed(blob, f"h5py could not be imported ({report['unavailable']})")
        return
    if isinstance(report.get("error"), str):
        yield ScanIssue("unparsed", f"HDF5 file does not open: {report['error']}", where)
    yield from _references(blob, ctx, report)
    yield from _code_attributes(blob, ctx, _entries(report, "code_attributes"))
    yield from _keras(blob, ctx, report.get("keras"))
    problems = [str(p) for p in _list(report.get("problems"))]
    if problems:
        yield ScanIssue("unparsed", f"{len(problems)} HDF5 objects not read, e.g. {problems[0][:200]}", where)
    truncated = [str(t) for t in _list(report.get("truncated"))]
    if truncated:
        yield ScanIssue("limit", f"HDF5 walk stopped early: {'; '.join(truncated)[:300]}", where)


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _entries(report: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [entry for entry in _list(report.get(key)) if isinstance(entry, dict)]


def escapes(path: str) -> bool:
    """Whether a referenced file name is absolute or climbs out of the file's directory."""
    if path.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(path):
        return True
    return ".." in re.split(r"[\\/]", path)


def _references(blob: Blob, ctx: ScanContext, report: dict[str, Any]) -> Iterator[ScanEvent]:
    kinds: tuple[tuple[str, Rule, str], ...] = (
        ("external_links", rules.HDF5_EXTERNAL_LINK, "external link to {file}:{target}"),
        ("external_storage", rules.HDF5_EXTERNAL_STORAGE, "raw data stored in external file {file}"),
        ("virtual_sources", rules.HDF5_EXTERNAL_STORAGE, "virtual dataset maps {file}:{dataset}"),
    )
    counts: dict[str, int] = {}
    for key, rule, text in kinds:
        for entry in _entries(report, key):
            file_name = str(entry.get("file", ""))
            if key == "virtual_sources" and file_name == ".":
                continue  # a virtual dataset over the same file reads nothing else
            chosen = rules.HDF5_PATH_ESCAPE if escapes(file_name) else rule
            counts[chosen.id] = counts.get(chosen.id, 0) + 1
            if counts[chosen.id] > MAX_FINDINGS_PER_RULE:
                continue
            described = text.format(
                file=file_name[:200], target=str(entry.get("target", ""))[:200],
                dataset=str(entry.get("dataset", ""))[:200],
            )  # fmt: skip
            outside = " (outside the model's directory)" if chosen is rules.HDF5_PATH_ESCAPE else ""
            yield chosen.at(
                ctx.where(blob, detail=str(entry.get("path", "?"))[:200]),
                f"{described}{outside}",
                evidence=file_name[:200],
            )


def _code_attributes(blob: Blob, ctx: ScanContext, entries: list[dict[str, Any]]) -> Iterator[ScanEvent]:
    for entry in entries[:MAX_FINDINGS_PER_RULE]:
        reasons = ", ".join(str(r) for r in _list(entry.get("reasons")))
        obj = str(entry.get("path", "?"))[:200]
        attribute = str(entry.get("name", "?"))[:100]
        yield rules.HDF5_CODE_ATTRIBUTE.at(
            ctx.where(blob, detail=f"{obj} attribute {attribute}"),
            f"attribute {attribute} of {obj} ({entry.get('size')} bytes) holds {reasons[:200]}",
            evidence=str(entry.get("sample", ""))[:200],
        )


def _keras(blob: Blob, ctx: ScanContext, attributes: object) -> Iterator[ScanEvent]:
    """A legacy Keras H5 model: its configs are judged as the Keras v3 config.json is."""
    if not isinstance(attributes, dict):
        return
    for attribute in ("model_config", "training_config"):
        text = attributes.get(attribute)
        if isinstance(text, str):
            yield from scan_keras_config(text.encode("utf-8"), Location((*blob.chain, attribute)), ctx)
