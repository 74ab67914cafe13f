"""TorchServe model archives (.mar): the manifest's handler, model code and requirements; members scanned."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.engine.limits import LimitExceeded
from modelshield.formats.base import ScanEvent
from modelshield.formats.pytorch_zip import member_location, sniff_archive
from modelshield.formats.zip_reader import (
    ZipArchive,
    member_blobs,
    read_member_bytes,
    read_zip,
    starts_with_zip_header,
    zip_findings,
)
from modelshield.rules import pytorch as rules

name = "torchserve"
version = "1"

MANIFEST = "MAR-INF/MANIFEST.json"
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_REQUIREMENTS_BYTES = 64 * 1024
# Handlers TorchServe ships (ts.torch_handler.*); any other handler is code from the archive.
BUILTIN_HANDLERS = frozenset(
    {
        "image_classifier", "image_segmenter", "object_detector", "text_classifier", "base_handler",
        "vision_handler", "text_handler", "dense", "request_envelope",
    }
)  # fmt: skip


def sniff(blob: Blob) -> bool:
    archive = sniff_archive(blob)
    return archive is not None and archive.member(MANIFEST) is not None


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    archive = read_zip(blob, ctx)
    yield from zip_findings(blob, ctx, archive)
    manifest = yield from _manifest(blob, ctx, archive)
    if manifest is not None:
        yield from manifest_findings(blob, ctx, archive, manifest)
    yield from member_blobs(blob, ctx, archive)


def _manifest(
    blob: Blob, ctx: ScanContext, archive: ZipArchive
) -> Generator[ScanEvent, None, dict[str, Any] | None]:
    member = archive.member(MANIFEST)
    if member is None:
        return None
    where = member_location(blob, archive, member)
    try:
        raw = read_member_bytes(blob, ctx, member, MAX_MANIFEST_BYTES + 1)
    except (ValueError, OSError, LimitExceeded) as exc:
        yield ScanIssue("unparsed", f"manifest not read: {exc}", where)
        return None
    if len(raw) > MAX_MANIFEST_BYTES:
        yield ScanIssue("limit", f"manifest larger than {MAX_MANIFEST_BYTES} bytes not parsed", where)
        return None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        yield ScanIssue("unparsed", f"manifest is not JSON: {exc}", where)
        return None
    model = document.get("model") if isinstance(document, dict) else None
    if not isinstance(model, dict):
        yield ScanIssue("unparsed", "manifest has no 'model' object", where)
        return None
    return model


def manifest_findings(
    blob: Blob, ctx: ScanContext, archive: ZipArchive, model: dict[str, Any]
) -> Iterator[ScanEvent]:
    """What serving the archive would run, install and load, named by its member."""
    manifest_where = member_location(blob, archive, archive.member(MANIFEST))  # type: ignore[arg-type]
    names = set(archive.names())
    handler = model.get("handler")
    if isinstance(handler, str) and handler:
        handler_file = _handler_file(handler, names)
        if handler_file is not None:
            yield rules.SERVE_CUSTOM_HANDLER.at(
                _file_location(blob, archive, handler_file, "handler"),
                f"serving runs the archive's own handler {handler_file} (manifest handler {handler!r:.120})",
                evidence=f"handler: {handler:.200}",
            )
        elif _is_custom_handler(handler):
            yield rules.SERVE_CUSTOM_HANDLER.at(
                _with_detail(manifest_where, "model.handler"),
                f"handler {handler!r:.120} is not one TorchServe ships; serving imports it",
                evidence=f"handler: {handler:.200}",
            )
    model_file = model.get("modelFile")
    if isinstance(model_file, str) and model_file:
        if model_file in names:
            yield rules.SERVE_CUSTOM_HANDLER.at(
                _file_location(blob, archive, model_file, "modelFile"),
                f"serving imports the archive's model definition {model_file}",
                evidence=f"modelFile: {model_file:.200}",
            )
        else:
            yield _missing(manifest_where, "modelFile", model_file)
    requirements = model.get("requirementsFile")
    if isinstance(requirements, str) and requirements:
        if requirements in names:
            yield rules.SERVE_REQUIREMENTS.at(
                _file_location(blob, archive, requirements, "requirementsFile"),
                f"serving may pip install the packages in {requirements}",
                evidence=_requirements_preview(blob, ctx, archive, requirements),
            )
        else:
            yield _missing(manifest_where, "requirementsFile", requirements)
    serialized = model.get("serializedFile")
    if isinstance(serialized, str) and serialized and serialized not in names:
        yield _missing(manifest_where, "serializedFile", serialized)


def _handler_file(handler: str, names: set[str]) -> str | None:
    """The archive member TorchServe would import for `handler` ("file.py", "file", "file:function")."""
    module = handler.split(":", 1)[0]
    for candidate in (module, f"{module}.py"):
        if candidate in names:
            return candidate
    return None


def _is_custom_handler(handler: str) -> bool:
    module = handler.split(":", 1)[0]
    if module.endswith(".py") or ":" in handler:
        return True
    short = module.removeprefix("ts.torch_handler.")
    return short not in BUILTIN_HANDLERS


def _requirements_preview(blob: Blob, ctx: ScanContext, archive: ZipArchive, member_name: str) -> str:
    member = archive.member(member_name)
    try:
        raw = read_member_bytes(blob, ctx, member, MAX_REQUIREMENTS_BYTES) if member else b""
    except (ValueError, OSError, LimitExceeded):
        return ""
    lines = [line.strip() for line in raw.decode("utf-8", "replace").splitlines()]
    return "; ".join(line for line in lines if line and not line.startswith("#"))[:300]


def _file_location(blob: Blob, archive: ZipArchive, member_name: str, key: str) -> Location:
    member = archive.member(member_name)
    assert member is not None
    return member_location(blob, archive, member, detail=f"manifest model.{key}")


def _with_detail(where: Location, detail: str) -> Location:
    return Location(chain=where.chain, detail=detail)


def _missing(where: Location, key: str, value: str) -> ScanEvent:
    return rules.SERVE_MISSING_FILE.at(
        _with_detail(where, f"model.{key}"), f"manifest {key} {value!r:.120} is not in the archive"
    )


# A zip behind other data is read a second time, after the format that starts at byte 0.
anchored = starts_with_zip_header
