"""MLflow model metadata: the MLmodel file, conda/virtualenv environments and pip requirements files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import ScanIssue
from modelshield.formats.base import ScanEvent
from modelshield.rules import mlflow as rules

name = "mlflow"
version = "1"

MAX_TEXT_BYTES = 1024 * 1024  # MLmodel and environment files are a few kilobytes
MAX_ITEMS = 10_000
SNIFF_BYTES = 4096
MAX_REQUIREMENTS_BYTES = 64 * 1024

_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*):", re.MULTILINE)
_REQ_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?"
_REQ_SPEC = r"(===?|~=|!=|<=|>=|<|>)\s*[^\s,;]+"
_REQUIREMENT = re.compile(rf"{_REQ_NAME}\s*({_REQ_SPEC}(\s*,\s*{_REQ_SPEC})*)?\s*(;.*)?")
_PINNED = re.compile(rf"{_REQ_NAME}\s*{_REQ_SPEC}.*")
_DIRECT_URL = re.compile(rf"{_REQ_NAME}\s*@\s*\S+.*")
_URL = re.compile(r"(?:[a-z]+\+)?[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_SOURCE_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host")
_REQUIRE_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "--pre", "--no-binary", "--only-binary")
_LOCAL_PREFIXES = ("./", "../", "/", "~", "file:", ".\\")
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2")


def sniff(blob: Blob) -> bool:
    return _kind(blob) is not None


def _kind(blob: Blob) -> str | None:
    if blob.size > MAX_TEXT_BYTES:
        return None
    head = blob.head(SNIFF_BYTES)
    if b"\0" in head:
        return None
    text = head.decode("utf-8", errors="replace")
    if text.count("\ufffd") > 3:  # binary, not a character cut in half at the end of the head
        return None
    keys = set(_TOP_KEY.findall(text))
    if "flavors" in keys:
        return "mlmodel"
    if "dependencies" in keys and keys & {"channels", "name"}:
        return "conda"
    if "python" in keys and keys & {"dependencies", "build_dependencies"}:
        return "python_env"
    if blob.size <= MAX_REQUIREMENTS_BYTES and _looks_like_requirements(
        blob.head(MAX_REQUIREMENTS_BYTES).decode("utf-8", errors="replace")
    ):
        return "requirements"
    return None


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    kind = _kind(blob)
    text = bytes(blob.head(MAX_TEXT_BYTES)).decode("utf-8", errors="replace")
    if kind == "requirements":
        yield from _scan_requirement_lines(blob, ctx, text.splitlines(), "requirements")
        return
    if len(text) > ctx.limits.max_yaml_bytes:
        where = ctx.where(blob, detail="max_yaml_bytes")
        yield ScanIssue(
            "limit", f"{kind or 'YAML'} file larger than {ctx.limits.max_yaml_bytes} (max_yaml_bytes)", where
        )
        return
    import yaml  # type: ignore[import-untyped]  # only when an MLflow file is met: fast start-up

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        # MLflow reads these files with yaml.safe_load too: what it cannot parse, it never uses, unless
        # the parse failed on Python tags, which an unsafe loader would execute.
        tag = text.find("!!python/")
        if tag >= 0:
            line = text.count("\n", 0, tag) + 1
            snippet = text[tag : text.find("\n", tag) if "\n" in text[tag:] else len(text)]
            yield rules.YAML_PYTHON_TAG.at(
                ctx.where(blob, offset=tag, detail=f"line {line}"),
                "YAML uses a Python object tag that yaml.load would execute",
                evidence=snippet[:200],
            )
        return
    except RecursionError:
        yield ScanIssue("unparsed", "YAML nesting too deep to analyse", ctx.where(blob))
        return
    if not isinstance(document, dict):
        return
    if kind == "mlmodel":
        yield from _scan_mlmodel(blob, ctx, document)
    elif kind == "conda":
        yield from _scan_conda(blob, ctx, document)
    else:
        for key in ("build_dependencies", "dependencies"):
            yield from _scan_requirement_lines(blob, ctx, _strings(document.get(key)), key)


def _scan_mlmodel(blob: Blob, ctx: ScanContext, document: dict[Any, Any]) -> Iterator[ScanEvent]:
    flavors = document.get("flavors")
    if not isinstance(flavors, dict):
        yield ScanIssue("unparsed", "MLmodel 'flavors' is not a mapping", ctx.where(blob, detail="flavors"))
        return
    pyfunc = flavors.get("python_function")
    if isinstance(pyfunc, dict):
        yield from _scan_pyfunc(blob, ctx, pyfunc)
    for flavor, conf in list(flavors.items())[:MAX_ITEMS]:
        if not isinstance(conf, dict):
            continue
        where = f"flavors.{flavor}"
        code = conf.get("code")
        if code and flavor != "python_function":
            yield rules.CODE_PATH.at(
                ctx.where(blob, detail=f"{where}.code"),
                f"flavor {flavor!s:.80} ships code in {code!s:.200}",
                evidence=f"code: {code!s:.200}",
            )
        files = _pickled_files(flavor, conf)
        if files:
            yield rules.PICKLED_MODEL.at(
                ctx.where(blob, detail=where),
                f"flavor {flavor!s:.80} loads {', '.join(files)} with an unpickler",
                evidence="; ".join(f"{k}: {conf.get(k)!s:.120}" for k in _PICKLE_KEYS if k in conf),
            )


_PICKLE_KEYS = ("python_model", "pickled_model", "model_data", "serialization_format", "data")


def _pickled_files(flavor: object, conf: dict[Any, Any]) -> list[str]:
    files: list[str] = []
    if conf.get("python_model"):
        files.append(str(conf["python_model"])[:200])
    fmt = str(conf.get("serialization_format", "")).lower()
    if conf.get("pickled_model") and fmt in ("", "pickle", "cloudpickle"):
        files.append(str(conf["pickled_model"])[:200])
    if flavor == "pytorch" and conf.get("model_data"):
        files.append(f"{conf['model_data']!s:.200}/model.pth")
    return files


def _scan_pyfunc(blob: Blob, ctx: ScanContext, pyfunc: dict[Any, Any]) -> Iterator[ScanEvent]:
    loader = pyfunc.get("loader_module")
    if loader is not None and not _is_mlflow_module(loader):
        yield rules.FOREIGN_LOADER.at(
            ctx.where(blob, detail="flavors.python_function.loader_module"),
            f"loading the model imports {loader!s:.200} and calls its _load_pyfunc",
            evidence=f"loader_module: {loader!s:.200}",
        )
    model_code = pyfunc.get("model_code_path")
    if model_code:
        yield rules.MODEL_CODE.at(
            ctx.where(blob, detail="flavors.python_function.model_code_path"),
            f"loading the model executes {model_code!s:.200}",
            evidence=f"model_code_path: {model_code!s:.200}",
        )
    code = pyfunc.get("code")
    if code:
        yield rules.CODE_PATH.at(
            ctx.where(blob, detail="flavors.python_function.code"),
            f"{code!s:.200} is put first on sys.path when the model loads",
            evidence=f"code: {code!s:.200}",
        )


def _is_mlflow_module(loader: object) -> bool:
    return (
        isinstance(loader, str)
        and (loader == "mlflow" or loader.startswith("mlflow."))
        and (re.fullmatch(r"[A-Za-z_][\w.]*", loader) is not None)
    )


def _scan_conda(blob: Blob, ctx: ScanContext, document: dict[Any, Any]) -> Iterator[ScanEvent]:
    dependencies = document.get("dependencies")
    if not isinstance(dependencies, list):
        return
    for item in dependencies[:MAX_ITEMS]:
        if isinstance(item, dict):
            yield from _scan_requirement_lines(blob, ctx, _strings(item.get("pip")), "dependencies.pip")
        elif isinstance(item, str) and _URL.search(item):
            yield rules.REMOTE_REQUIREMENT.at(
                ctx.where(blob, detail="dependencies"),
                f"conda installs a package from a URL: {item:.200}",
                evidence=item[:200],
            )


def _strings(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [item for item in value[:MAX_ITEMS] if isinstance(item, str)]


def _scan_requirement_lines(blob: Blob, ctx: ScanContext, lines: list[str], key: str) -> Iterator[ScanEvent]:
    for number, raw in enumerate(lines[:MAX_ITEMS], start=1):
        reason = requirement_risk(raw)
        if reason is None:
            continue
        detail = f"line {number}" if key == "requirements" else key
        yield rules.REMOTE_REQUIREMENT.at(
            ctx.where(blob, detail=detail), f"pip {reason}: {raw.strip():.200}", evidence=raw.strip()[:200]
        )


def requirement_risk(raw: str) -> str | None:
    """Why a pip requirement line installs from outside the trusted index, or None if it does not."""
    line = raw.split(" #", 1)[0].strip()
    if not line or line.startswith("#"):
        return None
    option = line.split(None, 1)[0].split("=", 1)[0]
    if option in _SOURCE_OPTIONS:
        return "uses another package source"
    if option in ("-e", "--editable"):
        return "installs an editable (source) package"
    if _DIRECT_URL.fullmatch(line) or _URL.match(line):
        return "installs from a URL"
    if line.startswith(_LOCAL_PREFIXES) or line.lower().endswith(_ARCHIVE_SUFFIXES):
        return "installs from a local path"
    return None


def _looks_like_requirements(text: str) -> bool:
    """Every line is a pip requirement or option, at least one pins, points or sets a source, and at
    least one names a package or is a pip option (a plain list of URLs is just a list of URLs)."""
    meaningful = 0
    named = 0
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option = line.split(None, 1)[0].split("=", 1)[0]
        if option in _SOURCE_OPTIONS or option in _REQUIRE_OPTIONS or option in ("-e", "--editable"):
            meaningful += 1
            named += 1
        elif _PINNED.fullmatch(line) or _DIRECT_URL.fullmatch(line):
            meaningful += 1
            named += 1
        elif _URL.fullmatch(line):
            meaningful += 1
        elif _REQUIREMENT.fullmatch(line):
            named += 1
        else:
            return False
    return meaningful > 0 and named > 0
