"""Legacy tf.keras SavedModel metadata (`keras_metadata.pb`), recognised by content: every node's JSON.

tf.keras (TF <= 2.15) and tf_keras write it next to saved_model.pb; loading the directory rebuilds each
node from the Keras config in its metadata JSON, whatever the node's identifier says, so every node
is judged with the Keras config judge (Lambda bytecode, modules and classes outside Keras).
Wire layout, seen on files tf_keras 2.21 writes: `SavedMetadata { repeated SavedObject nodes = 1 }`,
`SavedObject { int32 node_id = 2; string node_path = 3; string identifier = 4; string metadata = 5;
VersionDef version = 6 }`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from modelshield.analysis.protobuf import LEN, VARINT, ProtobufError, WireField, WireReader
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Finding, Location, ScanIssue
from modelshield.formats.base import ScanEvent

name = "keras-metadata"
version = "1"

NODES = 1
NODE_FIELDS = {2: VARINT, 3: LEN, 4: LEN, 5: LEN, 6: LEN}  # node_id, node_path, identifier, metadata, version
IDENTIFIER_PREFIX = "_tf_keras_"
MAX_NAME = 512
MAX_SNIFF_FIELDS = 1 << 16  # top-level fields before the first node, and the first node's fields
SNIFF_HEAD = 256
_JSON_SPACE = b" \t\r\n"
_NESTED_LAYER = re.compile(r"^.*layers\[\d+\]\.?")  # a model config's copy of a layer


@dataclass
class SavedObject:
    """One node: its path, identifier and where its metadata JSON is (the last copy wins, as in protobuf)."""

    path: str = ""
    identifier: str = ""
    metadata: WireField | None = None


def sniff(blob: Blob) -> bool:
    """The first node reads as a SavedObject whose identifier is a tf.keras one or whose metadata is a
    JSON object (the loader revives any node from its JSON); a damaged file that names a tf.keras
    identifier in its head is claimed too, so its scan reports it. Fields the protobuf parser would
    skip (other top-level fields, fields of the wrong wire type) are skipped here too, up to a budget."""
    reader = WireReader(blob, max_fields=MAX_SNIFF_FIELDS)
    try:
        for f in reader.fields(0, reader.size):
            if f.number == NODES and f.wire_type == LEN:
                return _looks_like_node(reader, f)
    except ProtobufError:
        if reader.fields_read > MAX_SNIFF_FIELDS:
            return _padded(blob)
        return IDENTIFIER_PREFIX.encode() in blob.head(SNIFF_HEAD)
    return False


def _padded(blob: Blob) -> bool:
    """Past the budget every field so far was well formed: padding in front of the nodes, which the
    loader skips. It is claimed, so the scan (held to the file's limits) judges what follows; unless
    the bytes also start a pickle (runs of some opcodes read as valid fields), which the pickle
    handler then reads (a protobuf that is not a whole pickle comes out malformed, never clean)."""
    from modelshield.formats.pickle import PROBE_BYTES, looks_like_pickle

    return not looks_like_pickle(blob.head(PROBE_BYTES + 1))


def _looks_like_node(reader: WireReader, node: WireField) -> bool:
    saved = _read_node(reader, node)
    if saved.identifier.startswith(IDENTIFIER_PREFIX):
        return True
    head = reader.raw(saved.metadata, SNIFF_HEAD) if saved.metadata is not None else b""
    return head.lstrip(_JSON_SPACE).startswith(b"{")


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    """Each finding once per layer: a model node's config repeats its layers' configs (and again under
    model_config), so a layer found there and at its own node is reported at its own node."""
    kept: dict[tuple[str, str, str | None, str], Finding] = {}
    try:
        for event in _judged_nodes(blob, ctx):
            if not isinstance(event, Finding):
                yield event
                continue
            detail = event.location.detail or ""
            in_layer = _NESTED_LAYER.sub("", detail).strip()
            key = (event.rule_id, event.message, event.evidence, in_layer)
            if key not in kept or detail == in_layer:
                kept[key] = event
    except Exception:
        yield from kept.values()  # what was found before a limit stopped the scan still counts
        raise
    yield from kept.values()


def _judged_nodes(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    from modelshield.formats.keras import scan_config  # imported by a scan, not by every protobuf sniffed

    reader = WireReader(blob, max_depth=ctx.limits.max_protobuf_depth, tick=ctx.check_time)
    index = 0
    try:
        for f in reader.fields(0, reader.size):
            if f.number != NODES or f.wire_type != LEN:
                continue  # skipped by the protobuf parser the loader uses
            node = _read_node(reader, f)
            where = Location((*blob.chain, node.path or f"node #{index}"), offset=f.offset)
            index += 1
            if node.metadata is None:
                yield ScanIssue("unparsed", f"node {node.path!r} has no metadata JSON", where)
                continue
            ctx.check_time()  # the reader's own tick counts fields, and a node is only a few
            raw = reader.raw(node.metadata, ctx.limits.max_config_bytes + 1)
            yield from scan_config(raw, where, ctx, "node metadata JSON")
    except ProtobufError as exc:
        yield ScanIssue(
            "unparsed",
            f"keras_metadata protobuf cannot be read: {exc.reason}; the nodes after it were not analysed",
            Location(blob.chain, offset=exc.offset),
        )


def _read_node(reader: WireReader, node: WireField) -> SavedObject:
    out = SavedObject()
    for f in reader.message(node, 1):
        if NODE_FIELDS.get(f.number, f.wire_type) != f.wire_type:
            continue  # a field of the wrong wire type is an unknown field to protobuf
        if f.number == 3:
            out.path = reader.text(f, MAX_NAME)
        elif f.number == 4:
            out.identifier = reader.text(f, MAX_NAME)
        elif f.number == 5:
            out.metadata = f
    return out
