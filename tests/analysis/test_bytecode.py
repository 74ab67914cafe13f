"""The marshal reader: names, strings and nested functions of real code objects, never unmarshalled."""

from __future__ import annotations

import marshal
import struct

import pytest

from modelshield.analysis.bytecode import MarshalFormatError, read_code

NESTED = """
def outer(x):
    import os as o
    def inner(y):
        return getattr(__builtins__, "ev" + "al")(y)
    return o.system("id") or inner(x) + 1.5 + 10**40 + 3j + len({1: 2}) + len(frozenset())
"""


def test_real_code_object_of_this_python() -> None:
    summary = read_code(marshal.dumps(compile(NESTED, "payload.py", "exec")))
    assert summary.python == "3.11+"
    by_name = {code.name: code for code in summary.walk()}
    assert set(by_name) == {"<module>", "outer", "outer.<locals>.inner"}
    assert by_name["outer"].names == ("os", "system", "len", "frozenset")
    assert by_name["outer"].local_names == ("x", "o", "inner")
    assert by_name["outer.<locals>.inner"].names == ("getattr", "__builtins__")
    assert by_name["outer.<locals>.inner"].string_constants == ("eval",)
    assert summary.all_strings() == ("id", "eval")
    assert by_name["outer"].filename == "payload.py"


def test_lambda_names_and_strings() -> None:
    code = compile("lambda x: __import__('os').system('touch marker') or x", "<string>", "eval").co_consts[0]
    summary = read_code(marshal.dumps(code))
    assert summary.name == "<lambda>"
    assert summary.all_names() == ("__import__", "system")
    assert summary.all_strings() == ("os", "touch marker")


def _short(text: str) -> bytes:
    return b"z" + bytes([len(text)]) + text.encode()


def _names(*names: str) -> bytes:
    return b")" + bytes([len(names)]) + b"".join(_short(n) for n in names)


def _py310_code(names: tuple[str, ...], consts: bytes) -> bytes:
    """A code object in the 3.8-3.10 layout: six ints, then code, consts, names, varnames, freevars,
    cellvars, filename, name, first line, lnotab (as CPython 3.10's marshal writes it)."""
    ints = struct.pack("<6i", 1, 0, 0, 1, 2, 67)
    code_bytes = b"s" + struct.pack("<i", 4) + b"t\x00d\x01"
    return (
        b"\xe3" + ints + code_bytes + consts + _names(*names) + _names("x") + _names() + _names()
        + _short("<string>") + _short("<lambda>") + struct.pack("<i", 1) + b"s" + struct.pack("<i", 0)
    )  # fmt: skip


def test_python_310_layout_is_recognised() -> None:
    summary = read_code(_py310_code(("exec",), b")\x02N" + _short("import os")))
    assert summary.python == "3.8-3.10"
    assert (summary.name, summary.names, summary.string_constants) == ("<lambda>", ("exec",), ("import os",))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xe9\x00\x00\x00\x00",  # an int, not a code object
        marshal.dumps(compile("lambda: 1", "<s>", "eval").co_consts[0])[:-3],  # truncated
        marshal.dumps(compile("lambda: 1", "<s>", "eval").co_consts[0]) + b"junk",  # trailing bytes
        b"\xe3" + b"\xff" * 40,  # nonsense lengths
    ],
)
def test_malformed_input_is_refused(data: bytes) -> None:
    with pytest.raises(MarshalFormatError):
        read_code(data)


def test_deep_nesting_is_bounded() -> None:
    body = b")\x01" * 5000 + b"N"
    with pytest.raises(MarshalFormatError, match="nesting too deep"):
        read_code(_py310_code(("x",), body))
