"""Every sample of the malicious pickle corpus, scanned through modelshield.scan(): exact rule, severity,
location (chain, opcode index, opcode name, byte offset) of the key findings, and the file verdict.

Each sample names the advisory or write-up it models (tests/samples/pickles.py). Expected opcode
positions are computed here from the sample bytes with pickletools and a small stack tracker that is
independent of the engine, so an assertion fails only when the engine puts a finding elsewhere.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.samples import pickles as pk

import modelshield
from modelshield import Finding, Severity, Verdict

CRIT = Severity.CRITICAL
HIGH = Severity.HIGH
MEDIUM = Severity.MEDIUM

DANGEROUS_CALL = "PICKLE-DANGEROUS-CALL"
DANGEROUS_IMPORT = "PICKLE-DANGEROUS-IMPORT"
NESTED_LOAD = "PICKLE-NESTED-LOAD"
NAME_RESOLVER = "PICKLE-NAME-RESOLVER"
DYNAMIC_NAME = "PICKLE-DYNAMIC-NAME"
CODE_OBJECT = "PICKLE-CODE-OBJECT"
GLOBAL_MUTATION = "PICKLE-GLOBAL-MUTATION"
SETSTATE_PLANTED = "PICKLE-SETSTATE-PLANTED"
EXT_CODE = "PICKLE-EXT-CODE"
MALFORMED = "PICKLE-MALFORMED"


# ---------------------------------------------------------------------------------------------
# Where opcodes are, computed without the engine
# ---------------------------------------------------------------------------------------------


@dataclass
class _Item:
    """A stack entry of the tracker: a constant, a global's dotted name, or an opaque value."""

    value: object = None
    name: str | None = None


_MARK = object()


@dataclass(frozen=True)
class Site:
    index: int
    offset: int
    opcode: str
    callee: str | None


def pickle_starts(data: bytes) -> list[int]:
    """Byte offsets where each consecutive pickle of a stream starts."""
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        end = None
        try:
            for op, _arg, p in pickletools.genops(io.BytesIO(data[pos:])):
                if op.name == "STOP":
                    end = pos + p + 1
        except Exception:  # noqa: BLE001 - a broken pickle ends the stream
            break
        if end is None:
            break
        pos = end
    return starts


def sites(data: bytes, pickle_no: int = 0) -> list[Site]:
    """Every opcode of one pickle with the dotted name of what it calls, when it calls a known global."""
    start = pickle_starts(data)[pickle_no]
    stack: list[object] = []
    memo: dict[int, object] = {}
    out: list[Site] = []

    def pop_mark() -> list[object]:
        items = []
        while stack and stack[-1] is not _MARK:
            items.append(stack.pop())
        if stack:
            stack.pop()
        return items[::-1]

    def name_of(item: object) -> str | None:
        return item.name if isinstance(item, _Item) else None

    try:
        for index, (op, arg, pos) in enumerate(pickletools.genops(io.BytesIO(data[start:]))):
            name, callee = op.name, None
            if name in ("GLOBAL", "INST"):
                module, attr = str(arg).split(" ", 1)
                callee = f"{module}.{attr}"
                if name == "INST":
                    pop_mark()
                stack.append(_Item(name=callee))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                callee = f"{getattr(module, 'value', '?')}.{getattr(attr, 'value', '?')}"
                stack.append(_Item(name=callee))
            elif name in ("REDUCE", "NEWOBJ"):
                stack.pop()
                callee = name_of(stack.pop())
                stack.append(_Item())
            elif name == "NEWOBJ_EX":
                stack.pop()
                stack.pop()
                callee = name_of(stack.pop())
                stack.append(_Item())
            elif name == "OBJ":
                items = pop_mark()
                callee = name_of(items[0]) if items else None
                stack.append(_Item())
            elif name == "BUILD":
                stack.pop()
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(int(arg), _Item()))
            elif name in ("MARK",):
                stack.append(_MARK)
            elif name in ("DUP",):
                stack.append(stack[-1])
            elif name in ("POP",):
                stack.pop()
            elif name in ("FRAME", "PROTO", "STOP"):
                pass
            else:
                before = op.stack_before
                if pickletools.markobject in before:
                    pop_mark()
                    before = before[: before.index(pickletools.markobject)]
                for _ in before:
                    if stack:
                        stack.pop()
                stack.extend(_Item(value=arg) for _ in op.stack_after)
            out.append(Site(index, start + pos, name, callee))
            if name == "STOP":
                break
    except Exception:  # noqa: BLE001 - broken streams: keep the opcodes read before the break
        pass
    return out


def site(data: bytes, opcode: str, nth: int = -1, callee: str | None = None, pickle_no: int = 0) -> Site:
    """The nth opcode named `opcode` (optionally: calling `callee`) of one pickle in `data`."""
    matches = [
        s for s in sites(data, pickle_no) if s.opcode == opcode and (callee is None or s.callee == callee)
    ]
    assert matches, f"sample has no {opcode} calling {callee}"
    return matches[nth]


# ---------------------------------------------------------------------------------------------
# Expectations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nested:
    """A chain element for a payload the engine hands to the dispatcher from a loader call site."""

    loader: str
    callee: str | None = None
    nth: int = -1


@dataclass(frozen=True)
class Spot:
    """A finding that must exist: rule, severity, and where (chain tail, opcode, which occurrence)."""

    rule: str
    severity: Severity
    opcode: str | None
    nth: int = -1
    callee: str | None = None
    pickle_no: int = 0
    tail: tuple[str | Nested, ...] = ()
    inner: Callable[[str], bytes] | None = None  # the bytes of the innermost blob, when nested
    evidence: str | None = None


@dataclass(frozen=True)
class Expect:
    spots: tuple[Spot, ...]
    verdict: Verdict = Verdict.MALICIOUS
    also: tuple[str, ...] = ()  # rule ids that must appear somewhere in the file
    suffix: str = ".bin"
    extra: dict[str, object] = field(default_factory=dict)


def _call(rule: str, severity: Severity, callee: str | None, evidence: str | None = None, **kw: object
          ) -> Spot:
    return Spot(rule, severity, "REDUCE", callee=callee, evidence=evidence, **kw)  # type: ignore[arg-type]


def _inner_os_system(marker: str) -> bytes:
    return pk.os_system(marker)


def _torch_data_pkl(marker: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(pk.torch_zip(marker))) as zf:
        return zf.read("archive/data.pkl")


EXPECTED: dict[str, Expect] = {}

# Family 1: the callable itself is the payload; the REDUCE that calls it is critical.
_MISLEADING = {"gadget_os_system": ".safetensors", "gadget_builtins_exec": ".txt", "gadget_pip_main": ".json"}
for _name, (_module, _attr) in pk.GADGETS.items():
    EXPECTED[_name] = Expect(
        (_call(DANGEROUS_CALL, CRIT, f"{_module}.{_attr}", evidence=f"{_module}.{_attr}("),),
        suffix=_MISLEADING.get(_name, ".bin"),
    )
for _name, _callee in {
    "gadget_code_interactive_runsource": "code.InteractiveInterpreter.runsource",
    "gadget_profile_runctx": "profile.Profile.runctx",
    "gadget_trace_runctx": "trace.Trace.runctx",
    "gadget_pathlib_touch": "pathlib.Path.touch",
}.items():
    EXPECTED[_name] = Expect((_call(DANGEROUS_CALL, CRIT, _callee, evidence=_callee),))

# Family 2: the call lands on os.system (or eval/getoutput) whatever the route to it.
_OS_SYSTEM_LAST = _call(DANGEROUS_CALL, CRIT, None, evidence="system(")
EXPECTED.update({
    "indirect_stack_global_memo": Expect((_call(DANGEROUS_CALL, CRIT, None, evidence="os.system("),)),
    "indirect_memo_overwrite": Expect((_call(DANGEROUS_CALL, CRIT, None, evidence="os.system("),)),
    "indirect_dotted_module_traversal": Expect((_OS_SYSTEM_LAST,)),
    "indirect_dotted_os_path": Expect((_OS_SYSTEM_LAST,), suffix=".pt"),
    "indirect_main_traversal": Expect((_OS_SYSTEM_LAST,)),
    "indirect_compat_builtin_eval": Expect((_call(DANGEROUS_CALL, CRIT, None, evidence="builtins.eval("),)),
    "indirect_compat_commands_getoutput": Expect(
        (_call(DANGEROUS_CALL, CRIT, None, evidence="subprocess.getoutput("),)),
    "indirect_getattr_import": Expect((
        _OS_SYSTEM_LAST,
        _call(NAME_RESOLVER, MEDIUM, "builtins.getattr"),
    )),
    "indirect_importlib_import_module": Expect((
        _OS_SYSTEM_LAST,
        _call(NAME_RESOLVER, MEDIUM, "builtins.getattr"),
    )),
    "indirect_pkgutil_resolve_name": Expect((
        _OS_SYSTEM_LAST,
        _call(NAME_RESOLVER, MEDIUM, "pkgutil.resolve_name"),
    )),
    "indirect_pydoc_locate": Expect((
        _OS_SYSTEM_LAST,
        _call(NAME_RESOLVER, MEDIUM, "pydoc.locate"),
    )),
    "indirect_attrgetter": Expect((_OS_SYSTEM_LAST, _call(NAME_RESOLVER, MEDIUM, None, nth=-2))),
    "indirect_methodcaller": Expect((_OS_SYSTEM_LAST,)),
    "indirect_functools_partial": Expect((_OS_SYSTEM_LAST,)),
    "indirect_computed_stack_global": Expect((Spot(DYNAMIC_NAME, HIGH, "STACK_GLOBAL", nth=-1),)),
    "indirect_ctypes_libc_system": Expect(
        (_call(DANGEROUS_CALL, CRIT, "ctypes.CDLL", evidence="ctypes.CDLL("),)),
})

# Family 3: the payload ran before the break; the engine must keep it and report the break.
EXPECTED.update({
    "parser_truncated_no_stop": Expect((_call(DANGEROUS_CALL, CRIT, "os.system"),), also=(MALFORMED,),
                                       suffix=".json"),
    "parser_invalid_opcode": Expect((_call(DANGEROUS_CALL, CRIT, "os.system"),), also=(MALFORMED,)),
    "parser_second_pickle": Expect((_call(DANGEROUS_CALL, CRIT, "os.system", pickle_no=1),)),
    "parser_frame_too_short": Expect((_call(DANGEROUS_CALL, CRIT, "os.system"),), also=(MALFORMED,)),
    "parser_memo_get_unset": Expect((_call(DANGEROUS_CALL, CRIT, "os.system"),), also=(MALFORMED,)),
    "parser_huge_long_binput": Expect((_call(DANGEROUS_CALL, CRIT, "os.system"),)),
    "parser_huge_declared_length": Expect((_call(DANGEROUS_CALL, CRIT, "os.system"),), also=(MALFORMED,)),
})


# Family 4: the outer call site is a nested load; the inner pickle is a child blob with its own finding.
def _nested(loader: str, suffix: str = ".bin") -> Expect:
    return Expect(
        (
            _call(NESTED_LOAD, HIGH, loader),
            _call(DANGEROUS_CALL, CRIT, "os.system", tail=(Nested(loader, loader),), inner=_inner_os_system),
        ),
        suffix=suffix,
    )


EXPECTED.update({
    "nested_raw_pickle_loads": _nested("pickle.loads"),
    "nested_base64": _nested("pickle.loads", ".txt"),
    "nested_hex_fromhex": _nested("pickle.loads"),
    "nested_unhexlify": _nested("pickle.loads"),
    "nested_zlib": _nested("pickle.loads"),
    "nested_gzip": _nested("pickle.loads"),
    "nested_bz2": _nested("pickle.loads"),
    "nested_lzma": _nested("pickle.loads"),
    "nested_c_pickle_loads": _nested("_pickle.loads"),
    "nested_lib2to3_grammar_loads": _nested("lib2to3.pgen2.grammar.Grammar.loads"),
    # marshal.loads yields a code object, not a pickle: CODE-OBJECT (with its names) is the finding.
    "nested_marshal_function": Expect((
        _call(CODE_OBJECT, CRIT, "marshal.loads", evidence="system"),
        _call(DANGEROUS_CALL, CRIT, None, evidence="types.FunctionType"),
    )),
    "dill_function_by_value": Expect(
        (_call(CODE_OBJECT, CRIT, "dill._dill._create_code", evidence="system"),)),
    # cloudpickle reaches CodeType through _builtin_type('CodeType'): the second REDUCE builds the code.
    "cloudpickle_function_by_value": Expect((_call(CODE_OBJECT, CRIT, None, evidence="system", nth=1),)),
    "torch_zip_payload": Expect(
        (_call(DANGEROUS_CALL, CRIT, "posix.system", tail=("archive/data.pkl",), inner=_torch_data_pkl),),
        suffix=".safetensors",
    ),
    "nested_torch_load": Expect((
        _call(NESTED_LOAD, HIGH, "torch.load"),
        _call(DANGEROUS_CALL, CRIT, "posix.system",
              tail=(Nested("torch.load", "torch.load"), "archive/data.pkl"), inner=_torch_data_pkl),
    )),
})

# Family 5: object-level tricks.
EXPECTED.update({
    "object_setstate_planted": Expect((
        Spot(SETSTATE_PLANTED, HIGH, "BUILD", nth=0),
        Spot(DANGEROUS_CALL, CRIT, "BUILD", nth=1, evidence="os.system("),
    )),
    "object_module_mutation": Expect((
        Spot(GLOBAL_MUTATION, HIGH, "BUILD", nth=0),
        _call(DANGEROUS_CALL, CRIT, None, evidence="os.system("),
    )),
    "object_newobj_function": Expect((
        _call(CODE_OBJECT, CRIT, "marshal.loads", evidence="system"),
    )),
    "object_newobj_ex_function": Expect((
        _call(CODE_OBJECT, CRIT, "marshal.loads", evidence="system"),
    )),
    "object_inst_os_system": Expect((Spot(DANGEROUS_CALL, CRIT, "INST", nth=0, evidence="os.system("),)),
    "object_obj_os_system": Expect((Spot(DANGEROUS_CALL, CRIT, "OBJ", nth=0, evidence="os.system("),)),
    # The default copyreg registry is empty: statically the code could be anything, so the honest
    # verdict is suspicious (the sample only runs in a process that registered code 240).
    "object_ext1_registered": Expect((Spot(EXT_CODE, HIGH, "EXT1", nth=0),), verdict=Verdict.SUSPICIOUS),
    "object_reconstructor_popen": Expect(
        (_call(DANGEROUS_CALL, CRIT, "copyreg._reconstructor", evidence="subprocess.Popen"),)),
    # After the swap, "collections.system" is os.system: the call must be judged as what it reaches.
    "object_sys_modules_swap": Expect((_call(DANGEROUS_CALL, CRIT, None, evidence="system("),)),
    # os.system is handed to a registrar that calls it at exit: a deferred call, still critical.
    "object_atexit_register": Expect((_call(DANGEROUS_CALL, CRIT, "atexit.register", evidence="os.system"),)),
})


# ---------------------------------------------------------------------------------------------
# Checking a scan against the expectations
# ---------------------------------------------------------------------------------------------


def _render(findings: tuple[Finding, ...]) -> str:
    return "\n".join(
        f"  {f.rule_id} {f.severity.value} {f.location.render()} {f.evidence[:120]}"
        for f in findings
    )


def _chain_tail(spot: Spot, data: bytes) -> tuple[str, ...]:
    tail: list[str] = []
    for element in spot.tail:
        if isinstance(element, Nested):
            at = site(data, "REDUCE", element.nth, element.callee)
            tail.append(f"{element.loader} payload @opcode {at.index}")
        else:
            tail.append(element)
    return tuple(tail)


def check_spot(findings: tuple[Finding, ...], path: Path, data: bytes, spot: Spot, marker: str) -> Finding:
    chain = (str(path), *_chain_tail(spot, data))
    blob = spot.inner(marker) if spot.inner else data
    candidates = [f for f in findings if f.rule_id == spot.rule and f.location.chain == chain]
    if spot.opcode is not None:
        at = site(blob, spot.opcode, spot.nth, spot.callee, spot.pickle_no)
        located = [f for f in candidates if f.location.opcode_index == at.index]
        assert located, (
            f"no {spot.rule} at {chain} opcode #{at.index} {spot.opcode}; findings:\n{_render(findings)}"
        )
        finding = located[0]
        assert finding.location.opcode == spot.opcode
        assert finding.location.offset == at.offset
    else:
        assert candidates, f"no {spot.rule} at {chain}; findings:\n{_render(findings)}"
        finding = candidates[0]
    assert finding.severity == spot.severity, _render((finding,))
    if spot.evidence is not None:
        assert spot.evidence in finding.evidence, _render((finding,))
    return finding


def scan_sample(name: str, tmp_path: Path) -> tuple[Path, bytes, str, modelshield.FileResult]:
    expect = EXPECTED[name]
    marker = str(tmp_path / "marker")
    data = pk.build(name, marker)
    path = tmp_path / f"{name}{expect.suffix}"
    path.write_bytes(data)
    result = modelshield.scan(path)
    (file_result,) = result.files
    return path, data, marker, file_result


def assert_detected(name: str, tmp_path: Path) -> None:
    """Scan sample `name` and hold the result to EXPECTED[name]."""
    expect = EXPECTED[name]
    path, data, marker, file_result = scan_sample(name, tmp_path)
    for spot in expect.spots:
        check_spot(file_result.findings, path, data, spot, marker)
    seen = {f.rule_id for f in file_result.findings}
    for rule in expect.also:
        assert rule in seen, f"{rule} missing; findings:\n{_render(file_result.findings)}"
    assert file_result.verdict == expect.verdict, _render(file_result.findings)


def test_every_sample_has_an_expectation() -> None:
    assert set(EXPECTED) == set(pk.SAMPLES)


def test_gadget_family_is_wide() -> None:
    assert len(pk.by_family(pk.FAMILY_GADGET)) >= 25


@pytest.mark.parametrize("name", sorted(pk.SAMPLES))
def test_bypass_sample_is_detected(name: str, tmp_path: Path) -> None:
    assert_detected(name, tmp_path)
