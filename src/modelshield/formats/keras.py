"""Keras v3 `.keras` archives (config.json, metadata.json, model.weights.h5 in a zip): every serialized
object config.json names, Lambda bytecode (read as bytes, never unmarshalled) and embedded torch modules."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from typing import Any

from modelshield.analysis.bytecode import MarshalFormatError, read_code
from modelshield.analysis.callables import CallableJudge, Judgement
from modelshield.engine.blob import Blob, BufferBlob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.engine.limits import LimitExceeded, MiB
from modelshield.formats.base import ScanEvent
from modelshield.formats.pytorch_zip import member_location, sniff_archive
from modelshield.formats.zip_reader import (
    member_blobs,
    read_member_bytes,
    read_zip,
    starts_with_zip_header,
    zip_findings,
)
from modelshield.rules import keras as rules

name = "keras"
version = "1"

MAX_CODE_BYTES = 1 * MiB
EVIDENCE_CHARS = 200
KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp", "tf_keras"})
# Keras functions with side effects: the CVE-2025-8747 / CVE-2025-9906 class of safe-mode bypasses.
KERAS_SIDE_EFFECTS = frozenset(
    {"get_file", "enable_unsafe_deserialization", "load_model", "load_weights", "set_value", "load_img"}
)
# tf_keras registers its own optimizers under register_keras_serializable's default package, "Custom".
TF_KERAS_CUSTOM_PACKAGE = frozenset(
    f"Custom>{name}"
    for name in (
        "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lion", "Nadam", "RMSprop",
        "SGD", "SharpnessAwareMinimization",
    )
)  # fmt: skip
# Names in Lambda bytecode that reach outside the tensor computation.
ESCAPE_NAMES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "system", "popen", "Popen", "spawn", "eval", "exec", "compile",
        "__import__", "importlib", "import_module", "builtins", "__builtins__", "open", "socket", "shutil",
        "pty", "marshal", "pickle", "urllib", "requests", "http", "getattr", "globals", "__globals__",
        "__subclasses__", "ctypes", "sys", "runpy", "check_output", "run", "execv", "remove", "rmtree",
        "enable_unsafe_deserialization", "get_file",
    }
)  # fmt: skip
_TOKEN = re.compile(rb"[A-Za-z_][A-Za-z0-9_.]{1,}")
_SPECIAL_CLASSES = frozenset(
    {"__tuple__", "__bytes__", "__slice__", "__ellipsis__", "__numpy__", "__tensor__", "__typespec__"}
)


def sniff(blob: Blob) -> bool:
    archive = sniff_archive(blob)
    if archive is None:
        return False
    names = set(archive.names())
    return "config.json" in names and "metadata.json" in names


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    archive = read_zip(blob, ctx)
    yield from zip_findings(blob, ctx, archive)
    member = archive.member("config.json")  # keras reads it with zipfile: the last copy wins
    if member is not None:
        where = member_location(blob, archive, member)
        try:
            raw = read_member_bytes(blob, ctx, member, ctx.limits.max_config_bytes + 1)
        except (ValueError, OSError, LimitExceeded) as exc:
            yield ScanIssue("unparsed", f"config.json not read: {exc}", where)
        else:
            yield from scan_config(raw, where, ctx)
    yield from member_blobs(blob, ctx, archive)


def scan_config(
    raw: bytes, where: Location, ctx: ScanContext, what: str = "config.json"
) -> Iterator[ScanEvent]:
    """Judge a Keras model config (JSON bytes, `what` in messages): also used for the `model_config`
    of legacy H5 models and each node of a tf.keras keras_metadata.pb."""
    if len(raw) > ctx.limits.max_config_bytes:
        yield ScanIssue(
            "limit",
            f"{what} larger than {ctx.limits.max_config_bytes} bytes not analysed (max_config_bytes)",
            where,
        )
        return
    try:
        document = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        yield ScanIssue("unparsed", f"{what} does not parse: {str(exc)[:200]}", where)
        return
    judge = CallableJudge(ctx.policy)
    for path, node in _objects(document, ctx.limits.max_config_nodes):
        yield from _judge_object(path, node, where, ctx, judge)


def _objects(document: object, max_nodes: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every serialized object (a dict with a class_name) with its path, iteratively and bounded."""
    stack: list[tuple[str, object]] = [("", document)]
    visited = 0
    while stack:
        path, node = stack.pop()
        visited += 1
        # Counted before a container's children are listed: one list of millions must not be expanded.
        pending = visited + len(stack) + (len(node) if isinstance(node, (dict, list)) else 0)
        if pending > max_nodes:
            raise LimitExceeded(
                "max_config_nodes",
                pending,
                max_nodes,
                f"Keras config has more than {max_nodes} nodes (max_config_nodes)",
            )
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str):
                yield path, node
            children: list[tuple[str, object]] = [
                (f"{path}.{str(k)[:80]}" if path else str(k)[:80], v) for k, v in node.items()
            ]
        elif isinstance(node, list):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))


def _label(path: str, node: dict[str, Any]) -> str:
    config = node.get("config")
    layer = config.get("name") if isinstance(config, dict) else None
    if not isinstance(layer, str):
        return path or "<root>"
    return f"{path} ({node['class_name']!s:.60} {layer!s:.60})".lstrip()


def _judge_object(
    path: str, node: dict[str, Any], where: Location, ctx: ScanContext, judge: CallableJudge
) -> Iterator[ScanEvent]:
    class_name: str = node["class_name"]
    module = node.get("module")
    registered = node.get("registered_name")
    config = node.get("config")
    at = Location(where.chain, detail=_label(path, node))
    if class_name == "__lambda__" and isinstance(config, dict):
        yield from _lambda(config.get("code"), at)
        return
    if class_name in _SPECIAL_CLASSES:
        return
    if class_name == "Lambda" and isinstance(config, dict):
        yield from _keras2_lambda(config, at)
    if class_name == "TorchModuleWrapper" and isinstance(config, dict):
        yield from _torch_module(config.get("module"), at, ctx)
    attribute = config if class_name == "function" and isinstance(config, str) else class_name
    qualified = f"{module}.{attribute}" if isinstance(module, str) and module else attribute
    evidence = json.dumps({k: node.get(k) for k in ("module", "class_name", "registered_name")})[
        :EVIDENCE_CHARS
    ]
    package = qualified.split(".", 1)[0]
    if package in KERAS_PACKAGES:
        # Keras resolves these inside its own API; the pickle denylist's keras.* entry is about
        # unpickling Keras objects, not about naming a layer class here.
        dangerous = attribute in KERAS_SIDE_EFFECTS
        why = "a Keras function with side effects (a safe_mode bypass)"
    else:
        verdict = judge.judge(qualified)
        dangerous = verdict.judgement is Judgement.DANGEROUS
        why = verdict.reason
    if dangerous:
        yield rules.KERAS_DANGEROUS_OBJECT.at(
            at, f"loading the model resolves {qualified:.120} and calls it: {why}", evidence=evidence
        )
        return
    # A registered custom object is `package>Name`: in registered_name (Keras 3), or as the class name
    # itself (Keras 2 configs, tf_keras SavedModel metadata).
    registration = next((n for n in (registered, class_name) if isinstance(n, str) and ">" in n), None)
    if isinstance(module, str) and module and package not in KERAS_PACKAGES and module != "builtins":
        yield rules.KERAS_CUSTOM_OBJECT.at(
            at, f"{qualified:.120} is imported from outside Keras while loading", evidence=evidence
        )
    elif (
        registration is not None
        and registration.split(">", 1)[0] not in KERAS_PACKAGES
        and registration not in TF_KERAS_CUSTOM_PACKAGE
    ):
        yield rules.KERAS_CUSTOM_OBJECT.at(
            at, f"{registration:.120} is a custom object the loading code must supply", evidence=evidence
        )


def _keras2_lambda(config: dict[str, Any], at: Location) -> Iterator[ScanEvent]:
    """Keras 2 layout: `function` is [code, defaults, closure] (H5), or that tuple as tf_keras'
    SavedModel metadata encodes it; `module` is the module whose globals the code runs with."""
    function = config.get("function")
    if isinstance(function, dict) and function.get("class_name") == "__tuple__":
        function = function.get("items")
    if isinstance(function, list):
        module = config.get("module")
        yield from _lambda(function[0] if function else None, at, module if isinstance(module, str) else "")


def _lambda(code: object, at: Location, module: str = "") -> Iterator[ScanEvent]:
    if not isinstance(code, str):
        return
    try:
        raw = base64.b64decode(code[: MAX_CODE_BYTES * 2], validate=False)
    except (binascii.Error, ValueError):
        yield rules.KERAS_LAMBDA.at(
            at, "Lambda layer stores code that is not valid base64", evidence=code[:120]
        )
        return
    try:
        code_object = read_code(raw[:MAX_CODE_BYTES])
    except MarshalFormatError as exc:
        # Not readable as a code object of a known layout: fall back to the identifier-like runs.
        tokens = tuple(dict.fromkeys(t.decode() for t in _TOKEN.findall(raw[:MAX_CODE_BYTES])))
        words = {part for token in tokens for part in token.split(".")}
        evidence = f"unreadable code object ({exc}); text runs: {' '.join(tokens)}"
    else:
        names, strings = code_object.all_names(), code_object.all_strings()
        words = set(names) | {part for text in strings for part in text.split(".")}
        evidence = f"names: {', '.join(names) or '-'}; strings: {', '.join(map(repr, strings)) or '-'}"
    # Keras 2 runs the code with the globals of the module its config names (when already imported).
    reached = sorted((words | set(module.split("."))) & ESCAPE_NAMES)
    severity = rules.KERAS_LAMBDA.severity if not reached else rules.KERAS_DANGEROUS_OBJECT.severity
    what = f"; it names {', '.join(reached)}" if reached else ""
    yield rules.KERAS_LAMBDA.at(
        at,
        f"Lambda layer holds {len(raw)} bytes of marshalled Python bytecode run at call time{what}",
        evidence=evidence[:EVIDENCE_CHARS],
        severity=severity,
    )


def _torch_module(encoded: object, at: Location, ctx: ScanContext) -> Iterator[ScanEvent]:
    if not isinstance(encoded, str):
        return
    if len(encoded) > ctx.limits.max_materialized_bytes * 4 // 3 + 4:
        yield ScanIssue("limit", "TorchModuleWrapper module too large to decode", at)
        return
    try:
        data = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        yield ScanIssue("unparsed", "TorchModuleWrapper module is not valid base64", at)
        return
    yield rules.KERAS_TORCH_MODULE.at(
        at, f"TorchModuleWrapper restores {len(data)} bytes with torch.load", evidence=encoded[:80]
    )
    yield BufferBlob(data, (*at.chain, f"{at.detail} module"))


# A zip behind other data is read a second time, after the format that starts at byte 0.
anchored = starts_with_zip_header
