"""NVIDIA NeMo checkpoints (.nemo: a tar holding model_config.yaml and weights) and Hydra YAML configs:
every instantiation target the config names is judged, since restoring the model calls it."""

from __future__ import annotations

import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from modelshield.analysis.callables import CallableJudge, Judgement
from modelshield.engine.blob import Blob, ByteReader
from modelshield.engine.context import ScanContext
from modelshield.engine.findings import Category, Finding, Location, ScanIssue
from modelshield.engine.limits import LimitExceeded, MiB
from modelshield.formats import tar
from modelshield.formats.base import ScanEvent
from modelshield.policy.model import Policy
from modelshield.rules import nemo as rules

name = "nemo"
version = "1"

CONFIG_NAME = "model_config.yaml"
MAX_CONFIG_BYTES = 8 * MiB  # real model configs are tens of kilobytes
SNIFF_MEMBERS = 256
SNIFF_STREAM_BYTES = 16 * MiB
"""A compressed .nemo is only recognised if its config header comes within this many bytes; a tar
whose config comes later is still scanned as a tar, and the config by the Hydra YAML handler."""
EVIDENCE_CHARS = 200

# Namespaces whose callables are constructors of ML building blocks: instantiating them with config
# arguments builds a module, an optimizer or a callback, and runs nothing else.
SAFE_TARGET_NAMESPACES = (
    "nemo",
    "torch.nn",
    "torch.optim",
    "torch.utils.data",
    "lightning.pytorch.callbacks",
    "pytorch_lightning.callbacks",
    "megatron.core",
    "apex.optimizers",
    "apex.normalization",
    "torchmetrics",
    "torchaudio.transforms",
    "torchvision.transforms",
    "omegaconf.DictConfig",
    "omegaconf.ListConfig",
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
)
# Attributes that load other models or code, or resolve further names, whatever namespace holds them:
# they move the question to content this scan never saw.
LOADER_ATTRIBUTES = frozenset(
    {
        "load", "loads", "load_model", "from_pretrained", "restore_from", "load_from_checkpoint",
        "from_file", "load_library", "load_inline", "import_class_by_path", "instantiate", "call",
        "get_class", "get_method", "get_object", "_locate", "import_module", "run_path", "run_module",
    }
)  # fmt: skip
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
# A `_target_` key in block style (at a line start, maybe a list item) or in flow style (after `{` or `,`).
_HYDRA_LINE = re.compile(
    rb"(?:^[ \t]*(?:-[ \t]+)?|[{,][ \t]*)[\"']?_target_[\"']?[ \t]*:[ \t]*\S", re.MULTILINE
)
_SHARED_KEY = "nemo.judged_configs"


# -- judging targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetVerdict:
    """What instantiating one target does: dangerous (with why), safe, or unknown."""

    judgement: Judgement
    reason: str
    category: Category = Category.CODE_EXECUTION


def _matches(name: str, patterns: frozenset[str]) -> bool:
    parts = name.split(".")
    return name in patterns or any(".".join(parts[:i]) + ".*" in patterns for i in range(1, len(parts)))


class HydraTargetJudge:
    """Hydra targets judged with the callable lists plus the policy's [hydra_targets] lists."""

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._callables = CallableJudge(policy)

    def judge(self, target: str) -> TargetVerdict:
        if not _DOTTED.fullmatch(target):
            return TargetVerdict(Judgement.UNKNOWN, "is not a plain dotted name; Hydra resolves it anyway")
        if _matches(target, self._policy.denied_hydra_targets):
            return TargetVerdict(Judgement.DANGEROUS, "denied by policy [hydra_targets]")
        verdict = self._callables.judge(target)
        if verdict.judgement is Judgement.DANGEROUS:
            return TargetVerdict(
                Judgement.DANGEROUS, verdict.reason, verdict.category or Category.CODE_EXECUTION
            )
        if _matches(target, self._policy.allowed_hydra_targets):
            return TargetVerdict(Judgement.SAFE, "allowed by policy [hydra_targets]")
        attribute = target.rsplit(".", 1)[-1]
        if attribute in LOADER_ATTRIBUTES:
            return TargetVerdict(
                Judgement.DANGEROUS, f"{attribute} loads other models or code, which this scan never saw"
            )
        if any(target == ns or target.startswith(ns + ".") for ns in SAFE_TARGET_NAMESPACES):
            return TargetVerdict(Judgement.SAFE, "constructor in a known ML namespace")
        if verdict.judgement is Judgement.SAFE:
            return TargetVerdict(Judgement.SAFE, verdict.reason)
        return TargetVerdict(Judgement.UNKNOWN, "is in no namespace known to hold only ML constructors")


@dataclass(frozen=True)
class TargetSite:
    """One instantiation key in a parsed config: its key path, key, named target and sibling arguments."""

    path: str
    key: str
    target: str
    node: dict[Any, Any]


def _key_path(parent: str, key: object) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    text = str(key)[:80]
    return f"{parent}.{text}" if parent else text


def target_sites(document: object, *, legacy_keys: bool, max_nodes: int) -> Iterator[TargetSite]:
    """Every `_target_` (and, in NeMo configs, dotted `target`/`cls`) in document order, iteratively.

    Containers are visited once each, so YAML aliases (shared, even self-referencing nodes) cannot
    multiply the walk; past `max_nodes` the walk raises LimitExceeded."""
    seen: set[int] = set()
    stack: list[tuple[str, object]] = [("", document)]
    visited = 0
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict | list) or id(node) in seen:
            continue
        seen.add(id(node))
        visited += 1
        if visited > max_nodes:
            raise LimitExceeded(
                "max_config_nodes",
                visited,
                max_nodes,
                f"config has more than {max_nodes} nodes (max_config_nodes)",
            )
        if isinstance(node, dict):
            for key in ("_target_", *(("target", "cls") if legacy_keys else ())):
                value = node.get(key)
                if isinstance(value, str) and (key == "_target_" or _DOTTED.fullmatch(value)):
                    yield TargetSite(_key_path(path, key), key, value, node)
            children = list(node.items())
        else:
            children = list(enumerate(node))
        for key, child in reversed(children):
            stack.append((_key_path(path, key), child))


def _evidence(site: TargetSite) -> str:
    arguments = {k: v for k, v in site.node.items() if k != site.key and not isinstance(v, dict | list)}
    args = site.node.get("_args_")
    text = f"{site.key}: {site.target}"
    if isinstance(args, list):
        text += f"; _args_: {args!r}"
    if arguments:
        text += f"; {arguments!r}"
    return text[:EVIDENCE_CHARS]


def judge_config(
    document: object, blob: Blob, ctx: ScanContext, *, legacy_keys: bool, when: str
) -> Iterator[Finding]:
    """Findings for every instantiation target in a parsed config; `when` says when it is called."""
    judge = ctx.shared.get(_SHARED_KEY + ".judge")
    if not isinstance(judge, HydraTargetJudge):
        judge = HydraTargetJudge(ctx.policy)
        ctx.shared[_SHARED_KEY + ".judge"] = judge
    for site in target_sites(document, legacy_keys=legacy_keys, max_nodes=ctx.limits.max_config_nodes):
        verdict = judge.judge(site.target)
        if verdict.judgement is Judgement.SAFE:
            continue
        partial = " (bound with _partial_, called later)" if site.node.get("_partial_") is True else ""
        where = ctx.where(blob, detail=site.path)
        if verdict.judgement is Judgement.DANGEROUS:
            yield rules.HYDRA_DANGEROUS_TARGET.at(
                where,
                f"{site.path} makes {when} call {site.target:.120}{partial}: {verdict.reason}",
                evidence=_evidence(site),
                category=verdict.category,
            )
        else:
            yield rules.HYDRA_UNKNOWN_TARGET.at(
                where,
                f"{site.path} makes {when} import and call {site.target:.120}{partial}: {verdict.reason}",
                evidence=_evidence(site),
            )


def parse_yaml(text: str, blob: Blob, ctx: ScanContext) -> tuple[object, ScanIssue | None]:
    """The document yaml.safe_load makes of `text` (never an unsafe loader), or why there is none."""
    if len(text) > ctx.limits.max_yaml_bytes:
        why = f"YAML of {len(text)} characters is larger than {ctx.limits.max_yaml_bytes} (max_yaml_bytes)"
        return None, ScanIssue("limit", f"{why}; not parsed", ctx.where(blob, detail="max_yaml_bytes"))
    import yaml  # type: ignore[import-untyped]  # only when a config is met: fast start-up

    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError as exc:
        return None, ScanIssue("unparsed", f"YAML does not parse: {str(exc)[:200]}", ctx.where(blob))
    except RecursionError:
        return None, ScanIssue("unparsed", "YAML nesting too deep to analyse", ctx.where(blob))


def _judged(ctx: ScanContext) -> set[tuple[str, ...]]:
    judged = ctx.shared.setdefault(_SHARED_KEY, set())
    return cast(set[tuple[str, ...]], judged)


# -- the .nemo archive -------------------------------------------------------------------------------


def _is_config(member_name: str) -> bool:
    while member_name.startswith("./"):
        member_name = member_name[2:]
    return member_name == CONFIG_NAME


class _BoundedReader:
    """A stream that ends after `limit` bytes, so sniffing a compressed tar stays cheap."""

    def __init__(self, source: ByteReader, limit: int) -> None:
        self._source = source
        self._left = limit

    def read(self, n: int = -1, /) -> bytes:
        wanted = self._left if n is None or n < 0 else min(n, self._left)
        data = self._source.read(wanted) if wanted > 0 else b""
        self._left -= len(data)
        return data


def sniff(blob: Blob) -> bool:
    if not tar.sniff(blob):
        return False
    with blob.stream() as source:
        try:
            if blob.random_access:
                archive = tarfile.open(fileobj=cast(BinaryIO, source), mode="r:")
            else:
                bounded = _BoundedReader(source, SNIFF_STREAM_BYTES)
                archive = tarfile.open(fileobj=cast(BinaryIO, bounded), mode="r|")
            with archive:
                for index, info in enumerate(archive):
                    if _is_config(info.name) and info.isfile():
                        return True
                    if index >= SNIFF_MEMBERS:
                        return False
        except (tarfile.TarError, OSError, EOFError):
            return False
    return False


def scan(blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    members, _, _ = tar._members(blob, ctx)  # noqa: SLF001 - the tar handler's own listing
    seen: Counter[str] = Counter()
    for member in members:
        seen[member.name] += 1
        if not (member.is_file and _is_config(member.name)):
            continue
        element = tar._element(member, seen[member.name])  # noqa: SLF001
        config = tar._child(blob, ctx, member, element)  # noqa: SLF001
        yield from _scan_model_config(config, ctx)
    # Everything a tar has to say (links, traversal, duplicates), and every member as a child blob.
    yield from tar.scan(blob, ctx)


def _scan_model_config(config: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
    _judged(ctx).add(config.chain)
    where = Location(config.chain)
    if config.size > MAX_CONFIG_BYTES:
        yield ScanIssue("limit", f"{CONFIG_NAME} of {config.size} bytes not analysed", where)
        return
    text = config.head(MAX_CONFIG_BYTES).decode("utf-8", errors="replace")
    document, issue = parse_yaml(text, config, ctx)
    if issue is not None:
        yield issue
        return
    yield from judge_config(document, config, ctx, legacy_keys=True, when="NeMo's restore_from")


# -- a Hydra YAML config on its own (or a NeMo config met as a tar member) -------------------------------


class HydraConfigFormat:
    """A YAML file with Hydra `_target_` keys, e.g. a config.yaml that a model's loader instantiates."""

    name = "hydra-config"
    version = "1"

    def sniff(self, blob: Blob) -> bool:
        head = blob.head(64 * 1024)
        if b"\0" in head or head.decode("utf-8", errors="replace").count("\ufffd") > 3:
            return False
        # The key may come after any amount of padding: the whole text is searched (a regular expression
        # over the mapped file), and one larger than max_yaml_bytes is reported unparsed, never clean.
        return _HYDRA_LINE.search(blob.view() if blob.size > len(head) else head) is not None

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        if blob.chain in _judged(ctx):
            return  # the .nemo handler judged this config already, with NeMo's own keys
        text = blob.head(MAX_CONFIG_BYTES).decode("utf-8", errors="replace")
        document, issue = parse_yaml(text, blob, ctx)
        if issue is not None:
            yield issue
            return
        yield from judge_config(document, blob, ctx, legacy_keys=False, when="hydra.utils.instantiate")


HYDRA_CONFIG = HydraConfigFormat()
