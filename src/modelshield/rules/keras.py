"""Rules about Keras v3 `.keras` archives: what config.json makes keras.saving.load_model import and run."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

KERAS_LAMBDA = Rule(
    id="KERAS-LAMBDA",
    title="Keras Lambda layer carries Python bytecode",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    references=("CVE-2024-3660",),
    description=(
        "A Lambda layer stores its function as base64 marshalled Python bytecode. Loading with "
        "safe_mode=False (or with a Keras before 2.13 / a safe_mode bypass) unmarshals it and runs it "
        "when the layer is called. The names and constants the code carries are listed; names that "
        "reach os, subprocess, eval or exec make the finding critical."
    ),
    remediation=(
        "Load only with safe_mode=True (the default) and never enable unsafe deserialization for this "
        "file; rebuild the model with a registered custom layer instead of a Lambda."
    ),
)

KERAS_DANGEROUS_OBJECT = Rule(
    id="KERAS-DANGEROUS-OBJECT",
    title="Keras config resolves a dangerous callable",
    severity=Severity.CRITICAL,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    references=("CVE-2025-1550", "CVE-2025-8747", "CVE-2025-9906"),
    description=(
        "A serialized object's `module` and `class_name` (or a function's name) name a callable such "
        "as os.system, builtins.exec, keras.utils.get_file or keras.config.enable_unsafe_deserialization. "
        "Keras before 3.9 imports any module named in config.json and calls what it finds with the "
        "object's config, even in safe mode; later bypasses reached side-effecting Keras functions."
    ),
    remediation="Do not load this model; upgrade Keras and keep safe_mode=True.",
)

KERAS_CUSTOM_OBJECT = Rule(
    id="KERAS-CUSTOM-OBJECT",
    title="Keras config names a class outside Keras",
    severity=Severity.MEDIUM,
    category=Category.UNSAFE_MODULE,
    cwe="CWE-829",
    confidence=Confidence.MEDIUM,
    description=(
        "A serialized object names a `module` outside keras, keras_hub, keras_nlp and keras_cv, or a "
        "registered custom object. Older Keras imports that module while loading; newer Keras needs "
        "the user's own code for it. Either way, code other than Keras decides what the layer does."
    ),
    remediation="Check that the named class is your own, reviewed code before loading the model.",
)

KERAS_TORCH_MODULE = Rule(
    id="KERAS-TORCH-MODULE",
    title="Keras TorchModuleWrapper stores a pickled PyTorch module",
    severity=Severity.MEDIUM,
    category=Category.UNSAFE_MODULE,
    cwe="CWE-502",
    description=(
        "TorchModuleWrapper saves its module with torch.save and restores it with torch.load, which "
        "unpickles it. The embedded bytes are scanned as a child; this finding says that loading the "
        "model runs an unpickler on them."
    ),
    remediation="Review the embedded module's findings; prefer native Keras layers.",
)

RULES: tuple[Rule, ...] = (KERAS_LAMBDA, KERAS_DANGEROUS_OBJECT, KERAS_CUSTOM_OBJECT, KERAS_TORCH_MODULE)
