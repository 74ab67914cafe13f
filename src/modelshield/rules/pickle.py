"""Rules about what a pickle stream would import, call and build when loaded."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_DONT_LOAD = (
    "Do not load this file with pickle, torch.load with weights_only=False, joblib.load or any other "
    "unpickler. Obtain the model from a trusted source, or convert it to a format that cannot run "
    "code (safetensors) in an isolated environment."
)

DANGEROUS_CALL = Rule(
    id="PICKLE-DANGEROUS-CALL",
    title="Pickle calls a dangerous callable when loaded",
    severity=Severity.CRITICAL,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    description=(
        "Loading the pickle calls a callable known to execute code, spawn processes, touch the "
        "file system or the network. This is how malicious models run their payload."
    ),
    remediation=_DONT_LOAD + " Treat any machine that already loaded it as compromised.",
)

DANGEROUS_IMPORT = Rule(
    id="PICKLE-DANGEROUS-IMPORT",
    title="Pickle imports a dangerous callable or module",
    severity=Severity.HIGH,
    category=Category.UNSAFE_MODULE,
    cwe="CWE-502",
    description=(
        "The pickle references a dangerous callable or module without a visible call. Importing it "
        "runs module code, and the reference can be called later by code that uses the object."
    ),
    remediation=_DONT_LOAD,
)

UNKNOWN_CALL = Rule(
    id="PICKLE-UNKNOWN-CALL",
    title="Pickle calls a callable that is not known to be safe",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    confidence=Confidence.MEDIUM,
    description=(
        "Loading the pickle calls a callable that is on neither the allowlist of what real ML "
        "libraries emit nor the denylist. Any callable can run arbitrary code."
    ),
    remediation=(
        "Review the callable named in the evidence. If it is your own trusted code, allow it in a "
        "policy file; otherwise do not load the file."
    ),
)

UNKNOWN_IMPORT = Rule(
    id="PICKLE-UNKNOWN-IMPORT",
    title="Pickle imports a name that is not known to be safe",
    severity=Severity.MEDIUM,
    category=Category.UNSAFE_MODULE,
    cwe="CWE-502",
    confidence=Confidence.MEDIUM,
    description=(
        "The pickle imports a global that is not on the allowlist, without calling it. Importing "
        "runs the module's top-level code, and the object may be called later."
    ),
    remediation=(
        "Review the name in the evidence; allow it in a policy file when it is trusted code of your own."
    ),
)

UNKNOWN_CLASS_REBUILD = Rule(
    id="PICKLE-UNKNOWN-CLASS",
    title="Pickle rebuilds an instance of a class that is not on the allowlist",
    severity=Severity.LOW,
    category=Category.UNSAFE_MODULE,
    cwe="CWE-502",
    confidence=Confidence.MEDIUM,
    description=(
        "The pickle re-creates an object of an unlisted class the way pickle rebuilds plain objects "
        "(object.__new__ then state). This is how torch.save(model) stores a user's own nn.Module "
        "subclass; loading still imports the class's module and may run its __setstate__."
    ),
    remediation=(
        "Confirm the class is your own code (the name is in the evidence) and allow it in a policy "
        "file, or save only the state_dict and load it with torch.load and weights_only=True."
    ),
)

NESTED_LOADER = Rule(
    id="PICKLE-NESTED-LOAD",
    title="Pickle deserialises embedded data while loading",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    description=(
        "A loader-like callable (pickle.loads, marshal.loads, torch.load, …) is called on data inside "
        "the pickle. Nesting hides a payload from scanners that read only the outer stream; the inner "
        "data is scanned as a child of this file."
    ),
    remediation=_DONT_LOAD,
)

NAME_RESOLVER = Rule(
    id="PICKLE-NAME-RESOLVER",
    title="Pickle resolves a callable by name at load time",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    description=(
        "getattr, attrgetter, importlib or a name resolver is used to reach a callable indirectly. "
        "Real models do not do this; it is how payloads evade name-based scanners. The reached name "
        "is judged on its own as well."
    ),
    remediation=_DONT_LOAD,
)

DYNAMIC_NAME = Rule(
    id="PICKLE-DYNAMIC-NAME",
    title="Pickle imports a name computed at load time",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    description=(
        "STACK_GLOBAL or a resolver receives a module or attribute name that is not a constant: the "
        "imported object cannot be known without running the pickle."
    ),
    remediation=_DONT_LOAD,
)

CODE_OBJECT = Rule(
    id="PICKLE-CODE-OBJECT",
    title="Pickle carries Python bytecode (a function stored by value)",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    description=(
        "The pickle builds a code object or function from raw bytecode (dill, cloudpickle or "
        "types.CodeType). That code runs when the model calls the function; the names it uses are in "
        "the evidence. Severity is critical when those names reach dangerous modules."
    ),
    remediation=(
        "Only load functions-by-value from a source you trust as much as your own code. Review the "
        "names and constants in the evidence."
    ),
)

GLOBAL_MUTATION = Rule(
    id="PICKLE-GLOBAL-MUTATION",
    title="Pickle sets attributes on a module or class",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    description=(
        "BUILD is applied to an imported module or class, which monkey-patches it for the whole "
        "process (for example replacing a function the application calls later)."
    ),
    remediation=_DONT_LOAD,
)

SETSTATE_PLANTED = Rule(
    id="PICKLE-SETSTATE-PLANTED",
    title="Pickle plants a __setstate__ on an object",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-502",
    description=(
        "A BUILD gives an object an instance attribute named __setstate__; the next BUILD on that "
        "object calls it. Benign pickles never do this."
    ),
    remediation=_DONT_LOAD,
)

EXTENSION_CODE = Rule(
    id="PICKLE-EXT-CODE",
    title="Pickle imports through the copyreg extension registry",
    severity=Severity.HIGH,
    category=Category.UNSAFE_MODULE,
    cwe="CWE-502",
    confidence=Confidence.MEDIUM,
    description=(
        "EXT1/EXT2/EXT4 import whatever the loading process registered under an integer code. The "
        "default registry is empty, so this only works in a prepared process — or hides a name."
    ),
    remediation=_DONT_LOAD,
)

MALFORMED = Rule(
    id="PICKLE-MALFORMED",
    title="Pickle stream is malformed or truncated",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-502",
    description=(
        "The stream breaks (bad opcode, truncation, stack or memo misuse). Unpicklers execute every "
        "instruction before the break, so broken streams are used to hide payloads from scanners "
        "that stop at the first error."
    ),
    remediation=(
        "Do not load it. A legitimate file does not break; re-download it and compare its hash with "
        "the publisher's."
    ),
)

EXTERNAL_FILE = Rule(
    id="PICKLE-EXTERNAL-FILE",
    title="Loading reads another file named inside the pickle",
    severity=Severity.INFO,
    category=Category.FILESYSTEM,
    cwe="CWE-73",
    description=(
        "Old joblib files (before 0.10) name each array's file in the pickle; joblib.load opens that "
        "path relative to the pickle and loads it with np.load and allow_pickle=True. A name that is "
        "absolute or climbs out of the folder makes the loader read, and unpickle, any file."
    ),
    remediation=(
        "Scan the named file too (it is loaded as a pickle-capable .npy), and refuse names that leave "
        "the model's folder."
    ),
)

TRAILING_DATA = Rule(
    id="PICKLE-TRAILING-DATA",
    title="Data follows the last pickle in the stream",
    severity=Severity.INFO,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    description="Bytes after the final STOP are not read by pickle.load but may carry a payload.",
    remediation="Check what produced the extra bytes; a plain pickle file ends at its STOP opcode.",
)

RULES: tuple[Rule, ...] = (
    DANGEROUS_CALL,
    DANGEROUS_IMPORT,
    UNKNOWN_CALL,
    UNKNOWN_IMPORT,
    UNKNOWN_CLASS_REBUILD,
    NESTED_LOADER,
    NAME_RESOLVER,
    DYNAMIC_NAME,
    CODE_OBJECT,
    GLOBAL_MUTATION,
    SETSTATE_PLANTED,
    EXTENSION_CODE,
    MALFORMED,
    EXTERNAL_FILE,
    TRAILING_DATA,
)
