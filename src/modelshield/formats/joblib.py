"""joblib pickles: NumpyArrayWrapper array data sits raw inside the pickle stream, right after the
wrapper's BUILD; this tells the pickle machine how far to skip (or that a nested pickle follows)."""

from __future__ import annotations

import re
from math import prod

from modelshield.analysis.pickle_values import GlobalRef, ObjectRef, SymDict, SymList
from modelshield.analysis.pickle_vm import InlineData

WRAPPER_CLASSES = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)
_TYPESTR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)")
_FIXED_SIZES = {
    "b": 1,
    "?": 1,
    "B": 1,
    "h": 2,
    "H": 2,
    "e": 2,
    "i": 4,
    "I": 4,
    "f": 4,
    "l": 8,
    "L": 8,
    "q": 8,
    "Q": 8,
    "d": 8,
    "g": 16,
    "F": 8,
    "D": 16,
    "G": 32,
}


def _has_object_field(state: object) -> bool:
    """Whether a structured dtype's fields (inside its pickled state) include an object dtype."""
    todo, seen = [state], 0
    while todo and seen < 10_000:
        seen += 1
        item = todo.pop()
        if isinstance(item, ObjectRef):
            if item.args and isinstance(item.args[0], str) and item.args[0].lstrip("|<>=").startswith("O"):
                return True
            todo.extend(item.attrs.values())
        elif isinstance(item, tuple):
            todo.extend(item)
        elif isinstance(item, SymList):
            todo.extend(item.items)
        elif isinstance(item, SymDict):
            todo.extend(v for _, v in item.items)
    return False


def _dtype_itemsize(dtype: object) -> tuple[int | None, bool]:
    """(itemsize, has_object) of a symbolic numpy.dtype(...) value rebuilt by the pickle."""
    if not isinstance(dtype, ObjectRef) or not isinstance(dtype.func, GlobalRef):
        return None, False
    if not dtype.func.qualname.endswith(".dtype") or not dtype.args or not isinstance(dtype.args[0], str):
        return None, False
    typestr = dtype.args[0]
    state = dtype.attrs.get("__state__")
    has_object = typestr.startswith(("O", "|O")) or _has_object_field(state)
    if isinstance(state, tuple) and len(state) >= 6 and isinstance(state[5], int) and state[5] > 0:
        return state[5], has_object
    match = _TYPESTR.match(typestr)
    if match is None:
        return None, has_object
    kind, digits = match.groups()
    if digits:
        size = int(digits)
        return (size * 4 if kind == "U" else size), has_object
    return _FIXED_SIZES.get(kind), has_object


# joblib < 0.10 kept each array in its own file next to the pickle and named it in the wrapper.
FILE_WRAPPER_CLASSES = frozenset(
    {
        f"{package}numpy_pickle{compat}.{cls}"
        for package in ("joblib.", "sklearn.externals.joblib.")
        for compat in ("", "_compat")
        for cls in ("NDArrayWrapper", "ZNDArrayWrapper")
    }
)


def joblib_inline_data(inst: ObjectRef, data: memoryview, pos: int) -> InlineData | None:
    """After BUILD of a NumpyArrayWrapper: how joblib's unpickler reads the array from the stream."""
    if not isinstance(inst.func, GlobalRef):
        return None
    if inst.func.qualname in FILE_WRAPPER_CLASSES:
        filename = inst.attrs.get("filename")
        return InlineData(external_file=filename if isinstance(filename, str) else "<computed name>")
    if inst.func.qualname not in WRAPPER_CLASSES:
        return None
    shape = inst.attrs.get("shape")
    dims = shape if isinstance(shape, tuple) else tuple(shape.items) if isinstance(shape, SymList) else None
    itemsize, has_object = _dtype_itemsize(inst.attrs.get("dtype"))
    if has_object:
        return InlineData(nested_pickle=True)
    sizes = [d for d in dims if isinstance(d, int) and d >= 0] if dims is not None else []
    if dims is None or len(sizes) != len(dims) or itemsize is None:
        return InlineData(
            problem="joblib array with a shape or dtype that cannot be known statically; "
            "the rest of the stream was not scanned"
        )
    padding = 0
    alignment = inst.attrs.get("numpy_array_alignment_bytes")
    if isinstance(alignment, int):
        if pos >= len(data):
            return InlineData(skip=1)
        padding = 1 + data[pos]
    elif not isinstance(inst.attrs.get("numpy_array_alignment_bytes", None), type(None)):
        return InlineData(problem="joblib array alignment that cannot be known statically")
    return InlineData(skip=padding + prod(sizes) * itemsize)


__all__ = ["joblib_inline_data"]
