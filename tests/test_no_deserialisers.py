"""The package never calls a deserialiser or evaluator on what it scans: an AST check of src/modelshield.

Imports are followed through aliases (`from pickle import loads as l`, `import numpy as np`), so a
renamed call is found too; `getattr(pickle, "loads")` and star imports of a loader module are found as
well. A call may stand only where it is reviewed: marked `# safe: <why>` on its line AND listed in
REVIEWED below (the scan-before-load helpers of safe_load.py, which load only after a passing scan).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "modelshield"

PICKLE_MODULES = ("pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "jsonpickle")
FORBIDDEN_CALLS = frozenset(
    {f"{module}.{name}" for module in PICKLE_MODULES for name in ("load", "loads", "Unpickler", "decode")}
    | {
        "marshal.load", "marshal.loads",
        "torch.load", "torch.jit.load", "torch.hub.load", "torch.package.PackageImporter",
        "pandas.read_pickle", "shelve.open",
        "yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all",
        "tensorflow.saved_model.load", "tensorflow.keras.models.load_model", "keras.models.load_model",
        "keras.saving.load_model", "tensorflow.keras.saving.load_model",
        "builtins.eval", "builtins.exec", "eval", "exec",
        "runpy.run_path", "runpy.run_module",
    }
)  # fmt: skip
"""Dotted names (after alias resolution) that deserialise or execute what they are given."""
FORBIDDEN_SUFFIXES = ("load_model", "saved_model.load")
"""Framework loaders under any path (tf.keras.models.load_model, mlflow.pyfunc.load_model, ...)."""
PICKLE_ALLOWING = frozenset({"numpy.load", "numpy.lib.format.read_array", "numpy.lib.npyio.load"})
"""Safe unless `allow_pickle` is passed and not the constant False."""
YAML_LOADS = frozenset({"yaml.load", "yaml.load_all"})
SAFE_YAML_LOADERS = frozenset({"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"})
DYNAMIC_IMPORTS = frozenset({"__import__", "builtins.__import__", "importlib.import_module"})
"""Forbidden with a computed name: scanned content must never choose what gets imported."""
LOADER_MODULES = frozenset(PICKLE_MODULES) | {"marshal", "torch", "yaml", "shelve"}

REVIEWED = frozenset(
    {
        ("safe_load.py", "pickle.load"),
        ("safe_load.py", "torch.load"),
        ("safe_load.py", "joblib.load"),
        ("safe_load.py", "numpy.load"),
    }
)
"""(file name, resolved call) pairs a reviewer accepted: each loads only after safe_open's passing scan."""
REVIEWED_IMPORTS = {
    ("connectors/__init__.py", "importlib.import_module"): "a module name from the fixed _MODULES table",
    ("engine/scanner.py", "importlib.import_module"): "the handler registry named by the caller, not a file",
    ("formats/registry.py", "importlib.import_module"): "a handler module named in formats/__init__.py",
}
"""Dynamic imports whose name comes from the code, never from scanned content (no `# safe:` needed)."""


@dataclass(frozen=True)
class ForbiddenCall:
    path: str
    line: int
    call: str
    why: str
    marked_safe: bool


class _Detector(ast.NodeVisitor):
    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.lines = source.splitlines()
        self.aliases: dict[str, str] = {}
        self.found: list[ForbiddenCall] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module is None or node.level:
            return
        for alias in node.names:
            if alias.name == "*":
                if node.module.split(".")[0] in LOADER_MODULES:
                    self._report(node, f"{node.module}.*", "star import of a loader module")
                continue
            self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def _dotted(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self._dotted(node.value)
            return None if base is None else f"{base}.{node.attr}"
        return None

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._check_reference(node, self.aliases.get(node.id, node.id))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self._dotted(node)
        if name is None or not self._check_reference(node, name):
            self.generic_visit(node)

    def _check_reference(self, node: ast.expr, name: str) -> bool:
        """A forbidden callable, called or only passed on (`map(pickle.loads, blobs)`)."""
        name = _canonical(name)
        if name in FORBIDDEN_CALLS or name.endswith(FORBIDDEN_SUFFIXES):
            self._report(node, name, "deserialises or executes its input")
            return True
        return False

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        name = self._dotted(node.func)
        if name is None:
            return
        name = _canonical(name)
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if name in FORBIDDEN_CALLS or name.endswith(FORBIDDEN_SUFFIXES):
            return  # reported as a reference by visit_Name / visit_Attribute
        if name in PICKLE_ALLOWING and "allow_pickle" in keywords:
            if not (
                isinstance(keywords["allow_pickle"], ast.Constant) and keywords["allow_pickle"].value is False
            ):
                self._report(node, name, "allow_pickle not the constant False")
        elif name in YAML_LOADS:
            loader = keywords.get("Loader") or (node.args[1] if len(node.args) > 1 else None)
            loader_name = self._dotted(loader) if loader is not None else None
            if loader_name is None or loader_name.rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS:
                self._report(node, name, "yaml load without a safe loader")
        elif name in DYNAMIC_IMPORTS and not (node.args and isinstance(node.args[0], ast.Constant)):
            self._report(node, name, "import of a computed name")
        elif name in ("getattr", "builtins.getattr") and len(node.args) >= 2:
            target, attribute = self._dotted(node.args[0]), node.args[1]
            if (
                target is not None
                and isinstance(attribute, ast.Constant)
                and isinstance(attribute.value, str)
            ):
                resolved = _canonical(f"{target}.{attribute.value}")
                if resolved in FORBIDDEN_CALLS:
                    self._report(node, resolved, "loader fetched with getattr")

    def _report(self, node: ast.AST, call: str, why: str) -> None:
        line = getattr(node, "lineno", 0)
        end = getattr(node, "end_lineno", line) or line
        marked = any("# safe:" in self.lines[n - 1] for n in range(line, end + 1) if 0 < n <= len(self.lines))
        self.found.append(ForbiddenCall(self.path, line, call, why, marked))


def _canonical(name: str) -> str:
    """numpy's and TensorFlow's usual aliases are resolved by the import map; this folds the rest."""
    for prefix, real in (("np.", "numpy."), ("tf.", "tensorflow."), ("cPickle.", "pickle.")):
        if name.startswith(prefix):
            return real + name[len(prefix) :]
    return name


def forbidden_calls(source: str, path: str = "<string>") -> list[ForbiddenCall]:
    detector = _Detector(path, source)
    detector.visit(ast.parse(source, filename=path))
    return detector.found


def _package_calls() -> list[ForbiddenCall]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += forbidden_calls(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    return found


def test_the_package_calls_no_deserialiser_outside_the_reviewed_sites() -> None:
    unreviewed = [
        f"{c.path}:{c.line}: {c.call} ({c.why})"
        for c in _package_calls()
        if not (c.marked_safe and (Path(c.path).name, c.call) in REVIEWED)
        and (c.path, c.call) not in REVIEWED_IMPORTS
    ]
    assert unreviewed == []


def test_every_reviewed_site_still_exists() -> None:
    calls = _package_calls()
    assert {(Path(c.path).name, c.call) for c in calls if c.marked_safe} == REVIEWED
    assert {(c.path, c.call) for c in calls if (c.path, c.call) in REVIEWED_IMPORTS} == set(REVIEWED_IMPORTS)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import pickle\npickle.loads(data)\n", ["pickle.loads"]),
        ("from pickle import loads as l\nl(data)\n", ["pickle.loads"]),
        ("import pickle as p\np.Unpickler(fh).load()\n", ["pickle.Unpickler"]),
        ("import _pickle\n_pickle.load(fh)\n", ["_pickle.load"]),
        (
            "import dill, cloudpickle\ndill.loads(b)\ncloudpickle.load(f)\n",
            ["dill.loads", "cloudpickle.load"],
        ),
        ("from joblib import load\nload(path)\n", ["joblib.load"]),
        ("import marshal as m\nm.loads(code)\n", ["marshal.loads"]),
        ("import torch\ntorch.load(f, weights_only=False)\n", ["torch.load"]),
        ("import torch\ntorch.jit.load(f)\n", ["torch.jit.load"]),
        ("import numpy as np\nnp.load(f, allow_pickle=True)\n", ["numpy.load"]),
        ("import numpy\nnumpy.load(f, allow_pickle=flag)\n", ["numpy.load"]),
        ("import numpy as np\nnp.load(f, allow_pickle=False)\nnp.load(f)\n", []),
        ("import yaml\nyaml.load(text)\n", ["yaml.load"]),
        ("import yaml\nyaml.load(text, Loader=yaml.Loader)\n", ["yaml.load"]),
        ("import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\nyaml.safe_load(text)\n", []),
        ("from yaml import unsafe_load\nunsafe_load(text)\n", ["yaml.unsafe_load"]),
        ("import tensorflow as tf\ntf.saved_model.load(d)\n", ["tensorflow.saved_model.load"]),
        (
            "from tensorflow import keras\nkeras.models.load_model(p)\n",
            ["tensorflow.keras.models.load_model"],
        ),
        ("eval(text)\nexec(code)\n", ["eval", "exec"]),
        ("__import__(module_name)\n__import__('json')\n", ["__import__"]),
        ("import importlib\nimportlib.import_module(name)\n", ["importlib.import_module"]),
        ("import pickle\ngetattr(pickle, 'loads')(data)\n", ["pickle.loads"]),
        ("from pickle import *\n", ["pickle.*"]),
        ("import pickle\nobjects = map(pickle.loads, blobs)\n", ["pickle.loads"]),
        ("from marshal import loads\nhook = loads\n", ["marshal.loads"]),
        ("import pandas as pd\npd.read_pickle(path)\n", ["pandas.read_pickle"]),
        ("import json, ast\njson.loads(t)\nast.literal_eval(t)\n", []),
    ],
)
def test_the_detector_catches_a_planted_call(source: str, expected: list[str]) -> None:
    assert [c.call for c in forbidden_calls(source)] == expected


def test_a_safe_mark_is_seen_but_does_not_review_a_site() -> None:
    source = "import pickle\npickle.loads(data)  # safe: planted\n"
    [call] = forbidden_calls(source, "formats/planted.py")
    assert (call.call, call.marked_safe) == ("pickle.loads", True)
    assert (Path(call.path).name, call.call) not in REVIEWED
