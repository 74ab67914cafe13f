"""Build GGUF samples in code: gguf.GGUFWriter output (benign) and hand-packed files (malformed, hostile)."""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
from tests.samples import chat_templates as templates

SampleBuilder = Callable[[Path], Path]

# Metadata value type ids of the GGUF format.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
F32, F16, Q4_0 = 0, 1, 2


# -- real writer output ----------------------------------------------------------------------------


def written(
    directory: Path,
    name: str = "model.gguf",
    *,
    big_endian: bool = False,
    chat_template: str | list[dict[str, str]] | None = templates.LLAMA31_TOOLS,
    tensors: bool = True,
) -> Path:
    """A small llama-shaped model written by gguf-py, with a tokenizer and a chat template."""
    path = directory / name
    endian = gguf.GGUFEndian.BIG if big_endian else gguf.GGUFEndian.LITTLE
    writer = gguf.GGUFWriter(str(path), "llama", endianess=endian)
    writer.add_name("tiny test model")
    writer.add_context_length(128)
    writer.add_block_count(1)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<s>", "</s>", "hello", "world"])
    writer.add_token_scores([0.0, 0.0, -1.5, -2.5])
    writer.add_token_types([3, 3, 1, 1])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    if tensors:
        writer.add_tensor("token_embd.weight", np.arange(4 * 64, dtype=np.float32).reshape(4, 64))
        writer.add_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float16))
        writer.add_tensor("output.weight", np.zeros((4, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def with_appended(directory: Path, payload: bytes) -> Path:
    path = written(directory, "appended.gguf")
    with open(path, "ab") as fh:
        fh.write(payload)
    return path


class MarkerPayload:
    """Unpickling runs a harmless command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def appended_pickle(directory: Path) -> Path:
    return with_appended(directory, pickle.dumps(MarkerPayload(directory / "marker")))


# -- hand-packed files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RawTensor:
    """A tensor description as it is packed into the header (n_dims may lie about len(dims))."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int = F32
    offset: int = 0
    n_dims: int | None = None
    name_length: int | None = None


@dataclass(frozen=True)
class RawGGUF:
    """A GGUF file packed field by field, so that every count and length can be made to lie."""

    kvs: tuple[bytes, ...] = ()
    tensors: tuple[RawTensor, ...] = ()
    version: int = 3
    order: str = "<"
    tensor_count: int | None = None
    kv_count: int | None = None
    alignment: int = 32
    data: bytes = b""
    pad_data: bool = True
    extra: dict[str, int] = field(default_factory=dict)

    def length(self, n: int) -> bytes:
        return struct.pack(self.order + ("I" if self.version == 1 else "Q"), n)

    def string(self, text: str | bytes, declared: int | None = None) -> bytes:
        raw = text.encode() if isinstance(text, str) else text
        return self.length(len(raw) if declared is None else declared) + raw

    def kv(self, key: str, value_type: int, value: bytes) -> bytes:
        return self.string(key) + struct.pack(self.order + "I", value_type) + value

    def kv_string(self, key: str, text: str, declared: int | None = None) -> bytes:
        return self.kv(key, STRING, self.string(text, declared))

    def kv_u32(self, key: str, value: int) -> bytes:
        return self.kv(key, UINT32, struct.pack(self.order + "I", value))

    def array(self, element_type: int, count: int, body: bytes) -> bytes:
        return struct.pack(self.order + "I", element_type) + self.length(count) + body

    def build(self) -> bytes:
        o = self.order
        out = bytearray(b"GGUF" + struct.pack(o + "I", self.version))
        out += self.length(len(self.tensors) if self.tensor_count is None else self.tensor_count)
        out += self.length(len(self.kvs) if self.kv_count is None else self.kv_count)
        for kv in self.kvs:
            out += kv
        for t in self.tensors:
            out += self.string(t.name, t.name_length)
            out += struct.pack(o + "I", len(t.dims) if t.n_dims is None else t.n_dims)
            for d in t.dims:
                out += self.length(d)
            out += struct.pack(o + "I", t.ggml_type) + struct.pack(o + "Q", t.offset)
        if self.pad_data:
            out += b"\0" * (-len(out) % self.alignment)
        out += self.data
        return bytes(out)

    def write(self, directory: Path, name: str) -> Path:
        path = directory / name
        path.write_bytes(self.build())
        return path


def _raw(name: str, make: Callable[[RawGGUF], RawGGUF]) -> SampleBuilder:
    return lambda directory: make(RawGGUF()).write(directory, name)


def huge_tensor_count(r: RawGGUF) -> RawGGUF:
    return RawGGUF(tensor_count=1 << 62, order=r.order)


def huge_kv_count(r: RawGGUF) -> RawGGUF:
    return RawGGUF(kv_count=(1 << 64) - 1, order=r.order)


def huge_array(r: RawGGUF) -> RawGGUF:
    return RawGGUF(kvs=(r.kv("tokenizer.ggml.scores", ARRAY, r.array(FLOAT32, 1 << 61, b"")),), order=r.order)


def huge_string_array(r: RawGGUF) -> RawGGUF:
    return RawGGUF(kvs=(r.kv("tokenizer.ggml.tokens", ARRAY, r.array(STRING, 1 << 60, b"")),), order=r.order)


def string_past_end(r: RawGGUF) -> RawGGUF:
    return RawGGUF(kvs=(r.kv_string("general.name", "tiny", declared=1 << 40),), order=r.order)


def key_past_end(r: RawGGUF) -> RawGGUF:
    return RawGGUF(kvs=(r.string("general.name", declared=(1 << 64) - 1),), order=r.order)


def tensor_name_past_end(r: RawGGUF) -> RawGGUF:
    return RawGGUF(tensors=(RawTensor("w", (8,), name_length=1 << 50),), order=r.order)


def too_many_dims(r: RawGGUF) -> RawGGUF:
    return RawGGUF(tensors=(RawTensor("blk.0.ffn_up.weight", (1, 1, 1, 1, 8, 1 << 40)),), order=r.order)


def unknown_type(r: RawGGUF) -> RawGGUF:
    return RawGGUF(tensors=(RawTensor("output.weight", (32,), ggml_type=4),), data=b"\0" * 64, order=r.order)


def misaligned(r: RawGGUF) -> RawGGUF:
    return RawGGUF(tensors=(RawTensor("output.weight", (8,), offset=4),), data=b"\0" * 64, order=r.order)


def overlapping(r: RawGGUF) -> RawGGUF:
    tensors = (RawTensor("a.weight", (32,), offset=0), RawTensor("b.weight", (32,), offset=64))
    return RawGGUF(tensors=tensors, data=b"\0" * 192, order=r.order)


def out_of_range(r: RawGGUF) -> RawGGUF:
    return RawGGUF(
        tensors=(RawTensor("output.weight", (8,), offset=1 << 40),), data=b"\0" * 32, order=r.order
    )


def overflowing_dims(r: RawGGUF) -> RawGGUF:
    return RawGGUF(tensors=(RawTensor("token_embd.weight", (1 << 32, 1 << 32)),), order=r.order)


def negative_dim(r: RawGGUF) -> RawGGUF:
    return RawGGUF(tensors=(RawTensor("token_embd.weight", ((1 << 64) - 8,)),), order=r.order)


def partial_block(r: RawGGUF) -> RawGGUF:
    return RawGGUF(tensors=(RawTensor("blk.0.attn_q.weight", (33,), ggml_type=Q4_0),), data=b"\0" * 64)


def bad_alignment(r: RawGGUF) -> RawGGUF:
    return RawGGUF(kvs=(r.kv_u32("general.alignment", 24),), order=r.order)


def zero_alignment(r: RawGGUF) -> RawGGUF:
    return RawGGUF(kvs=(r.kv_u32("general.alignment", 0),), order=r.order)


def data_gap(r: RawGGUF) -> RawGGUF:
    tensors = (RawTensor("a.weight", (8,), offset=0), RawTensor("b.weight", (8,), offset=128))
    return RawGGUF(
        tensors=tensors, data=b"\0" * 32 + b"MZ hidden".ljust(96, b"\0") + b"\0" * 32, order=r.order
    )


def duplicate_template(r: RawGGUF) -> RawGGUF:
    return RawGGUF(
        kvs=(
            r.kv_string("tokenizer.chat_template", templates.CHATML),
            r.kv_string("tokenizer.chat_template", templates.CYCLER_GLOBALS),
        ),
        order=r.order,
    )


def unknown_value_type(r: RawGGUF) -> RawGGUF:
    return RawGGUF(kvs=(r.kv("general.name", 99, b"\0" * 16),), order=r.order)


def deep_arrays(r: RawGGUF) -> RawGGUF:
    inner = r.array(UINT8, 1, b"\x01")
    for _ in range(4):
        inner = r.array(ARRAY, 1, inner)
    return RawGGUF(kvs=(r.kv("general.nested", ARRAY, inner),), order=r.order)


def nested_arrays(r: RawGGUF) -> RawGGUF:
    """Arrays of arrays of strings, two deep: gguf-py reads them; they are not a finding."""
    inner = r.array(STRING, 2, r.string("a") + r.string("bc"))
    return RawGGUF(kvs=(r.kv("general.pairs", ARRAY, r.array(ARRAY, 2, inner + inner)),), order=r.order)


def truncated(r: RawGGUF) -> RawGGUF:
    return RawGGUF(kvs=(r.kv_u32("general.alignment", 32)[:-2],), order=r.order, pad_data=False)


def hostile_template(template: str) -> Callable[[RawGGUF], RawGGUF]:
    return lambda r: RawGGUF(kvs=(r.kv_string("tokenizer.chat_template", template),), order=r.order)


def named_hostile_template(r: RawGGUF) -> RawGGUF:
    return RawGGUF(
        kvs=(
            r.kv_string("tokenizer.chat_template", templates.CHATML),
            r.kv_string("tokenizer.chat_template.tool_use", templates.CVE_2024_34359),
        ),
        order=r.order,
    )


def v1_model(r: RawGGUF) -> RawGGUF:
    """A GGUF v1 file: 32-bit counts, lengths and dimensions."""
    v1 = RawGGUF(version=1, order=r.order)
    return RawGGUF(
        version=1,
        order=r.order,
        kvs=(
            v1.kv_string("general.architecture", "llama"),
            v1.kv_string("tokenizer.chat_template", templates.CHATML),
        ),
        tensors=(RawTensor("output.weight", (8,)),),
        data=b"\0" * 32,
    )


MALFORMED: dict[str, tuple[Callable[[RawGGUF], RawGGUF], str, str]] = {
    "huge-tensor-count": (huge_tensor_count, "GGUF-ABSURD-COUNT", "tensor_count"),
    "huge-kv-count": (huge_kv_count, "GGUF-ABSURD-COUNT", "metadata_kv_count"),
    "huge-array": (huge_array, "GGUF-ABSURD-COUNT", "tokenizer.ggml.scores"),
    "huge-string-array": (huge_string_array, "GGUF-ABSURD-COUNT", "tokenizer.ggml.tokens"),
    "string-past-end": (string_past_end, "GGUF-STRING-LENGTH", "general.name"),
    "key-past-end": (key_past_end, "GGUF-STRING-LENGTH", "metadata key #0"),
    "tensor-name-past-end": (tensor_name_past_end, "GGUF-STRING-LENGTH", "tensor #0"),
    "too-many-dims": (too_many_dims, "GGUF-TOO-MANY-DIMS", "blk.0.ffn_up.weight"),
    "unknown-type": (unknown_type, "GGUF-UNKNOWN-TENSOR-TYPE", "output.weight"),
    "misaligned": (misaligned, "GGUF-MISALIGNED-TENSOR", "output.weight"),
    "overlapping": (overlapping, "GGUF-OVERLAPPING-TENSORS", "b.weight"),
    "out-of-range": (out_of_range, "GGUF-TENSOR-OUT-OF-RANGE", "output.weight"),
    "overflowing-dims": (overflowing_dims, "GGUF-DIMENSION-OVERFLOW", "token_embd.weight"),
    "negative-dim": (negative_dim, "GGUF-DIMENSION-OVERFLOW", "token_embd.weight"),
    "partial-block": (partial_block, "GGUF-DIMENSION-OVERFLOW", "blk.0.attn_q.weight"),
    "bad-alignment": (bad_alignment, "GGUF-BAD-ALIGNMENT", "general.alignment"),
    "zero-alignment": (zero_alignment, "GGUF-BAD-ALIGNMENT", "general.alignment"),
    "data-gap": (data_gap, "GGUF-DATA-GAP", "b.weight"),
    "duplicate-key": (duplicate_template, "GGUF-DUPLICATE-NAME", "tokenizer.chat_template"),
    "unknown-value-type": (unknown_value_type, "GGUF-MALFORMED", "general.name"),
    "deep-arrays": (deep_arrays, "GGUF-MALFORMED", "general.nested"),
    "truncated": (truncated, "GGUF-MALFORMED", "general.alignment"),
}
"""Name -> (how to build it, the rule it must fire, the location detail it must name)."""


def malformed(sample: str, order: str = "<") -> SampleBuilder:
    make, _, _ = MALFORMED[sample]
    return lambda directory: make(RawGGUF(order=order)).write(directory, f"{sample}.gguf")


RULE_SAMPLES: dict[str, SampleBuilder] = {
    "GGUF-MALFORMED": malformed("unknown-value-type"),
    "GGUF-ABSURD-COUNT": malformed("huge-tensor-count"),
    "GGUF-STRING-LENGTH": malformed("string-past-end"),
    "GGUF-TOO-MANY-DIMS": malformed("too-many-dims"),
    "GGUF-UNKNOWN-TENSOR-TYPE": malformed("unknown-type"),
    "GGUF-DIMENSION-OVERFLOW": malformed("overflowing-dims"),
    "GGUF-BAD-ALIGNMENT": malformed("bad-alignment"),
    "GGUF-MISALIGNED-TENSOR": malformed("misaligned"),
    "GGUF-TENSOR-OUT-OF-RANGE": malformed("out-of-range"),
    "GGUF-OVERLAPPING-TENSORS": malformed("overlapping"),
    "GGUF-DUPLICATE-NAME": malformed("duplicate-key"),
    "GGUF-DATA-GAP": malformed("data-gap"),
    "GGUF-APPENDED-DATA": lambda d: with_appended(d, b"MZ" + b"\0" * 62),
    "CHAT-TEMPLATE-GLOBALS-ROUTE": _raw("cycler.gguf", hostile_template(templates.CYCLER_GLOBALS)),
    "CHAT-TEMPLATE-DANGEROUS-NAME": _raw("cve.gguf", hostile_template(templates.CVE_2024_34359)),
    "CHAT-TEMPLATE-DUNDER-ACCESS": _raw("attr.gguf", hostile_template(templates.ATTR_CONCAT)),
    "CHAT-TEMPLATE-DYNAMIC-ATTRIBUTE": _raw("dyn.gguf", hostile_template(templates.ATTR_DYNAMIC)),
    "CHAT-TEMPLATE-INCLUDE": _raw("include.gguf", hostile_template(templates.INCLUDE)),
    "CHAT-TEMPLATE-UNPARSEABLE": _raw("broken.gguf", hostile_template(templates.BROKEN)),
}
"""Rule id -> a builder of one GGUF file that fires it (for the registry coverage test)."""
