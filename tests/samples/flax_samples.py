"""Flax msgpack checkpoints encoded as flax.serialization does (flax itself is not installed here):
nested string-keyed maps, arrays as extension 1 holding msgpack (shape, dtype name, bytes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import numpy as np


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return msgpack.ExtType(
            1, msgpack.packb((obj.shape, obj.dtype.name, obj.tobytes("C")), use_bin_type=True)
        )
    if isinstance(obj, np.generic):
        return msgpack.ExtType(3, msgpack.packb(((), obj.dtype.name, obj.tobytes()), use_bin_type=True))
    if isinstance(obj, complex):
        return msgpack.ExtType(2, msgpack.packb((obj.real, obj.imag)))
    return obj


def checkpoint(state: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(state, default=_encode, strict_types=True, use_bin_type=True)
    return data


def params() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "params": {
            "Dense_0": {"kernel": rng.random((4, 3), dtype=np.float32), "bias": np.zeros(3, np.float32)},
            "Dense_1": {"kernel": rng.random((3, 2)).astype(np.float16), "bias": np.zeros(2, np.float32)},
        },
        "step": np.int64(7),
        "opt_state": {"0": {"count": np.int32(3), "mu": {"scale": 1.5 + 0.5j}}, "lr": 0.01},
    }


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def unknown_ext() -> bytes:
    state = params()
    state["params"]["hook"] = msgpack.ExtType(42, b"payload")
    return checkpoint(state)


def truncated() -> bytes:
    return checkpoint(params())[:-40]


RULE_SAMPLES = {
    "FLAX-UNKNOWN-EXT": lambda d: write(d, "ext.msgpack", unknown_ext()),
    "FLAX-MALFORMED": lambda d: write(d, "short.msgpack", truncated()),
}
