"""The dispatcher: identification by content, recursion bounds, and failures kept to their blob."""

from __future__ import annotations

from collections.abc import Iterator

from modelshield.engine.blob import Blob, BufferBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.dispatch import Dispatcher
from modelshield.engine.limits import Limits
from modelshield.formats.base import ScanEvent
from modelshield.policy import Policy


class _Exploding:
    name = "exploding"
    version = "1"

    def sniff(self, blob: Blob) -> bool:
        return blob.head(4) == b"BOOM"

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        yield BufferBlob(b"inner", blob.child_chain("inner"))
        raise RuntimeError("parser bug")


class _Russian:
    """Every blob contains itself once more: only the depth limit stops it."""

    name = "russian"
    version = "1"

    def sniff(self, blob: Blob) -> bool:
        return blob.head(3) == b"DOL"

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        yield BufferBlob(b"DOLL", blob.child_chain("doll"))


def _ctx(**limits: int) -> ScanContext:
    return ScanContext(limits=Limits(**limits), policy=Policy())


def test_a_crashing_handler_becomes_an_issue_and_keeps_its_children() -> None:
    result = Dispatcher([_Exploding()]).scan(BufferBlob(b"BOOM", ("f.bin",)), _ctx())
    assert [i.kind for i in result.issues] == ["error"]
    assert "parser bug" in result.issues[0].message
    assert result.issues[0].location.chain == ("f.bin",)
    assert [c.name for c in result.tree.children] == ["inner"]


def test_nesting_is_bounded_and_reported() -> None:
    result = Dispatcher([_Russian()]).scan(BufferBlob(b"DOLL", ("f.bin",)), _ctx(max_nesting_depth=5))
    depth, node = 0, result.tree
    while node.children:
        node, depth = node.children[0], depth + 1
    assert depth == 6 and node.format == "not-scanned"  # five nested levels scanned, the sixth refused
    assert [i.location.detail for i in result.issues] == ["max_nesting_depth"]
    assert len(result.issues[0].location.chain) == 7


def test_unrecognised_content_is_data_and_clean() -> None:
    result = Dispatcher([_Russian()]).scan(BufferBlob(b"just text\n", ("readme.txt",)), _ctx())
    assert result.tree.format == "data"
    assert result.findings == [] and result.issues == []
