"""Rules about PyTorch checkpoints (zip and legacy), TorchScript archives and TorchServe .mar files."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_REBUILD = "Re-create the checkpoint with torch.save from trusted code, or get it again from the publisher."
_REVIEW_CODE = "Read the code in the evidence before loading; load TorchScript only from sources you trust."

EMBEDDED_CONTENT = Rule(
    id="PYTORCH-EMBEDDED-CONTENT",
    title="PyTorch archive carries members torch never reads",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    confidence=Confidence.MEDIUM,
    description=(
        "torch.save writes data.pkl, data/<key> storages and a few small records. Scripts, "
        "executables, archives or extra pickles in the archive are not loaded by torch.load, but ride "
        "along with the model to wherever it is copied; they are scanned as children of this file."
    ),
    remediation="Find out who added the member and why; a checkpoint written by torch.save has none.",
)

MISSING_RECORD = Rule(
    id="PYTORCH-MISSING-RECORD",
    title="PyTorch archive lacks or mangles a standard record",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    description=(
        "The version or byteorder record is missing, not a number, or outside what torch accepts. "
        "torch.save always writes them; their absence means the archive was built by other means."
    ),
    remediation=_REBUILD,
)

DUPLICATE_PICKLE = Rule(
    id="PYTORCH-DUPLICATE-PICKLE",
    title="PyTorch archive has more than one data.pkl",
    severity=Severity.HIGH,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    references=("CVE-2025-1944",),
    description=(
        "Two records claim the same pickle name. torch.load deserialises one of them; a scanner or "
        "reviewer that reads the other sees a different model. Every copy is scanned."
    ),
    remediation="Do not load the file; a checkpoint written by torch.save names each record once.",
)

MISSING_STORAGE = Rule(
    id="PYTORCH-MISSING-STORAGE",
    title="data.pkl references a storage the archive does not hold",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    description=(
        "A persistent id ('storage', type, key, location, numel) names data/<key>, but no such record "
        "exists (or it is too short for numel elements). torch.load fails or reads the wrong bytes."
    ),
    remediation=_REBUILD,
)

ODD_PERSISTENT_ID = Rule(
    id="PYTORCH-ODD-PERSISTENT-ID",
    title="data.pkl uses a persistent id torch.load does not write",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-502",
    confidence=Confidence.MEDIUM,
    description=(
        "torch.save only emits ('storage', …) persistent ids. Anything else is handed to the loader's "
        "persistent_load, which a custom loader may resolve in unexpected ways."
    ),
    remediation=_REBUILD,
)

LEGACY_APPENDED = Rule(
    id="PYTORCH-LEGACY-APPENDED",
    title="Data follows the storages of a legacy PyTorch file",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    confidence=Confidence.MEDIUM,
    description=(
        "The legacy format ends after the last storage named in the storage-keys pickle. Extra bytes "
        "are not read by torch.load and are a hiding place for a payload (scanned as a child)."
    ),
    remediation=_REBUILD,
)

LEGACY_TRUNCATED = Rule(
    id="PYTORCH-LEGACY-TRUNCATED",
    title="Legacy PyTorch file ends inside its storages",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    description="The storage region is shorter than the sizes it declares; torch.load fails on it.",
    remediation=_REBUILD,
)

LEGACY_HEADER = Rule(
    id="PYTORCH-LEGACY-HEADER",
    title="Legacy PyTorch file has an unexpected protocol version or layout",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    description=(
        "The pickles after the magic number are not the protocol version 1001, sys_info, object and "
        "storage keys that torch.save wrote, so the storage region cannot be walked as torch would."
    ),
    remediation=_REBUILD,
)

TS_FILE_ACCESS = Rule(
    id="TORCHSCRIPT-FILE-ACCESS",
    title="TorchScript code reads or writes files",
    severity=Severity.HIGH,
    category=Category.FILESYSTEM,
    cwe="CWE-73",
    description=(
        "The archive's code calls an operator that touches the file system (aten::save writes a "
        "file, aten::from_file reads or maps one). Code in a __setstate__ method runs during "
        "torch.jit.load itself (critical); elsewhere it runs when the model is called."
    ),
    remediation=_REVIEW_CODE,
)

TS_LIBRARY_LOAD = Rule(
    id="TORCHSCRIPT-LIBRARY-LOAD",
    title="TorchScript code loads a native library",
    severity=Severity.CRITICAL,
    category=Category.CODE_EXECUTION,
    cwe="CWE-114",
    description="Loading a shared library runs its native initialisers: arbitrary code.",
    remediation=_REVIEW_CODE,
)

TS_PYTHON_ESCAPE = Rule(
    id="TORCHSCRIPT-PYTHON-ESCAPE",
    title="TorchScript code names Python facilities that run code or reach the system",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    confidence=Confidence.MEDIUM,
    description=(
        "open, exec, eval, __import__, os, subprocess, socket and similar names are not TorchScript; "
        "the compiler never emits them. Their presence means the archive's code was edited by hand "
        "to reach outside the model."
    ),
    remediation=_REVIEW_CODE,
)

TS_CUSTOM_OP = Rule(
    id="TORCHSCRIPT-CUSTOM-OP",
    title="TorchScript code calls an operator outside PyTorch's own namespaces",
    severity=Severity.MEDIUM,
    category=Category.UNSAFE_MODULE,
    cwe="CWE-829",
    confidence=Confidence.MEDIUM,
    description=(
        "ops.<namespace>.<name> resolves to a native operator registered by an extension library. "
        "What it does cannot be known from the archive; it runs with the loader's privileges."
    ),
    remediation="Identify the extension that provides the operator and make sure it is trusted.",
)

TS_CUSTOM_CLASS = Rule(
    id="TORCHSCRIPT-CUSTOM-CLASS",
    title="TorchScript code uses a custom C++ class",
    severity=Severity.MEDIUM,
    category=Category.UNSAFE_MODULE,
    cwe="CWE-829",
    confidence=Confidence.MEDIUM,
    description=(
        "torch.classes.<namespace>.<Class> is native code registered by an extension; its "
        "__setstate__ runs while the archive is loaded."
    ),
    remediation="Identify the extension that provides the class and make sure it is trusted.",
)

TS_NETWORK_OP = Rule(
    id="TORCHSCRIPT-NETWORK-OP",
    title="TorchScript code calls distributed communication operators",
    severity=Severity.MEDIUM,
    category=Category.NETWORK,
    confidence=Confidence.MEDIUM,
    description="c10d operators send and receive tensors over the process group's network transport.",
    remediation="A model for inference has no reason to communicate; review the code in the evidence.",
)

TS_UNPARSED_CODE = Rule(
    id="TORCHSCRIPT-UNPARSED-CODE",
    title="TorchScript code member does not parse",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    confidence=Confidence.MEDIUM,
    description=(
        "torch.jit.save writes code that parses as Python. A member that does not was edited by hand; "
        "it was searched for dangerous names as text only."
    ),
    remediation=_REVIEW_CODE,
)

SERVE_CUSTOM_HANDLER = Rule(
    id="TORCHSERVE-CUSTOM-HANDLER",
    title="TorchServe archive runs a custom Python handler",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    description=(
        "The manifest's handler is a Python file inside the archive. TorchServe imports and runs it "
        "when the model is served: arbitrary code with the server's privileges."
    ),
    remediation="Review the handler file named in the finding before serving the model.",
)

SERVE_REQUIREMENTS = Rule(
    id="TORCHSERVE-REQUIREMENTS",
    title="TorchServe archive installs Python packages when served",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    cwe="CWE-829",
    description=(
        "With install_py_dep_per_model enabled, TorchServe runs pip install on the archive's "
        "requirements file at load time; installing a package runs its setup code."
    ),
    remediation="Review the requirements, or keep install_py_dep_per_model disabled on the server.",
)

SERVE_MISSING_FILE = Rule(
    id="TORCHSERVE-MISSING-FILE",
    title="TorchServe manifest names a file the archive does not hold",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    description="The manifest points at a model, handler or extra file that is not in the archive.",
    remediation="Re-create the archive with torch-model-archiver.",
)

RULES: tuple[Rule, ...] = (
    EMBEDDED_CONTENT,
    MISSING_RECORD,
    DUPLICATE_PICKLE,
    MISSING_STORAGE,
    ODD_PERSISTENT_ID,
    LEGACY_APPENDED,
    LEGACY_TRUNCATED,
    LEGACY_HEADER,
    TS_FILE_ACCESS,
    TS_LIBRARY_LOAD,
    TS_PYTHON_ESCAPE,
    TS_CUSTOM_OP,
    TS_CUSTOM_CLASS,
    TS_NETWORK_OP,
    TS_UNPARSED_CODE,
    SERVE_CUSTOM_HANDLER,
    SERVE_REQUIREMENTS,
    SERVE_MISSING_FILE,
)
