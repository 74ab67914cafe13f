"""GGUF: gguf-py output is clean in both byte orders; every malformed layout names its rule and place
without allocating what it declares; hostile chat templates are found in the metadata."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import pytest
from gguf.constants import GGML_QUANT_SIZES
from tests.samples import chat_templates as templates
from tests.samples import gguf_samples as samples

from modelshield import FileResult, Verdict, scan
from modelshield.engine.findings import Finding
from modelshield.formats import gguf as gguf_format

PEAK_BYTES = 64 * 1024 * 1024


def scan_one(path: Path) -> FileResult:
    result = scan(path, compute_hash=False)
    assert len(result.files) == 1
    return result.files[0]


def findings_of(file: FileResult, rule_id: str) -> list[Finding]:
    return [f for f in file.findings if f.rule_id == rule_id]


@pytest.mark.parametrize("big_endian", [False, True], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("template", sorted(templates.REAL_TEMPLATES))
def test_gguf_writer_output_with_real_templates_is_clean(
    tmp_path: Path, big_endian: bool, template: str
) -> None:
    path = samples.written(tmp_path, big_endian=big_endian, chat_template=templates.REAL_TEMPLATES[template])
    file = scan_one(path)
    assert file.findings == ()
    assert file.issues == ()
    assert file.verdict is Verdict.CLEAN
    assert file.tree.format == "gguf"


def test_named_templates_and_vocab_only_file_are_clean(tmp_path: Path) -> None:
    named = [
        {"name": "default", "template": templates.CHATML},
        {"name": "tool_use", "template": templates.QWEN25_TOOLS},
        {"name": "rag", "template": templates.LLAMA31_TOOLS},
    ]
    for big_endian in (False, True):
        path = samples.written(
            tmp_path, f"vocab-{big_endian}.gguf", big_endian=big_endian, chat_template=named, tensors=False
        )
        file = scan_one(path)
        assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN)


@pytest.mark.parametrize("order", ["<", ">"])
def test_version_1_and_nested_arrays_are_read(tmp_path: Path, order: str) -> None:
    for name, make in (("v1.gguf", samples.v1_model), ("nested.gguf", samples.nested_arrays)):
        path = make(samples.RawGGUF(order=order)).write(tmp_path, name)
        file = scan_one(path)
        assert (file.findings, file.issues) == ((), ()), name


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
@pytest.mark.parametrize("sample", sorted(samples.MALFORMED))
def test_malformed_file_fires_its_rule_at_its_place_without_allocating(
    tmp_path: Path, sample: str, order: str
) -> None:
    _, rule_id, detail = samples.MALFORMED[sample]
    path = samples.malformed(sample, order)(tmp_path)
    tracemalloc.start()
    try:
        file = scan_one(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES
    hits = findings_of(file, rule_id)
    assert hits, f"{sample} fired {sorted({f.rule_id for f in file.findings})}"
    assert hits[0].location.chain == (str(path),)
    assert hits[0].location.detail == detail
    assert hits[0].location.offset is not None and 0 <= hits[0].location.offset <= path.stat().st_size
    assert file.verdict is not Verdict.CLEAN


def test_huge_counts_name_the_advisories(tmp_path: Path) -> None:
    file = scan_one(samples.malformed("huge-kv-count")(tmp_path))
    (hit,) = findings_of(file, "GGUF-ABSURD-COUNT")
    assert "CVE-2024-25664" in hit.references
    assert hit.location.offset == 16


def test_exact_offsets_of_layout_findings(tmp_path: Path) -> None:
    file = scan_one(samples.malformed("string-past-end")(tmp_path))
    # header 24 bytes, key length 8 + "general.name" 12, value type 4: the value's length field at 48
    assert findings_of(file, "GGUF-STRING-LENGTH")[0].location.offset == 48
    file = scan_one(samples.malformed("too-many-dims")(tmp_path))
    # header 24, tensor name length 8 + 19 bytes: n_dims at 51
    assert findings_of(file, "GGUF-TOO-MANY-DIMS")[0].location.offset == 51


def test_layout_rules_fire_alone(tmp_path: Path) -> None:
    for sample in ("misaligned", "overlapping", "out-of-range", "data-gap", "unknown-type"):
        file = scan_one(samples.malformed(sample)(tmp_path))
        _, rule_id, _ = samples.MALFORMED[sample]
        assert {f.rule_id for f in file.findings} == {rule_id}, sample


def test_appended_data_is_scanned_as_a_child(tmp_path: Path) -> None:
    path = samples.appended_pickle(tmp_path)
    file = scan_one(path)
    (appended,) = findings_of(file, "GGUF-APPENDED-DATA")
    assert appended.location.detail == "(data after tensors)"
    assert ("PICKLE-DANGEROUS-CALL", (str(path), "(data after tensors)")) in {
        (f.rule_id, f.location.chain) for f in file.findings
    }
    assert file.verdict is Verdict.MALICIOUS
    assert [child.name for child in file.tree.children] == ["(data after tensors)"]
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("name", sorted(templates.HOSTILE_TEMPLATES))
def test_hostile_template_in_metadata_fires_with_snippet(tmp_path: Path, name: str, order: str) -> None:
    template, rule_id = templates.HOSTILE_TEMPLATES[name]
    path = samples.hostile_template(template)(samples.RawGGUF(order=order)).write(tmp_path, f"{name}.gguf")
    file = scan_one(path)
    hits = findings_of(file, rule_id)
    assert hits, f"{name} fired {sorted({f.rule_id for f in file.findings})}"
    assert hits[0].location.chain == (str(path),)
    assert hits[0].location.detail == "tokenizer.chat_template"
    assert hits[0].location.offset == 24 + 8 + len("tokenizer.chat_template") + 4
    assert hits[0].evidence.startswith("line ")
    assert file.verdict is not Verdict.CLEAN


def test_named_template_and_duplicate_key_are_both_analysed(tmp_path: Path) -> None:
    file = scan_one(samples.named_hostile_template(samples.RawGGUF()).write(tmp_path, "named.gguf"))
    hits = findings_of(file, "CHAT-TEMPLATE-DANGEROUS-NAME")
    assert [h.location.detail for h in hits] == ["tokenizer.chat_template.tool_use"]
    assert "popen" in hits[0].evidence
    file = scan_one(samples.malformed("duplicate-key")(tmp_path))
    assert {f.rule_id for f in file.findings} == {"GGUF-DUPLICATE-NAME", "CHAT-TEMPLATE-GLOBALS-ROUTE"}
    assert file.verdict is Verdict.MALICIOUS


def test_unparseable_template_is_never_clean(tmp_path: Path) -> None:
    path = samples.hostile_template(templates.BROKEN)(samples.RawGGUF()).write(tmp_path, "broken.gguf")
    file = scan_one(path)
    assert [f.rule_id for f in file.findings] == ["CHAT-TEMPLATE-UNPARSEABLE"]
    assert file.findings[0].severity.value == "medium"
    assert file.verdict is Verdict.SUSPICIOUS
    assert file.issues


def test_without_jinja2_a_template_is_an_issue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)
    file = scan_one(samples.written(tmp_path, chat_template=templates.CHATML))
    assert file.findings == ()
    assert [i.kind for i in file.issues] == ["unsupported"]
    assert "not analysed" in file.issues[0].message
    assert file.issues[0].location.detail == "tokenizer.chat_template"
    assert file.verdict is Verdict.ERROR


def test_ggml_type_table_agrees_with_gguf_py() -> None:
    for type_id, (_, block, size) in gguf_format.GGML_TYPES.items():
        if type_id == 9:
            continue  # Q8_1: ggml's block is 36 bytes (two halves + 32); gguf-py still lists 40
        assert GGML_QUANT_SIZES[type_id] == (block, size), type_id  # type: ignore[index]
    assert {int(t) for t in GGML_QUANT_SIZES} == set(gguf_format.GGML_TYPES)


def test_sniff_needs_magic_and_known_version(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"GGUF" + (7).to_bytes(4, "little") + b"\0" * 16)
    assert scan_one(path).tree.format != "gguf"
    path.write_bytes(samples.RawGGUF(order=">").build())
    assert scan_one(path).tree.format == "gguf"


def test_a_flaw_repeated_in_every_tensor_is_reported_a_bounded_number_of_times(tmp_path: Path) -> None:
    tensors = tuple(samples.RawTensor("same.weight" + "x" * 60, (8,), offset=32 * i) for i in range(2000))
    path = samples.RawGGUF(tensors=tensors, data=b"\0" * 32 * 2000).write(tmp_path, "repeated.gguf")
    file = scan_one(path)
    assert len(findings_of(file, "GGUF-DUPLICATE-NAME")) == gguf_format.MAX_FINDINGS_PER_RULE
    assert len(findings_of(file, "GGUF-MALFORMED")) == gguf_format.MAX_FINDINGS_PER_RULE
