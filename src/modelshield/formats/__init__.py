"""The one ordered tuple of format handlers: most specific first, generic containers and pickle last."""

from __future__ import annotations

from modelshield.formats import (
    compressed,
    executable,
    gguf,
    hf_config,
    keras,
    mlflow,
    nemo,
    numpy,
    onnx,
    pickle,
    placeholder,
    pytorch_legacy,
    pytorch_zip,
    safetensors,
    sevenzip,
    tar,
    tensorflow,
    torchscript,
    torchserve,
    unanalysed,
    zip,
)
from modelshield.formats.base import FormatHandler

HANDLERS: tuple[FormatHandler, ...] = (
    placeholder,
    numpy,
    mlflow,
    nemo,
    nemo.HYDRA_CONFIG,
    hf_config,
    hf_config.REMOTE_CODE_SOURCE,
    torchserve,
    torchscript,
    pytorch_zip,
    pytorch_legacy,
    keras,
    zip,
    tar,
    sevenzip,
    *compressed.HANDLERS,
    safetensors,
    gguf,
    onnx,
    tensorflow,
    *unanalysed.HANDLERS,
    executable,
    pickle,
)
