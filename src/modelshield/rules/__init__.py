"""The one table of rules: every rule module listed here, ids checked for duplicates at import."""

from __future__ import annotations

from modelshield.engine.rules import Rule, RuleRegistry, build_registry
from modelshield.rules import (
    archive,
    flax,
    gguf,
    hdf5,
    huggingface,
    keras,
    mlflow,
    nemo,
    numpy,
    onnx,
    payload,
    pickle,
    pytorch,
    safetensors,
    skops,
    tensorflow,
    tflite,
    weights,
    xml_models,
)

ALL_RULES: tuple[Rule, ...] = (
    *pickle.RULES,
    *archive.RULES,
    *pytorch.RULES,
    *numpy.RULES,
    *mlflow.RULES,
    *nemo.RULES,
    *huggingface.RULES,
    *keras.RULES,
    *safetensors.RULES,
    *payload.RULES,
    *gguf.RULES,
    *hdf5.RULES,
    *onnx.RULES,
    *tensorflow.RULES,
    *tflite.RULES,
    *skops.RULES,
    *flax.RULES,
    *xml_models.RULES,
    *weights.RULES,
)
REGISTRY: RuleRegistry = build_registry(ALL_RULES)
