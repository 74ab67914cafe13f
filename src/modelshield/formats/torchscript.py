"""TorchScript archives (torch.jit.save): checkpoint checks plus what the code/ sources reach."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import ScanIssue, Severity
from modelshield.engine.limits import LimitExceeded, MiB
from modelshield.engine.rules import Rule
from modelshield.formats.base import ScanEvent
from modelshield.formats.pytorch_zip import (
    TorchLayout,
    layout_for,
    member_location,
    record_checks,
    storage_checks,
    unread_members,
)
from modelshield.formats.zip_reader import (
    member_blobs,
    read_member_bytes,
    read_zip,
    starts_with_zip_header,
    zip_findings,
)
from modelshield.rules import pytorch as rules

name = "torchscript"
version = "1"

MAX_CODE_BYTES = 16 * MiB
TORCHSCRIPT_RECORDS = (
    "code/",
    "constants.pkl",
    "constants/",
    "bytecode.pkl",
    ".data/",
    "traced_inputs.pkl",
    "traced_inputs/",
)


def sniff(blob: Blob) -> bool:
    layout = layout_for(blob)
    if layout is None or layout.record("data.pkl") is None or layout.record("constants.pkl") is None:
        return False
    return any(m.name.startswith(f"{layout.prefix}/code/") for m in layout.archive.members)


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    archive = read_zip(blob, ctx)
    yield from zip_findings(blob, ctx, archive)
    layout = TorchLayout(archive, archive.members[0].name.split("/", 1)[0])
    yield from record_checks(blob, ctx, layout)
    referenced = yield from storage_checks(blob, ctx, layout, "data.pkl", "data")
    constants = yield from storage_checks(blob, ctx, layout, "constants.pkl", "constants")
    known = TORCHSCRIPT_RECORDS + tuple(f"constants/{key}" for key in constants)
    yield from unread_members(blob, ctx, layout, referenced, extra_known=known, loader="torch.jit.load")
    yield from code_findings(blob, ctx, layout)
    yield from member_blobs(blob, ctx, archive)


def code_findings(blob: Blob, ctx: ScanContext, layout: TorchLayout) -> Iterator[ScanEvent]:
    """Parse every code/**.py member (never run it) and report what its calls reach."""
    for member in layout.archive.members:
        relative = layout.relative(member)
        if relative is None or not relative.startswith("code/") or not relative.endswith(".py"):
            continue
        where = member_location(blob, layout.archive, member)
        if member.uncompressed_size > MAX_CODE_BYTES:
            yield ScanIssue("limit", f"code member of {member.uncompressed_size} bytes not analysed", where)
            continue
        try:
            text = read_member_bytes(blob, ctx, member, MAX_CODE_BYTES).decode("utf-8", errors="replace")
        except (ValueError, OSError, LimitExceeded) as exc:
            yield ScanIssue("unparsed", f"code member not read: {exc}", where)
            continue
        hits, parsed = analyse_source(text)
        if not parsed:
            yield rules.TS_UNPARSED_CODE.at(where, f"{member.name!r} is not valid Python syntax")
        for hit in hits:
            severity = None
            if hit.at_load and hit.rule.severity < Severity.CRITICAL:
                severity = Severity.CRITICAL if hit.rule is not rules.TS_CUSTOM_OP else Severity.HIGH
            when = "while torch.jit.load runs" if hit.at_load else "when the model runs"
            yield hit.rule.at(
                member_location(blob, layout.archive, member, detail=f"line {hit.line}, in {hit.scope}"),
                f"{hit.name} in {hit.scope} ({hit.why}); it runs {when}",
                evidence=_line(text, hit.line),
                severity=severity,
            )


def _line(text: str, number: int) -> str:
    lines = text.splitlines()
    return lines[number - 1].strip()[:200] if 0 < number <= len(lines) else ""


# Operator namespaces PyTorch itself (and its first-party domain libraries) register.
BUILTIN_OP_NAMESPACES = frozenset(
    {
        "aten", "prim", "prims", "quantized", "_quantized", "sparse", "mkldnn", "mkl", "onednn",
        "quantization", "profiler", "_caffe2", "xnnpack", "_nnapi", "fbgemm", "cuda", "torchvision",
        "torchaudio", "torchtext", "image", "rngprims", "inductor_prims", "_native",
    }
)  # fmt: skip
NETWORK_OP_NAMESPACES = frozenset(
    {"c10d", "_c10d_functional", "_c10d_functional_autograd", "_dtensor", "symm_mem"}
)
BUILTIN_CLASS_NAMESPACES = frozenset({"quantized", "xnnpack", "sparse", "_nnapi", "mkldnn", "onednn", "rnn"})
FILE_OPS = frozenset({"save", "from_file"})
PYTHON_ESCAPES = frozenset(
    {
        "open", "exec", "eval", "compile", "__import__", "os", "posix", "nt", "subprocess", "socket",
        "sys", "builtins", "__builtins__", "__builtin__", "importlib", "shutil", "pickle", "marshal",
        "urllib", "requests", "http", "pty", "globals", "locals", "breakpoint", "runpy",
        "webbrowser", "pdb", "commands",
    }
)  # fmt: skip
BARE_ESCAPES = frozenset({"__import__", "__builtins__", "__builtin__", "exec", "eval", "compile", "open"})
_NAME_TOKEN = re.compile(r"[A-Za-z_][\w]*(?:\s*\.\s*[A-Za-z_]\w*)*")


@dataclass(frozen=True)
class CodeHit:
    """One reference in TorchScript source that reaches outside the model."""

    rule: Rule
    name: str
    line: int
    scope: str
    why: str

    @property
    def at_load(self) -> bool:
        """__setstate__ methods run while torch.jit.load unpickles data.pkl."""
        return self.scope.endswith("__setstate__")


def classify(dotted: str) -> tuple[Rule, str] | None:
    """The rule a dotted name falls under, with a reason, or None for ordinary TorchScript."""
    parts = dotted.split(".")
    if parts[:2] == ["torch", "ops"]:
        parts = parts[1:]
    if parts[:3] == ["__torch__", "torch", "classes"]:
        parts = parts[1:]
    root = parts[0]
    if "load_library" in parts or root == "ctypes":
        return rules.TS_LIBRARY_LOAD, "loads a native library"
    if root in PYTHON_ESCAPES:
        return rules.TS_PYTHON_ESCAPE, f"{root} is not TorchScript"
    if root == "torch" and len(parts) == 2 and parts[1] in FILE_OPS:
        return rules.TS_FILE_ACCESS, f"aten::{parts[1]} touches the file system"
    if root == "ops" and len(parts) >= 3:
        namespace, op = parts[1], parts[2]
        if namespace == "aten" and op in FILE_OPS:
            return rules.TS_FILE_ACCESS, f"aten::{op} touches the file system"
        if namespace in NETWORK_OP_NAMESPACES:
            return rules.TS_NETWORK_OP, f"{namespace} operators communicate over the network"
        if namespace not in BUILTIN_OP_NAMESPACES:
            return rules.TS_CUSTOM_OP, f"operator namespace {namespace!r} is not PyTorch's"
    if parts[:2] == ["torch", "classes"] and len(parts) >= 3:
        namespace = parts[2]
        if namespace == "c10d" or namespace == "dist_c10d":
            return rules.TS_NETWORK_OP, "c10d classes communicate over the network"
        if namespace not in BUILTIN_CLASS_NAMESPACES:
            return rules.TS_CUSTOM_CLASS, f"custom class namespace {namespace!r} is not PyTorch's"
    return None


class _Finder(ast.NodeVisitor):
    """Collects dotted names (maximal attribute chains) with their line and enclosing class/method."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.hits: list[CodeHit] = []

    def _note(self, dotted: str, line: int) -> None:
        verdict = classify(dotted)
        if verdict is not None:
            self.hits.append(
                CodeHit(verdict[0], dotted, line, ".".join(self.scope) or "<module>", verdict[1])
            )

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = _dotted(node)
        if dotted is None:
            self.generic_visit(node)
        else:
            self._note(dotted, node.lineno)

    def visit_Name(self, node: ast.Name) -> None:
        # a bare name is only suspicious when it is a builtin escape; a variable may be called anything
        if node.id in BARE_ESCAPES:
            self._note(node.id, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name):
            self._note(node.func.id, node.lineno)
        else:
            self.visit(node.func)
        for child in [*node.args, *node.keywords]:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._note(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._note(node.module or "", node.lineno)


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def analyse_source(text: str) -> tuple[list[CodeHit], bool]:
    """Hits in one code member, and whether it parsed (unparsed code is searched as text)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _scan_text(text), False
    finder = _Finder()
    try:
        finder.visit(tree)
    except RecursionError:
        return _scan_text(text), False
    return _unique(finder.hits), True


def _scan_text(text: str) -> list[CodeHit]:
    hits = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _NAME_TOKEN.finditer(line):
            dotted = re.sub(r"\s+", "", match.group(0))
            verdict = classify(dotted)
            if verdict is not None:
                hits.append(CodeHit(verdict[0], dotted, number, "<unparsed>", verdict[1]))
    return _unique(hits)


def _unique(hits: list[CodeHit]) -> list[CodeHit]:
    seen: dict[tuple[str, str], CodeHit] = {}
    for hit in hits:
        seen.setdefault((hit.name, hit.scope), hit)
    return list(seen.values())


# A zip behind other data is read a second time, after the format that starts at byte 0.
anchored = starts_with_zip_header
