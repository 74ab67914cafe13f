"""Rules about TensorFlow graphs (SavedModel saved_model.pb, frozen GraphDef .pb): ops that reach
outside the model — files, Python, the network, debug hooks — and ops no standard build defines."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_DONT_LOAD = (
    "Do not load or serve the model until you know why it needs this op; obtain the model from a "
    "trusted source, or re-export it from trusted code and weights."
)
_SAVEDMODEL_SECURITY = "https://github.com/tensorflow/tensorflow/blob/master/SECURITY.md"

PYTHON_CALL = Rule(
    id="TF-PYTHON-CALL",
    title="TensorFlow graph calls back into Python",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    description=(
        "A PyFunc, PyFuncStateless or EagerPyFunc node runs a Python callable when the graph "
        "executes. The callable is looked up in the loading process by token, so the graph is a "
        "way to run whatever code the loading application registered or was tricked into importing."
    ),
    remediation=_DONT_LOAD,
    references=(_SAVEDMODEL_SECURITY,),
)

FILE_ACCESS = Rule(
    id="TF-FILE-ACCESS",
    title="TensorFlow graph reads or writes files",
    severity=Severity.HIGH,
    category=Category.FILESYSTEM,
    cwe="CWE-73",
    description=(
        "The node reads, lists, memory-maps or writes files (ReadFile, WriteFile, MatchingFiles, "
        "file readers and datasets, summary writers, ImmutableConst, PrintV2 to a file, a lookup "
        "table initialised from a file the graph names itself instead of a SavedModel asset). Serving "
        "the model runs it with the server's permissions (table initialisers and resource initialisers "
        "run inside tf.saved_model.load): it can leak host files through model outputs or overwrite "
        "files. Checkpoint ops of the SavedModel format (SaveV2, RestoreV2) are not reported."
    ),
    remediation=_DONT_LOAD,
    references=(_SAVEDMODEL_SECURITY,),
)

NETWORK_OP = Rule(
    id="TF-NETWORK-OP",
    title="TensorFlow graph talks to another host",
    severity=Severity.HIGH,
    category=Category.NETWORK,
    cwe="CWE-918",
    description=(
        "The node connects to a remote service when the graph runs (tf.data service datasets, "
        "remote function calls). A model has no reason to reach the network at inference time."
    ),
    remediation=_DONT_LOAD,
    references=(_SAVEDMODEL_SECURITY,),
)

DEBUG_OP = Rule(
    id="TF-DEBUG-OP",
    title="TensorFlow graph carries a debugger hook",
    severity=Severity.HIGH,
    category=Category.NETWORK,
    cwe="CWE-200",
    description=(
        "tfdbg ops (DebugIdentity, DebugNumericSummary, Copy with debug specs…) send tensors to the "
        "URLs in their attributes (file:// or grpc://). Left in a served graph they write or stream "
        "inputs and activations elsewhere."
    ),
    remediation=_DONT_LOAD,
)

UNKNOWN_OP = Rule(
    id="TF-UNKNOWN-OP",
    title="TensorFlow graph uses an op outside the ordinary op set",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    confidence=Confidence.LOW,
    cwe="CWE-829",
    description=(
        "The op is neither in modelshield's list of ordinary TensorFlow ops nor a function defined "
        "in the graph's library. It may be a rarer standard op, or a custom op that needs a native "
        "library (tf.load_op_library) to run: native code from the model's author. Review it."
    ),
    remediation=(
        "Check which library defines the op; if it is a custom op, load the model only with a library "
        "you trust, or allow the op in your policy once reviewed."
    ),
)

ASSET_PATH = Rule(
    id="TF-ASSET-PATH",
    title="SavedModel asset path leaves the assets folder",
    severity=Severity.HIGH,
    category=Category.FILESYSTEM,
    cwe="CWE-22",
    description=(
        "An AssetFileDef filename is absolute or climbs with '..'. TensorFlow joins it to the "
        "SavedModel's assets folder and hands the result to the graph (vocabulary tables, tokenizers), "
        "so loading the model reads an arbitrary file of the host."
    ),
    remediation=_DONT_LOAD,
)

MALFORMED = Rule(
    id="TF-MALFORMED",
    title="TensorFlow graph protobuf is malformed",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-20",
    description=(
        "The SavedModel or GraphDef could not be read to its end (truncated field, invalid wire "
        "type, nesting beyond what real graphs use). What the scanner could not read may hold ops "
        "that TensorFlow would run."
    ),
    remediation=_DONT_LOAD,
)

RULES: tuple[Rule, ...] = (PYTHON_CALL, FILE_ACCESS, NETWORK_OP, DEBUG_OP, UNKNOWN_OP, ASSET_PATH, MALFORMED)
