"""Hugging Face folders: auto_map / custom_pipelines name the code trust_remote_code runs; chat templates."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.samples import chat_templates as ct

from modelshield import FileResult, Severity, scan
from modelshield.engine.blob import BufferBlob
from modelshield.formats import hf_config

MODELING_SOURCE = '''\
"""A custom model shipped for trust_remote_code."""
from transformers import PreTrainedModel, PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "tiny"


class TinyModel(PreTrainedModel):
    config_class = TinyConfig
'''


def scan_file(path: Path) -> FileResult:
    return scan(path, compute_hash=False).files[0]


def write_json(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path


def by_rule(result: FileResult) -> dict[str, set[str | None]]:
    out: dict[str, set[str | None]] = {}
    for finding in result.findings:
        out.setdefault(finding.rule_id, set()).add(finding.location.detail)
    return out


def tiny_bert(directory: Path) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    transformers.BertModel(config).save_pretrained(directory)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]) + "\n")
    transformers.BertTokenizer(str(vocab)).save_pretrained(directory)
    return directory


def test_save_pretrained_bert_is_clean(tmp_path: Path) -> None:
    folder = tiny_bert(tmp_path / "bert")
    result = scan(folder, compute_hash=False)
    formats = {f.path.rsplit("/", 1)[-1]: f.tree.format for f in result.files}
    assert formats["config.json"] == "hf-config"
    assert formats["tokenizer_config.json"] == "hf-config"
    assert result.findings == ()


def test_auto_map_names_the_file(tmp_path: Path) -> None:
    config = {
        "model_type": "tiny",
        "architectures": ["TinyModel"],
        "auto_map": {
            "AutoConfig": "configuration_tiny.TinyConfig",
            "AutoModel": "modeling_tiny.TinyModel",
            "AutoModelForCausalLM": "evil/other-repo--modeling_x.Model",
        },
    }
    result = scan_file(write_json(tmp_path / "config.json", config))
    assert by_rule(result) == {
        "HF-REMOTE-CODE": {"auto_map.AutoConfig", "auto_map.AutoModel"},
        "HF-REMOTE-CODE-OTHER-REPO": {"auto_map.AutoModelForCausalLM"},
    }
    messages = {f.location.detail: f for f in result.findings}
    assert "modeling_tiny.py" in messages["auto_map.AutoModel"].message
    other = messages["auto_map.AutoModelForCausalLM"]
    assert other.severity is Severity.HIGH and "evil/other-repo" in other.message
    assert messages["auto_map.AutoModel"].severity is Severity.MEDIUM


def test_custom_pipelines_impl(tmp_path: Path) -> None:
    config = {
        "model_type": "bert",
        "custom_pipelines": {"pair-classification": {"impl": "pipe.PairPipeline"}},
    }
    result = scan_file(write_json(tmp_path / "config.json", config))
    assert by_rule(result) == {"HF-REMOTE-CODE": {"custom_pipelines.pair-classification.impl"}}


def test_tokenizer_auto_map_pair_and_hostile_template(tmp_path: Path) -> None:
    config = {
        "tokenizer_class": "TinyTokenizer",
        "auto_map": {"AutoTokenizer": ["tokenization_tiny.TinyTokenizer", None]},
        "chat_template": ct.CYCLER_GLOBALS,
    }
    result = scan_file(write_json(tmp_path / "tokenizer_config.json", config))
    rules = by_rule(result)
    assert rules["HF-REMOTE-CODE"] == {"auto_map.AutoTokenizer[0]"}
    assert rules["CHAT-TEMPLATE-GLOBALS-ROUTE"] == {"chat_template"}


def test_named_chat_templates(tmp_path: Path) -> None:
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "chat_template": [
            {"name": "default", "template": ct.LLAMA3},
            {"name": "tool_use", "template": ct.INCLUDE},
        ],
    }
    result = scan_file(write_json(tmp_path / "tokenizer_config.json", config))
    assert by_rule(result) == {"CHAT-TEMPLATE-INCLUDE": {"chat_template[tool_use]"}}


def test_modeling_file_is_noted(tmp_path: Path) -> None:
    path = tmp_path / "modeling_tiny.py"
    path.write_text(MODELING_SOURCE)
    result = scan_file(path)
    [finding] = result.findings
    assert finding.rule_id == "HF-REMOTE-CODE-FILE"
    assert finding.severity is Severity.INFO
    assert "TinyModel(PreTrainedModel)" in finding.message


def test_sniff_is_strict() -> None:
    assert not hf_config.sniff(BufferBlob(b'{"weight_map": {"a": "b"}, "metadata": {}}', ("x",)))
    assert not hf_config.sniff(BufferBlob(b'["model_type"]', ("x",)))
    assert not hf_config.sniff(BufferBlob(b'{"class_name": "Sequential", "module": "keras"}', ("x",)))
    assert hf_config.sniff(BufferBlob(b'  {"model_type": "bert"}', ("x",)))
    source = BufferBlob(b"import os\nclass A(PreTrainedModel):\n    pass\n", ("x",))
    assert not hf_config.REMOTE_CODE_SOURCE.sniff(source)


HOSTILE_CONFIGURATION = """
import pathlib, os
pathlib.Path(os.environ["MARKER"]).write_text("ran")
from transformers import PretrainedConfig


class TinyConfig(PretrainedConfig):
    model_type = "tiny"
"""


def padded_config_folder(directory: Path, padding: int) -> Path:
    """config.json whose auto_map hides behind `padding` bytes of a harmless value and a \\u-escaped key,
    with the configuration module it points to."""
    directory.mkdir()
    head = json.dumps({"model_type": "tiny", "notes": "x" * padding})[:-1]
    (directory / "config.json").write_text(
        head + ', "\\u0061uto_map": {"AutoConfig": "configuration_tiny.TinyConfig"}}'
    )
    (directory / "configuration_tiny.py").write_text(HOSTILE_CONFIGURATION)
    return directory


@pytest.mark.parametrize("padding", [0, 300_000, 5 * 1024 * 1024])
def test_auto_map_behind_padding_and_escapes_is_found(tmp_path: Path, padding: int) -> None:
    folder = padded_config_folder(tmp_path / "model", padding)
    result = scan_file(folder / "config.json")
    assert by_rule(result) == {"HF-REMOTE-CODE": {"auto_map.AutoConfig"}}
    assert result.issues == ()


def test_transformers_runs_the_code_a_padded_escaped_auto_map_names(tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = padded_config_folder(tmp_path / "model", 5 * 1024 * 1024)
    marker = tmp_path / "marker"
    code = (
        "import sys; from transformers import AutoConfig; "
        "AutoConfig.from_pretrained(sys.argv[1], trust_remote_code=True)"
    )
    env = {
        **os.environ,
        "MARKER": str(marker),
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "mods"),
    }
    subprocess.run(
        [sys.executable, "-c", code, str(folder)], env=env, timeout=180, check=True, capture_output=True
    )
    assert marker.read_text() == "ran"


def test_large_benign_json_is_walked_clean(tmp_path: Path) -> None:
    vocab = {f"token{i}": i for i in range(400_000)}
    path = write_json(
        tmp_path / "tokenizer.json", {"version": "1.0", "model": {"vocab": vocab}, "chat_template": "{{ x }}"}
    )
    assert path.stat().st_size > 4 * 1024 * 1024
    result = scan_file(path)
    assert (result.tree.format, result.findings, result.issues) == ("hf-config", (), ())


def test_a_judged_value_beyond_the_limit_is_not_clean(tmp_path: Path) -> None:
    auto_map = {f"Auto{i}": "x" * 100 for i in range(50_000)}
    result = scan_file(write_json(tmp_path / "config.json", {"model_type": "m", "auto_map": auto_map}))
    assert [(i.kind, i.location.detail) for i in result.issues] == [("limit", "max_config_bytes")]
    assert result.verdict.value == "error"
