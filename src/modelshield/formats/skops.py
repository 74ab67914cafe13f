"""skops persistence files: a zip with schema.json naming every type the loader rebuilds; each is judged."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

from modelshield.analysis.callables import CallableJudge, Judgement
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
from modelshield.rules import skops as rules

name = "skops"
version = "1"

SCHEMA = "schema.json"
MAX_NODES = 2_000_000
MAX_FINDINGS_PER_RULE = 32
TIME_CHECK_EVERY = 1 << 14
LOADERS = frozenset(
    {
        "BytearrayNode", "BytesNode", "ConstructorFromReduceNode", "DefaultDictNode", "DictNode",
        "FunctionNode", "JsonNode", "ListNode", "MethodNode", "ObjectNode", "OperatorFuncNode",
        "PartialNode", "SetNode", "SliceNode", "TupleNode", "TypeNode", "DTypeNode", "MaskedArrayNode",
        "NdArrayNode", "RandomGeneratorNode", "RandomStateNode", "SparseMatrixNode", "LossNode", "TreeNode",
        "ReduceNode", "SGDNode", "BunchNode",
    }
)  # fmt: skip
"""Node loaders skops has shipped; another name is not something skops itself wrote."""
CALLED_LOADERS = frozenset({"FunctionNode", "MethodNode", "OperatorFuncNode", "PartialNode"})
"""Loaders whose named object is a callable handed to the model (judged as a call, not a rebuild)."""


def sniff(blob: Blob) -> bool:
    archive = sniff_archive(blob)
    return archive is not None and archive.member(SCHEMA) is not None


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    archive = read_zip(blob, ctx)
    yield from zip_findings(blob, ctx, archive)
    schema = yield from _schema(blob, ctx, archive)
    if schema is not None:
        member = archive.member(SCHEMA)
        assert member is not None
        yield from schema_findings(member_location(blob, archive, member), ctx, schema)
    yield from member_blobs(blob, ctx, archive)


def _schema(blob: Blob, ctx: ScanContext, archive: ZipArchive) -> Generator[ScanEvent, None, Any]:
    member = archive.member(SCHEMA)
    assert member is not None
    where = member_location(blob, archive, member)
    try:
        raw = read_member_bytes(blob, ctx, member, ctx.limits.max_config_bytes + 1)
    except (ValueError, OSError, LimitExceeded) as exc:
        yield ScanIssue("unparsed", f"schema.json not read: {exc}", where)
        return None
    if len(raw) > ctx.limits.max_config_bytes:
        yield ScanIssue(
            "limit",
            f"schema.json larger than {ctx.limits.max_config_bytes} bytes not parsed (max_config_bytes)",
            where,
        )
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        yield ScanIssue("unparsed", f"schema.json is not JSON: {exc}", where)
        return None


def schema_findings(where: Location, ctx: ScanContext, schema: Any) -> Iterator[ScanEvent]:
    """Judge every type reference in the schema tree (iteratively: depth costs no stack)."""
    judge = CallableJudge(ctx.policy)
    reported: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    stack: list[tuple[Any, str]] = [(schema, "$")]
    nodes = 0
    while stack:
        node, path = stack.pop()
        nodes += 1
        if nodes % TIME_CHECK_EVERY == 0:
            ctx.check_time()
        if nodes > MAX_NODES:
            yield ScanIssue(
                "limit", f"schema.json has more than {MAX_NODES} values; the rest was not judged", where
            )
            return
        if isinstance(node, list):
            stack.extend((child, f"{path}[{i}]") for i, child in reversed(list(enumerate(node))))
            continue
        if not isinstance(node, dict):
            continue
        for key, reference in _references(node):
            if (key, reference) in seen:
                continue
            seen.add((key, reference))
            yield from _judge(judge, where, path, key, reference, reported)
        stack.extend((child, f"{path}.{k}") for k, child in reversed(list(node.items())))


def _references(node: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(what, name) for each reference a schema node makes: its type or callable, and its loader."""
    module, cls, loader = node.get("__module__"), node.get("__class__"), node.get("__loader__")
    if isinstance(loader, str) and loader not in LOADERS:
        yield "loader", loader
    if isinstance(module, str) and isinstance(cls, str):
        kind = "call" if loader in CALLED_LOADERS else "type"
        yield kind, f"{module}.{cls}"
        content = node.get("content")
        if loader == "MethodNode" and isinstance(content, dict) and isinstance(content.get("func"), str):
            yield "call", f"{module}.{cls}.{content['func']}"
    elif module is not None or cls is not None:
        yield "type", f"{module!r}.{cls!r}"


def _judge(
    judge: CallableJudge, where: Location, path: str, kind: str, reference: str, reported: dict[str, int]
) -> Iterator[ScanEvent]:
    location = Location(where.chain, detail=path[:200])
    if kind == "loader":
        rule = rules.UNKNOWN_TYPE
        message = f"schema node uses loader {reference[:120]!r}, which skops does not ship"
        verdict = None
    else:
        verdict = judge.judge(reference, rebuild=kind == "type")
        if verdict.judgement is Judgement.SAFE:
            return
        rule = rules.DANGEROUS_TYPE if verdict.judgement is Judgement.DANGEROUS else rules.UNKNOWN_TYPE
        what = "calls" if kind == "call" else "rebuilds"
        message = f"loading {what} {reference[:200]}: {verdict.reason}"
    reported[rule.id] = reported.get(rule.id, 0) + 1
    if reported[rule.id] > MAX_FINDINGS_PER_RULE:
        return
    yield rule.at(
        location,
        message,
        evidence=reference[:300],
        category=verdict.category if verdict is not None and verdict.category is not None else None,
    )


# A zip behind other data is read a second time, after the format that starts at byte 0.
anchored = starts_with_zip_header
