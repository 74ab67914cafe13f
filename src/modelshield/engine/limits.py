"""Every bound the scanner keeps, in one validated object, and the parsing of user-given values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Literal

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

LimitUnit = Literal["bytes", "seconds", "count", "ratio"]


class LimitExceeded(Exception):
    """Raised when scanning would cross a limit; the dispatcher turns it into an issue and a finding."""

    def __init__(self, limit: str, value: int | float, maximum: int | float, message: str = "") -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        super().__init__(message or f"{limit} limit exceeded: {value} > {maximum}")


class InvalidLimit(ValueError):
    """A limit name or value given by a user (policy file, command line, API) that cannot be used."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one scan may read, expand, nest and spend. Crossing one is never a clean verdict:
    the file gets an issue naming the limit (and, for bombs and absurd counts, a finding)."""

    max_bytes_read_per_file: int = 64 * GiB
    """Bytes the handlers of one file may read from it and its members, decompressed bytes included
    (hashing is not counted, nor the file's own bytes mapped once as a whole). Overlapping archive
    members and repeated reads cannot multiply the work past this."""
    max_nesting_depth: int = 12
    """Containers inside containers (a zip in a tar in a gzip, a pickle loaded by a pickle…) followed
    before the rest is left unscanned."""
    max_members_per_archive: int = 100_000
    """Members listed in one zip, tar or 7z archive; the members past it are not scanned."""
    max_member_bytes: int = 2 * GiB
    """Declared or decoded size of one archive member or decompressed stream that is scanned."""
    max_expanded_bytes_per_file: int = 8 * GiB
    """Total bytes decompressed from one file and all its members."""
    max_expansion_ratio: float = 200.0
    """Decompressed size over compressed size above which a stream (past 8 MiB) or an archive is a
    decompression bomb."""
    max_materialized_bytes: int = 96 * MiB
    """Bytes of a decompressed member held in memory at once when a handler needs it whole (a
    compressed pickle, a 7z archive). Within the expansion ratio, half a megabyte of gzip can decode to
    this much, so it is the largest buffer a small hostile file can make the scanner hold; with a pickle
    machine at its own limits on top, the scan stays under 256 MB."""
    max_pickle_opcodes: int = 2_500_000
    """Opcodes the symbolic pickle machine runs in one pickle; the calls and imports found before it
    are still reported. An opcode may leave a value behind (~50 bytes for a number), so this also
    bounds the machine's memory; a 10 MB pickle of two million numbers fits."""
    max_pickle_objects: int = 150_000
    """Objects a pickle makes (containers, tuples, calls' results, imported names), each costing the
    machine up to several hundred bytes: a pickle of one-byte `}` opcodes cannot turn a few
    megabytes into gigabytes. A large PyTorch state dict makes about eight per tensor."""
    max_pickle_memo_entries: int = 500_000
    """Entries of one pickle's memo (values kept for reuse by index); past it, the pickle is not
    followed further."""
    max_pickle_string_bytes: int = 4 * GiB
    """Declared length of one string or bytes argument in a pickle; a longer declaration stops the
    pickle before anything is copied."""
    max_pickles_per_stream: int = 64
    """Pickles read one after another from a single stream (torch legacy files hold several)."""
    max_nested_payload_bytes: int = 64 * MiB
    """Decoded size of a payload found inside another (base64 or compressed code in a pickle or in
    tensor metadata) that is scanned again."""
    max_gguf_metadata_entries: int = 1 << 14
    """Key-value pairs declared in a GGUF header (real models have a few dozen)."""
    max_gguf_tensors: int = 1 << 18
    """Tensors declared in a GGUF header."""
    max_template_bytes: int = 1 * MiB
    """Length of one chat template (GGUF metadata, tokenizer config) parsed as Jinja (in characters
    once decoded)."""
    max_crc_check_bytes: int = 1 * MiB
    """Size up to which an archive member is decompressed (or read) once more to verify its CRC-32.
    Larger members are tensor data in practice and never re-read for it; every member is scanned by
    content whatever its CRC says."""
    max_protobuf_depth: int = 64
    """Nesting of protobuf messages (ONNX, TensorFlow graphs) followed while walking the wire format;
    each ONNX subgraph level costs three (graph › node › attribute)."""
    max_config_bytes: int = 4 * MiB
    """Size of a JSON model description parsed whole (a safetensors header, Keras config.json, each
    node of a tf.keras keras_metadata.pb, skops schema.json, Hugging Face config and
    tokenizer_config.json). Parsing
    multiplies it: 6 MiB of `{},` in a safetensors header took 230 MB. Real configs and headers are
    kilobytes to a few megabytes."""
    max_yaml_bytes: int = 256 * KiB
    """Size of a YAML document parsed whole (NeMo model_config.yaml, Hydra configs, MLflow MLmodel and
    environments). YAML parsing multiplies it about 350 times (510 KiB of `{},` took 200 MB and 15 s,
    7 MiB took 2.5 GB); real model configs are tens of kilobytes."""
    max_npy_header_bytes: int = 64 * KiB
    """Size of a .npy header that is parsed (as a Python literal, never evaluated). Parsing multiplies
    it about 560 times (1 MiB of `{},` took 590 MB); numpy itself reads at most 10,000 bytes unless
    told otherwise, and a longer header is reported whether or not it is parsed."""
    max_config_nodes: int = 500_000
    """Values visited in one model configuration (Keras config, NeMo/Hydra YAML) before it is given
    up."""
    max_seconds_per_file: float = 300.0
    """Wall-clock time spent scanning one file and its members."""
    child_memory_bytes: int = 1 * GiB
    """Address-space limit of a child process that runs a native parser, or a whole file's scan under
    `--isolate`."""
    child_cpu_seconds: int = 120
    """CPU time of such a child process before the kernel stops it."""
    child_wall_seconds: float = 300.0
    """Wall-clock time of such a child process before it is killed."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            wants_int = f.type == "int"
            if isinstance(value, bool) or not isinstance(value, int if wants_int else (int, float)):
                kind = "an integer" if wants_int else "a number"
                raise InvalidLimit(f.name, f"limit {f.name} must be {kind}, got {value!r}")
            if not value > 0:  # also refuses NaN
                raise InvalidLimit(f.name, f"limit {f.name} must be positive, got {value!r}")
            if value == float("inf"):
                raise InvalidLimit(f.name, f"limit {f.name} must be finite")
        if self.max_expansion_ratio < 1:
            raise InvalidLimit("max_expansion_ratio", "limit max_expansion_ratio must be at least 1")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Limits:
        """The defaults with `values` applied (see `with_overrides`)."""
        return DEFAULT_LIMITS.with_overrides(values)

    def with_overrides(self, values: Mapping[str, object]) -> Limits:
        """These limits with `values` replaced; a value is a number or a string with a unit
        (`512MiB`, `2GiB`, `30s`, `5m`). Unknown names and unusable values raise `InvalidLimit`."""
        changes = {name: parse_limit_value(name, value) for name, value in values.items()}
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_LIMITS = Limits()

_FIELD_TYPES = {f.name: f.type for f in fields(Limits)}
_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": KiB,
    "kb": 1000,
    "kib": KiB,
    "m": MiB,
    "mb": 1000**2,
    "mib": MiB,
    "g": GiB,
    "gb": 1000**3,
    "gib": GiB,
    "t": 1024 * GiB,
    "tb": 1000**4,
    "tib": 1024 * GiB,
}
_SECOND_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}
_COUNT_UNITS = {"": 1, "k": 1000, "m": 1000**2}
_RATIO_UNITS = {"": 1.0, "x": 1.0}
_UNITS: dict[LimitUnit, Mapping[str, float]] = {
    "bytes": _BYTE_UNITS,
    "seconds": _SECOND_UNITS,
    "count": _COUNT_UNITS,
    "ratio": _RATIO_UNITS,
}
_UNIT_EXAMPLES: dict[LimitUnit, str] = {
    "bytes": "bytes, or with a unit: 512KiB, 64MiB, 2GiB (KB, MB, GB are powers of 1000)",
    "seconds": "seconds, or with a unit: 500ms, 30s, 5m, 1h",
    "count": "a whole number (1000, 10k, 2M)",
    "ratio": "a number (200 or 200x)",
}
_VALUE = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9_]+)?)\s*([A-Za-z]*)\s*$")


def limit_unit(name: str) -> LimitUnit:
    """What a limit measures, from the words of its name: sizes say bytes, times say seconds."""
    words = name.split("_")
    if "bytes" in words:
        return "bytes"
    if "seconds" in words:
        return "seconds"
    if "ratio" in words:
        return "ratio"
    return "count"


def parse_limit_value(name: str, value: object) -> int | float:
    """The value of limit `name` given as a number or as text with a unit; raises `InvalidLimit`."""
    field_type = _FIELD_TYPES.get(name)
    if field_type is None:
        raise InvalidLimit(name, _unknown_name_message(name))
    unit = limit_unit(name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidLimit(name, f"limit {name} must be {_UNIT_EXAMPLES[unit]}; got {value!r}")
    number = _number_in(name, value, unit) if isinstance(value, str) else value
    if field_type == "int":
        if number != int(number):
            raise InvalidLimit(name, f"limit {name} must be a whole number of {_whole(unit)}; got {value!r}")
        number = int(number)
    else:
        number = float(number)
    if not number > 0 or number == float("inf"):
        raise InvalidLimit(name, f"limit {name} must be positive; got {value!r}")
    return number


def parse_size(text: str) -> int:
    """A positive whole number of bytes from `1024`, `512MiB`, `10GiB` or `2GB` (KiB, MiB, GiB, TiB and K, M,
    G, T are powers of 1024; KB, MB, GB, TB powers of 1000). Raises ValueError."""
    number = _number_in("size", text, "bytes")
    if number != int(number) or number <= 0:
        raise ValueError(f"not a positive whole number of bytes: {text!r}")
    return int(number)


def _number_in(name: str, text: str, unit: LimitUnit) -> int | float:
    match = _VALUE.match(text)
    scale = _UNITS[unit].get(match.group(2).lower()) if match else None
    if match is None or scale is None:
        raise InvalidLimit(name, f"limit {name} must be {_UNIT_EXAMPLES[unit]}; got {text!r}")
    digits = match.group(1).replace("_", "")
    if "." not in digits and float(scale).is_integer():
        return int(digits) * int(scale)  # exact, even for very large byte counts
    return float(digits) * scale


def _whole(unit: LimitUnit) -> str:
    return {"bytes": "bytes", "seconds": "seconds", "count": "items", "ratio": "times"}[unit]


def _unknown_name_message(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, Limits.names(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown limit {name!r}{hint}; known limits: {', '.join(Limits.names())}"


class ReadBudget:
    """Bytes read so far from one scanned file and its members, against `max_bytes_read_per_file`."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.used = 0

    def spend(self, n: int) -> None:
        self.used += n
        self.check()

    def check(self) -> None:
        if self.used > self.maximum:
            raise LimitExceeded(
                "max_bytes_read_per_file",
                self.used,
                self.maximum,
                f"max_bytes_read_per_file limit exceeded: handlers read {self.used} bytes of this file and "
                f"its members (limit {self.maximum}); the rest is not scanned",
            )
