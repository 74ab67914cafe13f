"""Rules about Hydra instantiation targets: NeMo model configs and Hydra YAML configs shipped with models."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

HYDRA_DANGEROUS_TARGET = Rule(
    id="HYDRA-DANGEROUS-TARGET",
    title="Hydra config instantiates a dangerous callable",
    severity=Severity.CRITICAL,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    references=("CVE-2025-23304",),
    description=(
        "hydra.utils.instantiate imports the callable a `_target_` key names and calls it with the "
        "node's other keys (and `_args_`) as arguments. NeMo does this for model_config.yaml while "
        "restore_from / from_pretrained rebuild the model, so a target such as os.system, "
        "builtins.exec, subprocess.Popen or a model loader runs as soon as the .nemo file is restored."
    ),
    remediation=(
        "Do not restore or instantiate this model or config. If the target is expected, allow it "
        "explicitly with [hydra_targets] allow in a policy file."
    ),
)

HYDRA_UNKNOWN_TARGET = Rule(
    id="HYDRA-UNKNOWN-TARGET",
    title="Hydra config instantiates a callable outside known ML namespaces",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    confidence=Confidence.MEDIUM,
    references=("CVE-2025-23304",),
    description=(
        "A `_target_` (or NeMo's legacy `target`/`cls`) names a callable that is neither a "
        "constructor of a known ML library (nemo, torch.nn, torch.optim, Lightning callbacks, "
        "Megatron…) nor on the denylist. Instantiating the config imports that module and calls the "
        "callable with attacker-chosen arguments."
    ),
    remediation=(
        "Check that the named callable is a class you expect; allow it with [hydra_targets] allow "
        "in a policy file, or remove it from the config."
    ),
)

RULES: tuple[Rule, ...] = (HYDRA_DANGEROUS_TARGET, HYDRA_UNKNOWN_TARGET)
