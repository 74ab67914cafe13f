"""Deep weights analysis: payloads in the low bits of float weights are found, real weights stay clean."""

from __future__ import annotations

import os
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from tests.samples.safetensors_samples import elf_bytes
from tests.samples.weight_samples import SCRIPT, embed_low_byte, normal_weights, onnx_model

import modelshield
from modelshield.analysis.weight_stats import analyse_tensor


class _Marker:
    """Pickles to a call that writes a marker file; never unpickled here."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def embed_low_three_bytes(weights: np.ndarray, payload: bytes) -> np.ndarray:
    """EvilModel's fast substitution: sign and exponent kept, three payload bytes in the mantissa."""
    out = weights.copy()
    raw = out.view(np.uint8).reshape(-1, 4)
    body = np.frombuffer(payload + b"\0" * (-len(payload) % 3), dtype=np.uint8).reshape(-1, 3)
    raw[: len(body), 2], raw[: len(body), 1], raw[: len(body), 0] = body[:, 0], body[:, 1], body[:, 2]
    return out


def elf_in_weights(directory: Path) -> Path:
    """Sample for WEIGHTS-EMBEDDED-PAYLOAD: an ELF in the low bytes of a layer's weights."""
    path = directory / "model.safetensors"
    hostile = embed_low_byte(normal_weights(), elf_bytes() * 32, at=1000)
    save_file({"encoder.layer.0.weight": hostile, "encoder.layer.0.bias": normal_weights(64)}, str(path))
    return path


def script_in_weights(directory: Path) -> Path:
    """Sample for WEIGHTS-LOW-BIT-ANOMALY: text without a known signature in the low bytes."""
    path = directory / "model.safetensors"
    save_file({"decoder.proj.weight": embed_low_byte(normal_weights(), SCRIPT, at=70_000)}, str(path))
    return path


def _scan(path: Path) -> list[modelshield.Finding]:
    return list(modelshield.scan(path, compute_hash=False, deep=True).findings)


def test_random_normal_weights_are_clean(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({f"layer.{i}.weight": normal_weights(1 << 16, seed=i) for i in range(8)}, str(path))
    assert _scan(path) == []


def test_torch_initialised_layers_are_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(512, 512),
        torch.nn.Conv2d(16, 32, 3),
        torch.nn.Embedding(1000, 128),
        torch.nn.LayerNorm(512),
        torch.nn.Linear(512, 512).half(),
        torch.nn.Linear(512, 512).to(torch.bfloat16),
    )
    path = tmp_path / "model.safetensors"
    save_torch({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    assert _scan(path) == []


def test_upcast_and_dequantised_weights_are_clean(tmp_path: Path) -> None:
    w = normal_weights()
    upcast = w.astype(np.float16).astype(np.float32)
    dequantised = (np.round(w / 0.001).clip(-127, 127) * 0.001).astype(np.float32)
    path = tmp_path / "model.safetensors"
    save_file({"upcast": upcast, "dequantised": dequantised, "half": w.astype(np.float16)}, str(path))
    assert _scan(path) == []


def test_elf_in_low_bytes_is_found_with_the_tensor_name(tmp_path: Path) -> None:
    findings = _scan(elf_in_weights(tmp_path))
    hits = [f for f in findings if f.rule_id == "WEIGHTS-EMBEDDED-PAYLOAD"]
    assert len(hits) == 1
    assert hits[0].location.detail == "tensor 'encoder.layer.0.weight', weight 1000"
    assert "ELF" in hits[0].message and "low byte" in hits[0].message
    assert hits[0].confidence is modelshield.Confidence.HIGH


def test_elf_is_not_looked_for_without_deep(tmp_path: Path) -> None:
    result = modelshield.scan(elf_in_weights(tmp_path), compute_hash=False)
    assert not [f for f in result.findings if f.rule_id.startswith("WEIGHTS-")]


def test_marker_pickle_in_low_bytes_is_found(tmp_path: Path) -> None:
    payload = pickle.dumps(_Marker(str(tmp_path / "marker")), protocol=4)
    path = tmp_path / "model.safetensors"
    save_file({"head.weight": embed_low_byte(normal_weights(), payload)}, str(path))
    hits = [f for f in _scan(path) if f.rule_id == "WEIGHTS-EMBEDDED-PAYLOAD"]
    assert [(h.location.detail, "pickle" in h.message) for h in hits] == [
        ("tensor 'head.weight', weight 0", True)
    ]
    assert not (tmp_path / "marker").exists()


def test_protocol_two_pickle_in_npy_low_bytes_is_found(tmp_path: Path) -> None:
    payload = pickle.dumps(_Marker("marker"), protocol=2)
    path = tmp_path / "weights.npy"
    np.save(path, embed_low_byte(normal_weights(), payload, at=12_345))
    hits = [f for f in _scan(path) if f.rule_id == "WEIGHTS-EMBEDDED-PAYLOAD"]
    assert [h.location.detail for h in hits] == [f"tensor {str(path)!r}, weight 12345"]


def test_fast_substitution_three_bytes_is_found(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"fc.weight": embed_low_three_bytes(normal_weights(), elf_bytes() * 16)}, str(path))
    hits = [f for f in _scan(path) if f.rule_id == "WEIGHTS-EMBEDDED-PAYLOAD"]
    assert [h.location.detail for h in hits] == ["tensor 'fc.weight', weight 0"]
    assert "low 3 bytes" in hits[0].message


def test_unsigned_text_payload_is_an_anomaly_of_medium_confidence(tmp_path: Path) -> None:
    findings = _scan(script_in_weights(tmp_path))
    assert [(f.rule_id, f.confidence) for f in findings] == [
        ("WEIGHTS-LOW-BIT-ANOMALY", modelshield.Confidence.MEDIUM)
    ]
    assert findings[0].location.detail is not None
    assert findings[0].location.detail.startswith("tensor 'decoder.proj.weight'")


def test_signature_split_across_chunks_is_found() -> None:
    from modelshield.analysis import weight_stats as weights

    n = weights.CHUNK_BYTES // 4 + 1024
    hostile = embed_low_byte(normal_weights(n), elf_bytes(), at=weights.CHUNK_BYTES // 4 - 2)
    data = hostile.tobytes()
    report = analyse_tensor(lambda off, k: data[off : off + k], 0, len(data), "F32")
    assert [(h.extraction, h.element) for h in report.hits] == [("low byte", weights.CHUNK_BYTES // 4 - 2)]


def test_memory_is_bounded_on_a_64_mb_tensor(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    save_file({"big": normal_weights(16 * 1024 * 1024)}, str(path))
    tracemalloc.start()
    try:
        findings = _scan(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert findings == []
    assert peak < 40 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while reading a 64 MiB tensor"


def test_elf_in_a_torch_checkpoint_storage_is_found(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    hostile = torch.from_numpy(embed_low_byte(normal_weights(), elf_bytes() * 8, at=77))
    torch.save({"fc.weight": hostile, "fc.bias": torch.zeros(16)}, path)
    hits = [f for f in _scan(path) if f.rule_id == "WEIGHTS-EMBEDDED-PAYLOAD"]
    assert len(hits) == 1
    assert hits[0].location.detail is not None and hits[0].location.detail.endswith("', weight 77")
    assert "data/" in hits[0].location.detail


def test_benign_torch_checkpoint_is_clean_with_deep(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Conv2d(8, 8, 3)).state_dict(), path)
    assert _scan(path) == []


def _write_gguf(path: Path, tensors: dict[str, np.ndarray], endianess: str = "little") -> Path:
    gguf = pytest.importorskip("gguf")
    order = gguf.GGUFEndian.BIG if endianess == "big" else gguf.GGUFEndian.LITTLE
    writer = gguf.GGUFWriter(str(path), "llama", endianess=order)
    for name, array in tensors.items():
        writer.add_tensor(name, array.byteswap() if endianess == "big" else array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_elf_in_gguf_weights_is_found(tmp_path: Path) -> None:
    hostile = embed_low_byte(normal_weights(), elf_bytes() * 32, at=500)
    path = _write_gguf(
        tmp_path / "model.gguf", {"blk.0.attn_q.weight": hostile, "token_embd": normal_weights(64)}
    )
    hits = [f for f in _scan(path) if f.rule_id == "WEIGHTS-EMBEDDED-PAYLOAD"]
    assert [h.location.detail for h in hits] == ["tensor 'blk.0.attn_q.weight', weight 500"]


def test_benign_gguf_is_clean_with_deep(tmp_path: Path) -> None:
    tensors = {
        "blk.0.ffn_up.weight": normal_weights(),
        "blk.0.ffn_norm": normal_weights(256).astype(np.float16),
    }
    assert _scan(_write_gguf(tmp_path / "model.gguf", tensors)) == []


def test_big_endian_gguf_is_not_judged_by_deep(tmp_path: Path) -> None:
    path = _write_gguf(tmp_path / "model.gguf", {"w": normal_weights(1024)}, endianess="big")
    result = modelshield.scan(path, compute_hash=False, deep=True)
    assert [(i.kind, i.message) for i in result.files[0].issues] == [
        ("deep-unsupported", "--deep reads little-endian weights only")
    ]


def _write_onnx(path: Path, initializers: dict[str, np.ndarray]) -> Path:
    onnx = pytest.importorskip("onnx")
    model = onnx_model(initializers)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_elf_in_onnx_initializer_is_found(tmp_path: Path) -> None:
    hostile = embed_low_byte(normal_weights(), elf_bytes() * 32, at=321)
    path = _write_onnx(tmp_path / "model.onnx", {"fc.weight": hostile, "fc.bias": normal_weights(64)})
    hits = [f for f in _scan(path) if f.rule_id == "WEIGHTS-EMBEDDED-PAYLOAD"]
    assert [h.location.detail for h in hits] == ["tensor 'fc.weight', weight 321"]


def test_benign_onnx_is_clean_with_deep(tmp_path: Path) -> None:
    tensors = {"fc.weight": normal_weights(), "fc.half": normal_weights(512).astype(np.float16)}
    assert _scan(_write_onnx(tmp_path / "model.onnx", tensors)) == []
