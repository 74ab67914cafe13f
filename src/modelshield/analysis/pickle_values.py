"""Symbolic values of the pickle machine, and how they are rendered as readable text for reports."""

from __future__ import annotations

from dataclasses import dataclass, field

RENDER_MAX_CHARS = 300
RENDER_MAX_ITEMS = 8
RENDER_MAX_DEPTH = 4
SMALL_BYTES = 64 * 1024


class Mark:
    """The MARK sentinel (only ever lives on the metastack boundary in CPython)."""


MARK = Mark()


class ComputedText(str):
    """Text produced by a call at load time (rot13, base64…): a name built from it is dynamic."""

    __slots__ = ()


class Ref:
    """A value whose identity matters (objects built or imported at load time)."""

    __slots__ = ()


@dataclass(eq=False)
class GlobalRef(Ref):
    """An object obtained by importing a name (find_class), or by resolving a name at load time."""

    qualname: str
    raw: str
    event_index: int
    is_module: bool = False


@dataclass(eq=False)
class ObjectRef(Ref):
    """An object produced by a call or instantiation, with attributes that BUILD gave it."""

    func: object
    kind: str
    event_index: int
    attrs: dict[str, object] = field(default_factory=dict)
    note: str = ""
    args: tuple[object, ...] = ()


@dataclass(eq=False)
class PersistentRef(Ref):
    """What persistent_load would return for a persistent id (torch storages, for example)."""

    pid: object


@dataclass(eq=False)
class UnknownValue(Ref):
    """A value the machine cannot know statically (an error, an unresolved extension code…)."""

    reason: str


@dataclass(eq=False)
class SymDict(Ref):
    """A dict kept as key/value pairs: keys may be unhashable symbolic values."""

    items: list[tuple[object, object]] = field(default_factory=list)

    def get_str_key(self, key: str) -> object | None:
        for k, v in reversed(self.items):
            if k == key:
                return v
        return None


@dataclass(eq=False)
class SymList(Ref):
    """A list (or the items added to a set)."""

    items: list[object] = field(default_factory=list)
    kind: str = "list"


@dataclass(eq=False)
class BigText(Ref):
    """A string too large to decode cheaply; kept as a view of its encoded bytes."""

    data: memoryview


class RenderBudget:
    """Bounds rendering so hostile nesting cannot blow up the report."""

    def __init__(self, max_chars: int = RENDER_MAX_CHARS) -> None:
        self.remaining = max_chars


def render(value: object, depth: int = 0, budget: RenderBudget | None = None) -> str:
    """Readable text for a symbolic value: `os.system('id')`, `{'a': 1, …}`, `<bytes len=9000>`."""
    budget = budget or RenderBudget()
    text = _render(value, depth, budget)
    return text if len(text) <= RENDER_MAX_CHARS * 2 else text[: RENDER_MAX_CHARS * 2] + "…"


def _render(value: object, depth: int, budget: RenderBudget) -> str:
    if budget.remaining <= 0 or depth > RENDER_MAX_DEPTH:
        return "…"
    text = _render_one(value, depth, budget)
    budget.remaining -= len(text)
    return text


def _render_seq(items: list[object] | tuple[object, ...], depth: int, budget: RenderBudget) -> str:
    shown = [_render(v, depth + 1, budget) for v in items[:RENDER_MAX_ITEMS]]
    if len(items) > RENDER_MAX_ITEMS:
        shown.append(f"… {len(items) - RENDER_MAX_ITEMS} more")
    return ", ".join(shown)


def _render_one(value: object, depth: int, budget: RenderBudget) -> str:
    if value is None or isinstance(value, (bool, int, float, complex)):
        text = repr(value)
        return text if len(text) < 60 else text[:57] + "…"
    if isinstance(value, str):
        return repr(value if len(value) <= 200 else value[:200] + "…")
    if isinstance(value, (bytes, bytearray)):
        if len(value) <= 80:
            return repr(bytes(value))
        return f"<bytes len={len(value)} {bytes(value[:24])!r}…>"
    if isinstance(value, memoryview):
        return f"<bytes len={len(value)} {bytes(value[:24])!r}…>"
    if isinstance(value, BigText):
        return f"<str len≈{len(value.data)} {bytes(value.data[:24]).decode('utf-8', 'replace')!r}…>"
    if isinstance(value, tuple):
        inner = _render_seq(value, depth, budget)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, SymList):
        inner = _render_seq(value.items, depth, budget)
        return {"list": f"[{inner}]", "set": f"{{{inner}}}", "frozenset": f"frozenset({{{inner}}})"}.get(
            value.kind, f"[{inner}]"
        )
    if isinstance(value, SymDict):
        pairs = [
            f"{_render(k, depth + 1, budget)}: {_render(v, depth + 1, budget)}"
            for k, v in value.items[:RENDER_MAX_ITEMS]
        ]
        if len(value.items) > RENDER_MAX_ITEMS:
            pairs.append(f"… {len(value.items) - RENDER_MAX_ITEMS} more")
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, GlobalRef):
        return value.qualname
    if isinstance(value, ObjectRef):
        return value.note or f"<{value.kind} result of {_render(value.func, depth + 1, budget)}>"
    if isinstance(value, PersistentRef):
        return f"persistent_load({_render(value.pid, depth + 1, budget)})"
    if isinstance(value, UnknownValue):
        return f"<unknown: {value.reason}>"
    return f"<{type(value).__name__}>"


def render_call(func: object, args: object, kwargs: object | None = None) -> str:
    """`func(arg, …, key=value)` for the report."""
    budget = RenderBudget()
    head = _render(func, 0, budget)
    if isinstance(args, tuple):
        inner = _render_seq(args, 0, budget)
    else:
        inner = "*" + _render(args, 1, budget)
    if isinstance(kwargs, SymDict) and kwargs.items:
        kw = ", ".join(
            f"{k if isinstance(k, str) else _render(k, 1, budget)}={_render(v, 1, budget)}"
            for k, v in kwargs.items[:RENDER_MAX_ITEMS]
        )
        inner = f"{inner}, {kw}" if inner else kw
    text = f"{head}({inner})"
    return text if len(text) <= RENDER_MAX_CHARS * 2 else text[: RENDER_MAX_CHARS * 2] + "…)"


def as_bytes(value: object) -> bytes | memoryview | None:
    """The value as bytes when it is a constant byte or text string, else None."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, memoryview):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return None


def strings_in(value: object, limit: int = 200) -> list[str]:
    """Every constant string reachable inside a value (names and constants of a code object…)."""
    found: list[str] = []
    todo: list[object] = [value]
    seen = 0
    while todo and len(found) < limit and seen < 10_000:
        seen += 1
        item = todo.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, tuple):
            todo.extend(reversed(item))
        elif isinstance(item, SymList):
            todo.extend(reversed(item.items))
        elif isinstance(item, SymDict):
            for k, v in reversed(item.items):
                todo.extend((v, k))
        elif isinstance(item, GlobalRef):
            found.append(item.qualname)
    return found
