"""Jinja chat templates: parse (never render) and find sandbox escapes, dunder access and computed names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from modelshield.engine.findings import Finding, Location, ScanIssue
from modelshield.engine.limits import DEFAULT_LIMITS
from modelshield.rules import gguf as rules

if TYPE_CHECKING:
    from jinja2 import nodes as jnodes

MAX_FOLDED_CHARS = 4096
"""Constant folding of string expressions stops beyond this length."""

SNIPPET_CHARS = 200

TEMPLATE_GLOBALS = frozenset(
    {
        "cycler",
        "joiner",
        "namespace",
        "lipsum",
        "range",
        "dict",
        "self",
        "request",
        "config",
        "url_for",
        "get_flashed_messages",
        "g",
        "session",
    }
)
"""Globals of Jinja (and of Flask's Jinja) whose functions lead to a module's __globals__."""

DANGEROUS_NAMES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "popen",
        "popen2",
        "spawnv",
        "spawnl",
        "execv",
        "execve",
        "check_output",
        "getoutput",
        "getstatusoutput",
        "eval",
        "exec",
        "execfile",
        "compile",
        "import",
        "__import__",
        "import_module",
        "importlib",
        "builtins",
        "__builtins__",
        "__builtin__",
        "sys",
        "modules",
        "pty",
        "socket",
    }
)
"""Names no chat template needs: reaching one is reaching code execution."""

STRING_FILTERS = frozenset(
    {"join", "format", "replace", "reverse", "lower", "upper", "string", "trim", "title", "capitalize"}
)
STRING_METHODS = frozenset({"join", "format", "replace", "lower", "upper", "strip", "swapcase", "__add__"})

_DUNDER = re.compile(r"__[A-Za-z]\w*?__")


class HazardKind(Enum):
    """What a template does that a chat template never needs to do."""

    GLOBALS_ROUTE = "globals-route"
    DANGEROUS_NAME = "dangerous-name"
    DUNDER_ACCESS = "dunder-access"
    DYNAMIC_ATTRIBUTE = "dynamic-attribute"
    INCLUDE = "include"


@dataclass(frozen=True)
class TemplateHazard:
    """One suspicious expression: its kind, the names it reaches, the line and a source snippet."""

    kind: HazardKind
    names: tuple[str, ...]
    line: int
    snippet: str
    why: str


@dataclass(frozen=True)
class TemplateAnalysis:
    """The outcome of analysing one template: hazards, or why it could not be parsed."""

    hazards: tuple[TemplateHazard, ...]
    parse_error: str | None = None
    parse_error_line: int | None = None

    @property
    def parsed(self) -> bool:
        return self.parse_error is None


class TemplateEngineMissing(RuntimeError):
    """Jinja2 is not installed (the optional `templates` extra), so templates cannot be analysed."""


class TemplateTooLarge(ValueError):
    """The template is longer than the `max_template_bytes` limit and was not parsed."""


def jinja_available() -> bool:
    try:
        import jinja2  # noqa: F401
    except ImportError:
        return False
    return True


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def analyse_template(source: str, max_chars: int = DEFAULT_LIMITS.max_template_bytes) -> TemplateAnalysis:
    """Parse `source` with Jinja's own parser and report every hazardous expression in it.

    The template is only parsed into an AST: it is never compiled to Python, rendered or run.
    """
    if len(source) > max_chars:
        raise TemplateTooLarge(
            f"template of {len(source)} characters exceeds {max_chars} (max_template_bytes)"
        )
    try:
        import jinja2
    except ImportError as exc:
        raise TemplateEngineMissing("jinja2 is not installed (pip install 'modelshield[templates]')") from exc
    env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols", _generation_extension()])  # noqa: S701
    try:
        tree = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return TemplateAnalysis((), f"{exc.message}", exc.lineno)
    except RecursionError:
        return TemplateAnalysis((), "nesting too deep for the parser", None)
    return TemplateAnalysis(tuple(_Walker(source, tree).hazards()))


def _generation_extension() -> type[Any]:
    """The `{% generation %}` block transformers' chat templates may use (parsed as its body)."""
    from jinja2 import nodes
    from jinja2.ext import Extension

    class GenerationBlock(Extension):
        tags = {"generation"}

        def parse(self, parser: Any) -> nodes.Node:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body, lineno=lineno)

    return GenerationBlock


class _Walker:
    """One pass over the AST: constants bound by `set`, then every access chain judged once."""

    def __init__(self, source: str, tree: jnodes.Template) -> None:
        from jinja2 import nodes

        self._n = nodes
        self._lines = source.splitlines() or [""]
        self._tree = tree
        self._bound: dict[str, str] = {}
        self._consumed: set[int] = set()

    def hazards(self) -> Iterator[TemplateHazard]:
        n = self._n
        all_nodes = list(_iter_nodes(self._tree))
        ambiguous: set[str] = set()
        for node in all_nodes:
            if isinstance(node, n.Assign) and isinstance(node.target, n.Name):
                # A name is a known constant only when every assignment to it gives the same string.
                target = node.target.name
                folded = self._fold(node.node)
                if folded is None or self._bound.get(target, folded) != folded:
                    ambiguous.add(target)
                self._bound[target] = folded or ""
        for target in ambiguous:
            del self._bound[target]
        inner: set[int] = set()
        for node in all_nodes:
            if self._is_access(node) or isinstance(node, n.Call):
                target = getattr(node, "node", None)
                if target is not None:
                    inner.add(id(target))
        seen: set[tuple[HazardKind, int, tuple[str, ...]]] = set()
        for node in all_nodes:
            hazard = self._judge_node(node, inner)
            if hazard is not None:
                key = (hazard.kind, hazard.line, hazard.names)
                if key not in seen:
                    seen.add(key)
                    yield hazard

    def _is_access(self, node: jnodes.Node) -> bool:
        n = self._n
        return isinstance(node, (n.Getattr, n.Getitem)) or (
            isinstance(node, n.Filter) and node.name == "attr"
        )

    def _judge_node(self, node: jnodes.Node, inner: set[int]) -> TemplateHazard | None:
        n = self._n
        if id(node) in self._consumed:
            return None
        if isinstance(node, (n.Include, n.Import, n.FromImport, n.Extends)):
            return self._hazard(
                HazardKind.INCLUDE, (type(node).__name__.lower(),), node, "loads another template"
            )
        if isinstance(node, n.Name) and node.ctx == "load":
            if is_dunder(node.name) or node.name in DANGEROUS_NAMES:
                kind = HazardKind.DANGEROUS_NAME if node.name in DANGEROUS_NAMES else HazardKind.DUNDER_ACCESS
                return self._hazard(kind, (node.name,), node, f"uses the name {node.name}")
            return None
        if isinstance(node, n.Const) and isinstance(node.value, str):
            found = _DUNDER.findall(node.value)
            if found:
                names = tuple(dict.fromkeys(found))
                return self._hazard(HazardKind.DUNDER_ACCESS, names, node, "a string constant names a dunder")
            return None
        if isinstance(node, (n.Concat, n.Add)):
            folded = self._fold(node)
            if folded is not None and _DUNDER.search(folded):
                names = tuple(dict.fromkeys(_DUNDER.findall(folded)))
                return self._hazard(
                    HazardKind.DUNDER_ACCESS, names, node, "a dunder name is built from pieces"
                )
            return None
        if id(node) in inner or not (self._is_access(node) or self._is_call_access(node)):
            return None
        return self._judge_chain(node)

    def _is_call_access(self, node: jnodes.Node) -> bool:
        n = self._n
        return isinstance(node, n.Call) and (self._is_access(node.node) or isinstance(node.node, n.Call))

    def _judge_chain(self, outer: jnodes.Node) -> TemplateHazard | None:
        """Walk an access chain from its outermost node down to its base and judge it as a whole."""
        n = self._n
        parts: list[str] = []
        dynamic: list[str] = []
        node: jnodes.Node | None = outer
        base: str | None = None
        while node is not None:
            if isinstance(node, n.Getattr):
                parts.append(node.attr)
                node = node.node
            elif isinstance(node, n.Getitem):
                key = self._fold(node.arg)
                if key is not None:
                    parts.append(key)
                    self._consume(node.arg)
                elif self._builds_string(node.arg):
                    dynamic.append("computed item name")
                node = node.node
            elif isinstance(node, n.Filter) and node.name == "attr":
                key = self._fold(node.args[0]) if node.args else None
                if key is not None:
                    parts.append(key)
                    self._consume(node.args[0])
                else:
                    dynamic.append("|attr with a computed name")
                node = node.node
            elif isinstance(node, n.Call):
                callee = node.node
                if isinstance(callee, n.Getattr) and callee.attr in {
                    "__getattribute__",
                    "__getitem__",
                    "get",
                    "pop",
                    "getattr",
                }:
                    for arg in node.args[:1]:
                        key = self._fold(arg)
                        if key is not None:
                            parts.append(key)
                            self._consume(arg)
                        elif self._builds_string(arg):
                            dynamic.append(f"{callee.attr}() with a computed name")
                node = callee
            elif isinstance(node, n.Filter):
                node = node.node
            else:
                if isinstance(node, n.Name):
                    base = node.name
                    self._consume(node)
                break
        parts.reverse()
        if base is not None and (base in DANGEROUS_NAMES or is_dunder(base)):
            parts.insert(0, base)
        dunders = tuple(p for p in parts if is_dunder(p) or _DUNDER.search(p))
        dangerous = tuple(p for p in parts if p in DANGEROUS_NAMES)
        shown = (base,) if base is not None else ()
        if base in TEMPLATE_GLOBALS and dunders:
            return self._hazard(
                HazardKind.GLOBALS_ROUTE,
                tuple(dict.fromkeys((*shown, *dunders, *dangerous))),
                outer,
                f"walks from the template global {base} into {', '.join(dunders)}",
            )
        if dangerous:
            names = tuple(dict.fromkeys((*dangerous, *dunders)))
            return self._hazard(
                HazardKind.DANGEROUS_NAME, names, outer, f"reaches {', '.join(dict.fromkeys(dangerous))}"
            )
        if dunders:
            return self._hazard(HazardKind.DUNDER_ACCESS, dunders, outer, f"accesses {', '.join(dunders)}")
        if dynamic:
            return self._hazard(HazardKind.DYNAMIC_ATTRIBUTE, tuple(dynamic), outer, "; ".join(dynamic))
        return None

    def _consume(self, expr: jnodes.Node) -> None:
        """Mark nodes already judged as part of a chain, so they are not reported a second time."""
        self._consumed.update(id(node) for node in _iter_nodes(expr))

    def _builds_string(self, expr: jnodes.Node) -> bool:
        """Whether an expression computes a string from pieces (what payloads do to hide a name)."""
        n = self._n
        for node in _iter_nodes(expr):
            if isinstance(node, n.Concat):
                return True
            if isinstance(node, (n.Add, n.Mul, n.Mod)) and (
                self._is_str_const(node.left) or self._is_str_const(node.right)
            ):
                return True
            if isinstance(node, n.Filter) and node.name in STRING_FILTERS:
                return True
            if (
                isinstance(node, n.Call)
                and isinstance(node.node, n.Getattr)
                and node.node.attr in STRING_METHODS
            ):
                return True
        return False

    def _is_str_const(self, node: jnodes.Node) -> bool:
        return isinstance(node, self._n.Const) and isinstance(node.value, str)

    def _fold(self, expr: jnodes.Node | None, depth: int = 0) -> str | None:
        """The constant string an expression always evaluates to, when that can be told statically."""
        n = self._n
        if expr is None or depth > 32:
            return None
        result: str | None = None
        if isinstance(expr, n.Const) and isinstance(expr.value, str):
            result = expr.value
        elif isinstance(expr, n.Name):
            result = self._bound.get(expr.name)
        elif isinstance(expr, n.Concat):
            pieces = [self._fold(part, depth + 1) for part in expr.nodes]
            result = None if any(p is None for p in pieces) else "".join(p for p in pieces if p is not None)
        elif isinstance(expr, n.Add):
            left, right = self._fold(expr.left, depth + 1), self._fold(expr.right, depth + 1)
            result = left + right if left is not None and right is not None else None
        elif isinstance(expr, n.Mul):
            result = self._fold_repeat(expr, depth)
        elif isinstance(expr, n.Filter) and expr.node is not None:
            result = self._fold_filter(expr.name, expr.node, list(expr.args), depth)
        elif isinstance(expr, n.Call) and isinstance(expr.node, n.Getattr):
            result = self._fold_filter(expr.node.attr, expr.node.node, list(expr.args), depth)
        if result is not None and len(result) > MAX_FOLDED_CHARS:
            return None
        return result

    def _fold_repeat(self, expr: jnodes.Mul, depth: int) -> str | None:
        n = self._n
        for text_node, count_node in ((expr.left, expr.right), (expr.right, expr.left)):
            text = self._fold(text_node, depth + 1)
            if text is not None and isinstance(count_node, n.Const) and isinstance(count_node.value, int):
                count = count_node.value
                if 0 <= count and len(text) * count <= MAX_FOLDED_CHARS:
                    return text * count
        return None

    def _fold_filter(
        self, name: str, subject: jnodes.Node, args: list[jnodes.Node], depth: int
    ) -> str | None:
        n = self._n
        if name == "join":
            items = subject.items if isinstance(subject, (n.List, n.Tuple)) else None
            sep = self._fold(args[0], depth + 1) if args else ""
            if items is None or sep is None:
                return None
            pieces = [self._fold(item, depth + 1) for item in items]
            if any(p is None for p in pieces):
                return None
            return sep.join(p for p in pieces if p is not None)
        text = self._fold(subject, depth + 1)
        if text is None:
            return None
        if name == "reverse":
            return text[::-1]
        if name in {"lower", "upper", "trim", "strip", "string"}:
            return (
                {"lower": text.lower, "upper": text.upper}.get(name, text.strip)()
                if name != "string"
                else text
            )
        if name == "replace" and len(args) >= 2:
            old, new = self._fold(args[0], depth + 1), self._fold(args[1], depth + 1)
            if old is None or new is None or not old:
                return None
            if len(text) + text.count(old) * len(new) > MAX_FOLDED_CHARS:
                return None
            return text.replace(old, new)
        if name == "format":
            # Only plain %s substitution is folded; anything else is left unknown (and flagged as built).
            values = [self._fold(a, depth + 1) for a in args]
            if any(v is None for v in values) or re.search(r"%[^s%]", text):
                return None
            out = text.replace("%%", "\0")
            for value in values:
                out = out.replace("%s", value or "", 1)
            return out.replace("\0", "%")
        return None

    def _hazard(
        self, kind: HazardKind, names: tuple[str, ...], node: jnodes.Node, why: str
    ) -> TemplateHazard:
        line = int(getattr(node, "lineno", 1) or 1)
        return TemplateHazard(kind, names, line, self._snippet(line, names), why)

    def _snippet(self, line: int, names: tuple[str, ...]) -> str:
        text = self._lines[min(max(line, 1), len(self._lines)) - 1].strip()
        if len(text) <= SNIPPET_CHARS:
            return text
        at = min((i for i in (text.find(name) for name in names if name) if i >= 0), default=0)
        start = max(0, at - SNIPPET_CHARS // 3)
        end = start + SNIPPET_CHARS
        return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def _iter_nodes(root: jnodes.Node) -> Iterator[jnodes.Node]:
    """Every node under `root`, iteratively (hostile templates nest deeply)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        children = list(node.iter_child_nodes())
        children.reverse()
        stack.extend(children)


_HAZARD_RULES = {
    HazardKind.GLOBALS_ROUTE: rules.TEMPLATE_GLOBALS_ROUTE,
    HazardKind.DANGEROUS_NAME: rules.TEMPLATE_DANGEROUS_NAME,
    HazardKind.DUNDER_ACCESS: rules.TEMPLATE_DUNDER_ACCESS,
    HazardKind.DYNAMIC_ATTRIBUTE: rules.TEMPLATE_DYNAMIC_ATTRIBUTE,
    HazardKind.INCLUDE: rules.TEMPLATE_INCLUDE,
}


def judge_template(
    source: str,
    location: Location,
    what: str = "chat template",
    max_chars: int = DEFAULT_LIMITS.max_template_bytes,
) -> Iterator[Finding | ScanIssue]:
    """Findings for one template at `location`; an issue when it cannot be analysed (never clean)."""
    try:
        analysis = analyse_template(source, max_chars)
    except TemplateEngineMissing as exc:
        yield ScanIssue("unsupported", f"{what} not analysed: {exc}", location)
        return
    except TemplateTooLarge as exc:
        yield ScanIssue("limit", f"{what} not analysed: {exc}", location)
        return
    if not analysis.parsed:
        where = f" (line {analysis.parse_error_line})" if analysis.parse_error_line else ""
        yield rules.TEMPLATE_UNPARSEABLE.at(
            location,
            f"{what} does not parse as Jinja{where}: {analysis.parse_error}",
            evidence=source[:SNIPPET_CHARS],
        )
        yield ScanIssue("partial", f"{what} could not be parsed, so it was not analysed", location)
        return
    for hazard in analysis.hazards:
        yield _HAZARD_RULES[hazard.kind].at(
            location,
            f"{what} {hazard.why} (line {hazard.line})",
            evidence=f"line {hazard.line}: {hazard.snippet}",
        )
