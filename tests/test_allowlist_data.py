"""The shipped allowlist is well-formed data; it allows nothing that runs code or reaches files or network."""

from __future__ import annotations

import fnmatch
import re
import sys
from importlib import resources
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# Obviously dangerous: a key equal to one of these, or under one of them, must never be allowed.
DANGEROUS = (
    "os", "posix", "nt", "subprocess", "pty", "sys", "shutil", "tempfile", "glob", "socket", "ssl",
    "urllib", "http.client", "http.server", "requests", "webbrowser", "ftplib", "smtplib", "telnetlib",
    "importlib", "pkgutil", "runpy", "imp", "zipimport", "pickle", "_pickle", "cPickle", "marshal",
    "shelve", "dill._dill._create_function", "dill._dill._create_code", "dill._dill._import_module",
    "dill._dill._get_attr", "dill._dill._eval_repr", "cloudpickle.cloudpickle._make_function",
    "cloudpickle.cloudpickle.subimport", "cloudpickle.cloudpickle._builtin_type", "ctypes", "cffi",
    "multiprocessing", "threading", "_thread", "asyncio", "signal", "code", "codeop", "pdb", "bdb",
    "timeit", "cProfile", "profile", "trace", "functools.partial", "functools.reduce", "operator",
    "_operator", "types.FunctionType", "types.CodeType", "types.MethodType", "types.LambdaType",
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.getattr", "builtins.setattr",
    "builtins.delattr", "builtins.__import__", "builtins.open", "builtins.input", "builtins.globals",
    "builtins.vars", "builtins.breakpoint", "builtins.type", "__builtin__.eval", "__builtin__.getattr",
    "__builtin__.__import__", "__builtin__.open", "__builtin__.execfile", "__builtin__.file",
    "numpy.load", "numpy.loadtxt", "numpy.fromfile", "numpy.memmap", "numpy.testing", "numpy.f2py",
    "torch.load", "torch.hub", "torch.storage._load_from_bytes", "torch.serialization.load",
    "torch.utils.cpp_extension", "torch._inductor", "torch.ops", "torch.distributed",
    "torch.nn.parallel", "joblib.load", "pandas.read_pickle", "pandas.read_csv", "pandas.eval",
    "pandas.io", "pandas.core.computation", "setuptools", "pip", "site", "zoneinfo", "re._compile",
)  # fmt: skip

# Allowlisted names that a pattern of the shipped denylist also covers, reviewed one by one: the
# allowlist wins, and these are the reasons it should.
REVIEWED_DENYLIST_OVERLAP = {
    # TorchScript data.pkl list builders: return the list they are given; the denylist covers
    # torch.jit.* for torch.jit.load and the compiler.
    "torch.jit._pickle.build_boollist",
    "torch.jit._pickle.build_doublelist",
    "torch.jit._pickle.build_intlist",
    "torch.jit._pickle.build_tensor_from_id",
    "torch.jit._pickle.build_tensorlist",
    "torch.jit._pickle.restore_type_tag",
}


def _load(name: str) -> dict[str, Any]:
    text = resources.files("modelshield.policy").joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)


ALLOW = _load("allowlist.toml")
CALLABLES: dict[str, str] = ALLOW["callables"]
NAMESPACES: dict[str, str] = ALLOW["rebuild_namespaces"]


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_sections_and_reasons() -> None:
    assert set(ALLOW) == {"callables", "rebuild_namespaces"}
    assert len(CALLABLES) > 500
    for key, why in {**CALLABLES, **NAMESPACES}.items():
        assert isinstance(why, str) and why.strip(), key


@pytest.mark.parametrize("section", ["callables", "rebuild_namespaces"])
def test_sorted_within_section(section: str) -> None:
    keys = list(ALLOW[section])
    assert keys == sorted(keys)


def test_every_callable_is_a_dotted_name() -> None:
    assert [k for k in CALLABLES if not DOTTED.match(k)] == []


def test_every_namespace_is_a_module_path() -> None:
    assert [k for k in NAMESPACES if not MODULE.match(k)] == []


def test_nothing_dangerous_is_allowed() -> None:
    bad = [k for k in CALLABLES if any(_under(k, d) for d in DANGEROUS)]
    assert bad == []


def test_no_namespace_covers_or_is_inside_dangerous_code() -> None:
    bad = [ns for ns in NAMESPACES for d in DANGEROUS if _under(ns, d) or _under(d, ns)]
    assert bad == []


def test_code_carrying_reconstructors_stay_out() -> None:
    """dill/cloudpickle helpers that build functions, code, cells, classes or import modules."""
    for name in CALLABLES:
        if name.startswith(("dill.", "cloudpickle.")):
            tail = name.rsplit(".", 1)[1]
            assert not re.search(r"function|code|cell|import|getattr|get_attr|eval|skeleton|filehandle", tail)
            assert tail not in {"_create_type", "_builtin_type", "_class_setstate", "_function_setstate"}


def test_overlap_with_shipped_denylist_is_reviewed() -> None:
    deny = _load("denylist.toml")
    patterns = [name for group in deny.get("deny", []) for name in group["names"]]

    def denied(name: str) -> bool:
        for pattern in patterns:
            if pattern.endswith(".*") and "*" not in pattern[:-2]:
                if _under(name, pattern[:-2]):
                    return True
            elif "*" in pattern:
                if fnmatch.fnmatchcase(name, pattern):
                    return True
            elif name == pattern:
                return True
        return False

    overlap = {name for name in CALLABLES if denied(name)}
    assert overlap <= REVIEWED_DENYLIST_OVERLAP, sorted(overlap - REVIEWED_DENYLIST_OVERLAP)


@pytest.mark.parametrize(
    "name",
    [
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.dtypes.Float64DType",
        "sklearn.linear_model._logistic.LogisticRegression",
        "torch.nn.modules.linear.Linear",
        "torch.float32",
        "torch.BFloat16Storage",
        "pandas.core.frame.DataFrame",
        "scipy.sparse._csr.csr_matrix",
        "scipy.sparse.csr.csr_matrix",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "transformers.models.bert.configuration_bert.BertConfig",
        "dill._dill._load_type",
        "copyreg._reconstructor",
        "_codecs.encode",
        "__builtin__.set",
    ],
)
def test_generalised_names_present(name: str) -> None:
    """Names other versions and estimators emit, beyond what the corpus happened to produce."""
    assert name in CALLABLES


@pytest.mark.parametrize(
    "name",
    [
        "transformers.training_args.TrainingArguments",  # __post_init__ may start torch.distributed
        "torch.optim.lr_scheduler.LambdaLR",  # calls its function argument while constructing
        "accelerate.state.PartialState",
    ],
)
def test_rebuilt_but_never_called(name: str) -> None:
    assert name not in CALLABLES
    assert any(_under(name, ns) for ns in NAMESPACES)
