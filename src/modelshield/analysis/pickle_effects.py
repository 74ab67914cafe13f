"""What well-known callables do to the pickle machine's values: resolve names, transform data, load
nested payloads or build code. Pure data tables; the machine applies them."""

from __future__ import annotations

import _compat_pickle
import sys

# Python 2 module names that exist in no Python 3: importing them (protocol 3 and up, where no
# compatibility mapping applies) fails, so the loader stops there.
PY2_ONLY_MODULES = frozenset(
    name for name in _compat_pickle.IMPORT_MAPPING if name.split(".")[0] not in sys.stdlib_module_names
)

# Callables that turn a name (or an object and a name) into another object.
ATTRIBUTE_RESOLVERS = frozenset(
    {
        "builtins.getattr",
        "dill._dill._get_attr",
        "operator.attrgetter",
        "operator.itemgetter",
        "operator.getitem",
        "operator.methodcaller",
        "builtins.object.__getattribute__",
        "builtins.type.__getattribute__",
    }
)

MODULE_IMPORTERS = frozenset(
    {
        "importlib.import_module",
        "importlib.__import__",
        "builtins.__import__",
        "cloudpickle.cloudpickle.subimport",
        "cloudpickle.cloudpickle_fast.subimport",
        "dill._dill._import_module",
        "numpy.compat.py3k.npy_load_module",
    }
)

NAME_RESOLVERS = frozenset(
    {
        "pkgutil.resolve_name",
        "pydoc.locate",
        "torch._utils._import_dotted_name",
        "hydra.utils.get_method",
        "hydra.utils.get_class",
        "hydra.utils.get_object",
        "hydra._internal.utils._locate",
    }
)

# `types` attribute getters used by dill and cloudpickle to reach CodeType, FunctionType, …
TYPES_GETTERS = frozenset({"dill._dill._load_type", "cloudpickle.cloudpickle._builtin_type"})

# Callables that change an object or module in place: (obj, name-or-key, value).
MUTATORS = frozenset({"builtins.setattr", "operator.setitem", "_operator.setitem", "dill._dill._setattr"})

PARTIAL_BUILDERS = frozenset({"functools.partial", "_functools.partial"})
MAPPERS = frozenset({"builtins.map", "itertools.starmap", "builtins.filter"})

# Data transforms a payload uses to hide a nested pickle; evaluated on constants, bounded.
DECODERS = {
    "base64.b64decode": "base64",
    "base64.standard_b64decode": "base64",
    "base64.decodebytes": "base64",
    "base64.decodestring": "base64",
    "base64.urlsafe_b64decode": "base64url",
    "base64.b32decode": "base32",
    "base64.b16decode": "hex",
    "base64.a85decode": "a85",
    "base64.b85decode": "b85",
    "binascii.a2b_base64": "base64",
    "binascii.unhexlify": "hex",
    "binascii.a2b_hex": "hex",
    "builtins.bytes.fromhex": "hex",
    "builtins.bytearray.fromhex": "hex",
    "zlib.decompress": "zlib",
    "gzip.decompress": "gzip",
    "bz2.decompress": "bz2",
    "lzma.decompress": "lzma",
    "io.BytesIO": "identity",
    "_io.BytesIO": "identity",
    "builtins.bytes": "identity",
    "builtins.bytearray": "identity",
    "builtins.memoryview": "identity",
    "codecs.decode": "codec",
    "_codecs.decode": "codec",
    "codecs.encode": "codec",
    "_codecs.encode": "codec",
    "builtins.str.encode": "codec",
}

# Callables that deserialise one of their arguments: (kind, trusted wrapper, argument position).
# A trusted wrapper is a library's own ordinary way of storing an object (reported as info; the
# payload is still scanned as a child).
LOADERS: dict[str, tuple[str, bool, int]] = {
    "pickle.loads": ("pickle", False, 0),
    "pickle.load": ("pickle", False, 0),
    "pickle._loads": ("pickle", False, 0),
    "pickle._load": ("pickle", False, 0),
    "_pickle.loads": ("pickle", False, 0),
    "_pickle.load": ("pickle", False, 0),
    "dill.loads": ("pickle", False, 0),
    "dill.load": ("pickle", False, 0),
    "dill._dill.loads": ("pickle", False, 0),
    "dill._dill.load": ("pickle", False, 0),
    "cloudpickle.loads": ("pickle", False, 0),
    "cloudpickle.load": ("pickle", False, 0),
    "joblib.load": ("pickle", False, 0),
    "joblib.numpy_pickle.load": ("pickle", False, 0),
    "numpy.loads": ("pickle", False, 0),
    "numpy.load": ("pickle", False, 0),
    "pandas.read_pickle": ("pickle", False, 0),
    "pandas.io.pickle.read_pickle": ("pickle", False, 0),
    "torch.load": ("torch", False, 0),
    "torch.serialization.load": ("torch", False, 0),
    "torch.storage._load_from_bytes": ("torch", True, 0),
    "marshal.loads": ("marshal", False, 0),
    "marshal.load": ("marshal", False, 0),
    "lib2to3.pgen2.grammar.Grammar.loads": ("pickle", False, 1),
    "lib2to3.pgen2.grammar.Grammar.load": ("pickle", False, 1),
    "pickle.Unpickler.load": ("pickle", False, 0),
    "_pickle.Unpickler.load": ("pickle", False, 0),
}

# Callables whose result is Python code (a code object or a function made from one).
CODE_FACTORIES = frozenset(
    {
        "types.CodeType",
        "types.FunctionType",
        "types.LambdaType",
        "builtins.code",
        "builtins.function",
        "dill._dill._create_code",
        "dill._dill._create_function",
        "dill._dill._create_lambda",
        "cloudpickle.cloudpickle._make_function",
        "cloudpickle.cloudpickle._make_skel_func",
        "cloudpickle.cloudpickle_fast._make_function",
        "cloudpickle.cloudpickle_fast._make_skel_func",
        "marshal.loads",
        "marshal.load",
    }
)

# Helpers that finish a function or class stored by value; the code object finding covers them.
CODE_STATE_SETTERS = frozenset(
    {
        "cloudpickle.cloudpickle._function_setstate",
        "cloudpickle.cloudpickle_fast._function_setstate",
        "cloudpickle.cloudpickle._class_setstate",
        "cloudpickle.cloudpickle_fast._class_setstate",
        "cloudpickle.cloudpickle._make_skeleton_class",
        "cloudpickle.cloudpickle_fast._make_skeleton_class",
        "cloudpickle.cloudpickle._make_skeleton_enum",
        "cloudpickle.cloudpickle._fill_function",
        "cloudpickle.cloudpickle._make_empty_cell",
        "cloudpickle.cloudpickle._make_cell",
        "dill._dill._create_cell",
    }
)

# The ways pickle re-creates a plain object: (cls, base, state) / (cls, *args).
RECONSTRUCTORS = frozenset({"copyreg._reconstructor", "copy_reg._reconstructor"})
NEWOBJ_HELPERS = frozenset({"copyreg.__newobj__", "copyreg.__newobj_ex__", "builtins.object.__new__"})

# Names in code objects that make bytecode a live threat rather than merely opaque.
DANGEROUS_CODE_NAMES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "system",
        "popen",
        "subprocess",
        "Popen",
        "check_output",
        "check_call",
        "run",
        "spawn",
        "execv",
        "execve",
        "eval",
        "exec",
        "compile",
        "__import__",
        "import_module",
        "__builtins__",
        "builtins",
        "getattr",
        "socket",
        "connect",
        "urlopen",
        "urllib",
        "requests",
        "open",
        "remove",
        "unlink",
        "rmtree",
        "ctypes",
        "pty",
        "marshal",
        "pickle",
        "loads",
        "shutil",
        "webbrowser",
        "breakpoint",
    }
)

_TYPE_NAMES = {
    "CodeType": "types.CodeType",
    "FunctionType": "types.FunctionType",
    "LambdaType": "types.LambdaType",
}


_BUILTIN_TYPES = frozenset(
    {
        "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list", "memoryview",
        "object", "range", "set", "slice", "str", "tuple", "type", "property", "staticmethod", "classmethod",
        "NoneType",
    }
)  # fmt: skip


def types_attribute(name: str) -> str:
    """The qualified name `dill._load_type(name)` / `cloudpickle._builtin_type(name)` returns:
    builtin type names map to builtins, the rest to the `types` module."""
    if name in _BUILTIN_TYPES:
        return f"builtins.{name}"
    return _TYPE_NAMES.get(name, f"types.{name}")


def compat_name(module: str, name: str) -> tuple[str, str]:
    """Python 2 names mapped as CPython's unpickler maps them below protocol 3."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    if module in _compat_pickle.IMPORT_MAPPING:
        return _compat_pickle.IMPORT_MAPPING[module], name
    return module, name
