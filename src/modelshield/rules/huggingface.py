"""Rules about Hugging Face model folders: code that trust_remote_code=True would run."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

HF_REMOTE_CODE = Rule(
    id="HF-REMOTE-CODE",
    title="Config maps a model class to a Python file in the repository",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    confidence=Confidence.HIGH,
    description=(
        "An `auto_map` (or `custom_pipelines`) entry of config.json, tokenizer_config.json or a "
        "processor config names `module.Class`. Loading the model with trust_remote_code=True imports "
        "`module.py` from the repository and runs it: whatever the file does at import or construction "
        "runs with the user's privileges."
    ),
    remediation=(
        "Read the named Python file before loading with trust_remote_code=True, pin the revision you "
        "reviewed, or use a model whose architecture transformers ships."
    ),
)

HF_REMOTE_CODE_OTHER_REPO = Rule(
    id="HF-REMOTE-CODE-OTHER-REPO",
    title="Config maps a model class to code in another repository",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-829",
    description=(
        "An `auto_map` entry of the form `owner/repo--module.Class` makes trust_remote_code=True "
        "download `module.py` from another Hub repository and run it. That code is not in the scanned "
        "folder, so this scan never saw it, and it can change after the model was reviewed."
    ),
    remediation=(
        "Do not load with trust_remote_code=True unless you have reviewed the other repository at a "
        "pinned revision; prefer copying the reviewed code into the model folder."
    ),
)

HF_REMOTE_CODE_FILE = Rule(
    id="HF-REMOTE-CODE-FILE",
    title="Python model code for trust_remote_code",
    severity=Severity.INFO,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    confidence=Confidence.MEDIUM,
    description=(
        "The file defines transformers model, config, tokenizer, processor or pipeline classes: it is "
        "the kind of file trust_remote_code=True imports and runs. Its code is not judged here."
    ),
    remediation="Review this file as code before loading the model with trust_remote_code=True.",
)

RULES: tuple[Rule, ...] = (HF_REMOTE_CODE, HF_REMOTE_CODE_OTHER_REPO, HF_REMOTE_CODE_FILE)
