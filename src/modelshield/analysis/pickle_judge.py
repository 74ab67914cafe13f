"""Turn what the pickle machine recorded into findings, judged by the callable verdicts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from modelshield.analysis import pickle_effects as fx
from modelshield.analysis.callables import CallableJudge, CallableVerdict, Judgement
from modelshield.analysis.pickle_vm import Anomaly, CallEvent, PickleRun, Site
from modelshield.engine.blob import Blob
from modelshield.engine.findings import Category, Finding, Location, Severity
from modelshield.engine.rules import Rule
from modelshield.rules import pickle as rules

# Calls the machine models itself: their effect (what they reach, decode, load or build) is judged
# instead of the call.
MODELLED_CALLS = (
    fx.ATTRIBUTE_RESOLVERS | fx.MODULE_IMPORTERS | fx.NAME_RESOLVERS | fx.TYPES_GETTERS
    | fx.PARTIAL_BUILDERS | fx.MAPPERS | fx.RECONSTRUCTORS | fx.NEWOBJ_HELPERS | fx.CODE_FACTORIES
    | fx.CODE_STATE_SETTERS
    | frozenset(fx.LOADERS)
)  # fmt: skip

_ANOMALY_RULES: dict[str, Rule] = {
    "malformed": rules.MALFORMED,
    "memo": rules.MALFORMED,
    "mutation": rules.GLOBAL_MUTATION,
    "planted-setstate": rules.SETSTATE_PLANTED,
    "ext-code": rules.EXTENSION_CODE,
    "dynamic-name": rules.DYNAMIC_NAME,
    "resolver": rules.NAME_RESOLVER,
    "nested-loader-opaque": rules.NESTED_LOADER,
}
MAX_FINDINGS_PER_KEY = 1


@dataclass
class _Collector:
    """Deduplicates findings: one per (rule, subject), counting repeats."""

    blob: Blob
    run: PickleRun
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)
    repeats: dict[tuple[str, str], int] = field(default_factory=dict)

    def where(self, site: Site) -> Location:
        return Location(
            self.blob.chain, offset=site.offset, opcode_index=site.opcode_index, opcode=site.opcode
        )

    def add(self, key: str, rule: Rule, site: Site, message: str, **kwargs: object) -> None:
        dedupe = (rule.id, key)
        if dedupe in self.findings:
            self.repeats[dedupe] = self.repeats.get(dedupe, 0) + 1
            return
        fails = self.run.loader_fails_at
        if fails is not None and site.offset > fails:
            message += " (after the point where CPython's unpickler fails; other loaders may go on)"
        self.findings[dedupe] = rule.at(self.where(site), message, **kwargs)  # type: ignore[arg-type]

    def result(self) -> list[Finding]:
        out = []
        for key, finding in self.findings.items():
            extra = self.repeats.get(key, 0)
            if extra:
                finding = Finding(
                    finding.rule_id,
                    finding.severity,
                    finding.category,
                    finding.confidence,
                    f"{finding.message} (and {extra} more time{'s' if extra > 1 else ''})",
                    finding.location,
                    finding.evidence,
                    finding.remediation,
                    finding.references,
                )
            out.append(finding)
        return out


def judge_run(run: PickleRun, blob: Blob, judge: CallableJudge) -> Iterator[Finding]:
    """Findings for one pickle run, in stream order of their first occurrence."""
    out = _Collector(blob, run)
    for call in run.calls:
        _judge_call(call, judge, out)
    for event in run.imports:
        if event.called or event.rebuilt:
            continue
        verdict = judge.judge(event.qualname)
        site = event.site
        if verdict.judgement is Judgement.DANGEROUS:
            out.add(
                event.qualname,
                rules.DANGEROUS_IMPORT,
                site,
                f"Loading imports {event.qualname} ({verdict.reason}) via {event.via}",
                evidence=event.qualname,
                category=verdict.category,
            )
        elif verdict.judgement is Judgement.UNKNOWN:
            out.add(
                event.qualname,
                rules.UNKNOWN_IMPORT,
                site,
                f"Loading imports {event.qualname}, which is not on the allowlist, via {event.via}",
                evidence=event.qualname,
            )
    if run.code_objects:
        first = run.code_objects[0]
        strings = {s for code in run.code_objects for s in code.strings}
        factories = ", ".join(dict.fromkeys(code.factory for code in run.code_objects))
        dangerous = sorted(strings & fx.DANGEROUS_CODE_NAMES)
        message = f"The pickle builds Python code from bytecode it carries ({factories})"
        if dangerous:
            message += f"; the code uses {', '.join(dangerous)}"
        names = ", ".join(sorted(strings)[:40])
        out.add(
            "code",
            rules.CODE_OBJECT,
            first.site,
            message,
            evidence=f"names and constants: {names}" if names else factories,
            severity=Severity.CRITICAL if dangerous else None,
        )
    for anomaly in run.anomalies:
        _judge_anomaly(anomaly, out)
    for nested in run.nested:
        severity = Severity.INFO if nested.trusted_wrapper else None
        out.add(
            f"{nested.loader}@{nested.site.offset}",
            rules.NESTED_LOADER,
            nested.site,
            f"{nested.loader} deserialises {len(nested.data)} bytes embedded in the pickle; "
            "they are scanned as a child",
            evidence=f"{nested.loader}(<{len(nested.data)} bytes>)",
            severity=severity,
        )
    yield from out.result()


def _judge_call(call: CallEvent, judge: CallableJudge, out: _Collector) -> None:
    target = call.target
    if call.kind == "bytecode":
        out.add(
            call.evidence,
            rules.DANGEROUS_CALL,
            call.site,
            "Loading calls a function built from bytecode stored in the pickle",
            evidence=call.evidence,
        )
        return
    if call.kind == "method":
        return  # the class's own method: judged as the class
    if target is None:
        out.add(
            call.evidence,
            rules.UNKNOWN_CALL,
            call.site,
            f"Loading calls a value that is only known at load time ({call.via})",
            evidence=call.evidence,
        )
        return
    if target in MODELLED_CALLS:
        return
    rebuild = call.kind in ("rebuild", "new")
    verdict = judge.judge(target, rebuild=rebuild)
    if verdict.judgement is Judgement.SAFE:
        return
    if verdict.judgement is Judgement.DANGEROUS:
        out.add(
            target + call.evidence,
            rules.DANGEROUS_CALL,
            call.site,
            _call_message(call, verdict),
            evidence=call.evidence,
            category=verdict.category or Category.CODE_EXECUTION,
        )
        return
    if rebuild:
        out.add(
            target,
            rules.UNKNOWN_CLASS_REBUILD,
            call.site,
            f"Loading re-creates an instance of {target} (not on the allowlist) via {call.via}",
            evidence=target,
        )
        return
    out.add(
        target + call.evidence,
        rules.UNKNOWN_CALL,
        call.site,
        f"Loading calls {target}, which is not on the allowlist, via {call.via}",
        evidence=call.evidence,
    )


def _call_message(call: CallEvent, verdict: CallableVerdict) -> str:
    how = {"new": "instantiates", "rebuild": "re-creates"}.get(call.kind, "calls")
    return f"Loading {how} {call.target} via {call.via}: {verdict.reason}"


def _judge_anomaly(anomaly: Anomaly, out: _Collector) -> None:
    if anomaly.kind == "external-file":
        name = anomaly.evidence
        escapes = (
            name.startswith(("/", "\\"))
            or ".." in name.replace("\\", "/").split("/")
            or (len(name) > 1 and name[1] == ":")
        )
        out.add(
            anomaly.kind + name,
            rules.EXTERNAL_FILE,
            anomaly.site,
            anomaly.message + ("; the name leaves the model's folder" if escapes else ""),
            evidence=name,
            severity=Severity.HIGH if escapes or name == "<computed name>" else None,
        )
        return
    rule = _ANOMALY_RULES.get(anomaly.kind)
    if rule is None:
        return
    key = anomaly.kind + anomaly.message if rule is not rules.MALFORMED else "malformed"
    out.add(key, rule, anomaly.site, anomaly.message, evidence=anomaly.evidence)
