"""Rules about MLflow model directories: the MLmodel file and the environments it installs."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

FOREIGN_LOADER = Rule(
    id="MLFLOW-FOREIGN-LOADER",
    title="MLmodel names a loader module outside MLflow",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    description=(
        "mlflow.pyfunc.load_model imports python_function.loader_module and calls its _load_pyfunc. "
        "A module outside mlflow.* is code that runs as soon as the model is loaded (often shipped in "
        "the model's own code directory)."
    ),
    remediation=(
        "Review the named module before loading; only load models whose loader code you trust as much "
        "as your own."
    ),
)

MODEL_CODE = Rule(
    id="MLFLOW-MODEL-CODE",
    title="MLmodel loads the model by running a Python file",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    description=(
        "A 'models from code' pyfunc (model_code_path) is loaded by executing the named Python file. "
        "Whatever that file does runs at load time."
    ),
    remediation="Read the named file before loading the model; treat it as code you are about to run.",
)

CODE_PATH = Rule(
    id="MLFLOW-CODE-PATH",
    title="MLmodel adds bundled code to sys.path",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    cwe="CWE-427",
    description=(
        "The 'code' entry is put at the front of sys.path when the model loads: bundled modules then "
        "shadow installed packages of the same name and run on import."
    ),
    remediation="Review every file under the named directory before loading the model.",
)

PICKLED_MODEL = Rule(
    id="MLFLOW-PICKLED-MODEL",
    title="MLflow flavor stores the model as a pickle",
    severity=Severity.LOW,
    category=Category.UNSAFE_MODULE,
    references=("CVE-2024-37052", "CVE-2024-37056"),
    cwe="CWE-502",
    confidence=Confidence.MEDIUM,
    description=(
        "The flavor is loaded with pickle, cloudpickle or torch.load, which run whatever the file "
        "says. The named files are scanned on their own when the model directory is scanned."
    ),
    remediation="Scan the whole model directory, and prefer flavors that save without pickle.",
)

REMOTE_REQUIREMENT = Rule(
    id="REQUIREMENTS-REMOTE-SOURCE",
    title="Environment installs a package from a URL, a local path or another index",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    cwe="CWE-829",
    description=(
        "Serving or restoring the model's environment runs pip on this requirement. A URL, a local "
        "path or an alternative index bypasses the package registry the user trusts, and building "
        "a source package runs its setup code."
    ),
    remediation="Pin requirements to released versions from your trusted index before restoring it.",
)

YAML_PYTHON_TAG = Rule(
    id="YAML-PYTHON-TAG",
    title="YAML file builds Python objects when loaded unsafely",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    description=(
        "The file uses PyYAML's !!python/ tags (object/apply, name, module…). yaml.safe_load refuses "
        "them, but yaml.load with the full or unsafe loader imports and calls what they name. Model "
        "configuration files never need them."
    ),
    remediation=(
        "Do not load this file with yaml.load / yaml.unsafe_load; remove the tags or discard the model."
    ),
)

RULES: tuple[Rule, ...] = (
    FOREIGN_LOADER,
    MODEL_CODE,
    CODE_PATH,
    PICKLED_MODEL,
    REMOTE_REQUIREMENT,
    YAML_PYTHON_TAG,
)
