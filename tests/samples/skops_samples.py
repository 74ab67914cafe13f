"""skops persistence files built by hand (a zip holding schema.json), so rule samples need no skops."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any


def node(module: str, cls: str, loader: str, content: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"__module__": module, "__class__": cls, "__loader__": loader, "__id__": 1}
    if content is not None:
        out["content"] = content
    return out


def estimator(
    attrs: dict[str, Any],
    module: str = "sklearn.preprocessing._function_transformer",
    cls: str = "FunctionTransformer",
) -> dict[str, Any]:
    state = node("builtins", "dict", "DictNode", attrs)
    root = node(module, cls, "ObjectNode", state)
    root["protocol"] = 2
    root["_skops_version"] = "0.16.0"
    return root


def write(directory: Path, name: str, schema: dict[str, Any]) -> Path:
    path = directory / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("schema.json", json.dumps(schema))
    return path


OS_SYSTEM = estimator({"func": node("posix", "system", "FunctionNode")})
UNKNOWN_CLASS = estimator({}, module="mylab.models", cls="TinyNet")
ODD_LOADER = estimator({"func": node("numpy", "log1p", "EvalNode")})

RULE_SAMPLES = {
    "SKOPS-DANGEROUS-TYPE": lambda d: write(d, "system.skops", OS_SYSTEM),
    "SKOPS-UNKNOWN-TYPE": lambda d: write(d, "unknown.skops", UNKNOWN_CLASS),
}
