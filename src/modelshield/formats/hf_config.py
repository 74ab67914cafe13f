"""Hugging Face model folders: config.json / tokenizer_config.json entries that make
trust_remote_code=True run Python files, the tokenizer's chat templates, and the Python model code itself."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from modelshield.analysis.json_members import JsonShapeError, top_level_members
from modelshield.analysis.templates import judge_template
from modelshield.engine.blob import Blob
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Location, ScanIssue
from modelshield.engine.limits import MiB
from modelshield.formats.base import ScanEvent
from modelshield.rules import huggingface as rules

name = "hf-config"
version = "1"

SNIFF_BYTES = 256 * 1024  # added_tokens_decoder sorts first and may fill tens of kilobytes
MAX_ENTRIES = 10_000
_HF_KEY = re.compile(
    rb'"(model_type|architectures|auto_map|custom_pipelines|tokenizer_class|chat_template|processor_class|'
    rb'image_processor_type|feature_extractor_type)"\s*:'
)
_WHITESPACE = b" \t\r\n"


def sniff(blob: Blob) -> bool:
    if not blob.head(64).lstrip(b"\xef\xbb\xbf" + _WHITESPACE).startswith(b"{"):
        return False
    head = blob.head(SNIFF_BYTES)
    if b"\0" in head:
        return False
    # Keys may sit anywhere in the object and be spelled with \u escapes: when the head cannot show every
    # key, the object is walked whole.
    return blob.size > len(head) or b"\\u" in head or _HF_KEY.search(head) is not None


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    limit = ctx.limits.max_config_bytes
    raw = blob.head(limit + 1)  # a stream's declared size may be unknown: what is read decides
    issues: list[ScanIssue] = []
    if len(raw) <= limit:
        document = _parse(raw, ctx.where(blob), issues)
        members = document if isinstance(document, dict) else {}
    else:
        members = _large_object_members(blob, ctx, issues)
    yield from _auto_map(blob, ctx, members.get("auto_map"))
    yield from _custom_pipelines(blob, ctx, members.get("custom_pipelines"))
    yield from _chat_templates(blob, ctx, members.get("chat_template"))
    yield from issues


_JUDGED_KEYS = frozenset({"auto_map", "custom_pipelines", "chat_template"})


def _parse(raw: bytes | memoryview, where: Location, issues: list[ScanIssue]) -> object:
    text = bytes(raw).decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        # transformers could not read it either; still, the file is not known to be clean.
        issues.append(ScanIssue("unparsed", f"JSON does not parse: {str(exc)[:200]}", where))
        return None


def _large_object_members(blob: Blob, ctx: ScanContext, issues: list[ScanIssue]) -> dict[str, object]:
    """The judged members of an object larger than max_config_bytes, each parsed on its own."""
    limit = ctx.limits.max_config_bytes
    data = blob.view()
    body = data[3:] if bytes(data[:3]) == b"\xef\xbb\xbf" else data
    try:
        members = top_level_members(body, _JUDGED_KEYS, ctx.check_time)
    except JsonShapeError as exc:
        issues.append(ScanIssue("unparsed", f"JSON object cannot be walked: {exc}", ctx.where(blob)))
        return {}
    values: dict[str, object] = {}
    for key, member in members.items():
        if member.end - member.start > limit:
            message = f"the {key} value is larger than {limit} bytes (max_config_bytes); not parsed"
            issues.append(ScanIssue("limit", message, ctx.where(blob, detail="max_config_bytes")))
        else:
            values[key] = _parse(body[member.start : member.end], ctx.where(blob, detail=key), issues)
    return values


def _class_references(value: object) -> Iterator[tuple[str, str]]:
    """(suffix of the key path, class reference) for a string or a [slow, fast] tokenizer pair."""
    if isinstance(value, str):
        yield "", value
    elif isinstance(value, list):
        for index, item in enumerate(value[:MAX_ENTRIES]):
            if isinstance(item, str):
                yield f"[{index}]", item


def _auto_map(blob: Blob, ctx: ScanContext, auto_map: object) -> Iterator[ScanEvent]:
    if not isinstance(auto_map, dict):
        return
    for auto_class, value in list(auto_map.items())[:MAX_ENTRIES]:
        for suffix, reference in _class_references(value):
            yield _reference_finding(blob, ctx, f"auto_map.{str(auto_class)[:80]}{suffix}", reference)


def _custom_pipelines(blob: Blob, ctx: ScanContext, pipelines: object) -> Iterator[ScanEvent]:
    if not isinstance(pipelines, dict):
        return
    for task, conf in list(pipelines.items())[:MAX_ENTRIES]:
        if isinstance(conf, dict) and isinstance(conf.get("impl"), str):
            yield _reference_finding(blob, ctx, f"custom_pipelines.{str(task)[:80]}.impl", conf["impl"])


def code_file(reference: str) -> tuple[str | None, str]:
    """The repository (None for this one) and the Python file a class reference makes transformers import."""
    repo: str | None = None
    if "--" in reference:
        repo, reference = reference.split("--", 1)
    module = reference.rsplit(".", 1)[0] if "." in reference else reference
    return repo, f"{module}.py"


def _reference_finding(blob: Blob, ctx: ScanContext, path: str, reference: str) -> ScanEvent:
    repo, file = code_file(reference)
    where = ctx.where(blob, detail=path)
    evidence = f"{path}: {reference[:200]}"
    if repo is not None:
        return rules.HF_REMOTE_CODE_OTHER_REPO.at(
            where,
            f"trust_remote_code=True downloads {file[:120]} from the repository {repo[:120]} and runs it",
            evidence=evidence,
        )
    escape = " (the path leaves the model folder)" if ".." in file or file.startswith("/") else ""
    return rules.HF_REMOTE_CODE.at(
        where,
        f"trust_remote_code=True imports and runs {file[:120]} from this repository{escape}",
        evidence=evidence,
    )


def _chat_templates(blob: Blob, ctx: ScanContext, value: object) -> Iterator[ScanEvent]:
    limit = ctx.limits.max_template_bytes
    if isinstance(value, str):
        yield from judge_template(value, ctx.where(blob, detail="chat_template"), max_chars=limit)
    elif isinstance(value, list):
        for index, item in enumerate(value[:MAX_ENTRIES]):
            if isinstance(item, dict) and isinstance(item.get("template"), str):
                label = item.get("name") if isinstance(item.get("name"), str) else index
                where = ctx.where(blob, detail=f"chat_template[{str(label)[:80]}]")
                yield from judge_template(
                    item["template"], where, f"chat template {str(label)[:80]!r}", limit
                )
    elif isinstance(value, dict):
        for label, template in list(value.items())[:MAX_ENTRIES]:
            if isinstance(template, str):
                where = ctx.where(blob, detail=f"chat_template[{str(label)[:80]}]")
                yield from judge_template(template, where, f"chat template {str(label)[:80]!r}", limit)


# -- Python model code --------------------------------------------------------------------------------

MAX_SOURCE_BYTES = 2 * MiB
_TRANSFORMERS_IMPORT = re.compile(rb"^\s*(from\s+transformers[\s.]|import\s+transformers\b)", re.MULTILINE)
_REMOTE_CLASS = re.compile(
    rb"^class\s+(\w+)\s*\([^)]*\b(PreTrainedModel|PretrainedConfig|PreTrainedTokenizer(?:Fast)?|"
    rb"ProcessorMixin|Pipeline|\w+PreTrainedModel|GenerationMixin)\b",
    re.MULTILINE,
)


class RemoteCodeSource:
    """A Python file defining transformers classes: what trust_remote_code=True would import."""

    name = "hf-remote-code"
    version = "1"

    def sniff(self, blob: Blob) -> bool:
        if blob.size > MAX_SOURCE_BYTES:
            return False
        head = blob.head(MAX_SOURCE_BYTES)
        if b"\0" in head or _TRANSFORMERS_IMPORT.search(head) is None:
            return False
        return _REMOTE_CLASS.search(head) is not None

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        source = blob.head(MAX_SOURCE_BYTES)
        classes: dict[str, str] = {}
        for match in _REMOTE_CLASS.finditer(source):
            classes.setdefault(
                match.group(1).decode(errors="replace"), match.group(2).decode(errors="replace")
            )
            if len(classes) >= 20:
                break
        listed = ", ".join(f"{cls}({base})" for cls, base in classes.items())
        yield rules.HF_REMOTE_CODE_FILE.at(
            ctx.where(blob),
            f"{blob.name} defines {listed}: code that trust_remote_code=True imports and runs",
            evidence=listed[:200],
        )


REMOTE_CODE_SOURCE = RemoteCodeSource()
