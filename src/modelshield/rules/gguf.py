"""Rules about GGUF model files (llama.cpp and its bindings) and the Jinja chat templates they carry."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_PARSER_CVES = (
    "CVE-2024-25664",
    "CVE-2024-25665",
    "CVE-2024-25666",
    "CVE-2024-25667",
    "CVE-2024-25668",
)
_TEMPLATE_CVE = ("CVE-2024-34359",)
_DONT_LOAD = (
    "Do not load the file with llama.cpp, llama-cpp-python or other GGUF readers; obtain the model "
    "from a trusted source or re-convert it from trusted weights."
)
_DONT_CHAT = (
    "Do not use the model's chat template: load the model only with a sandboxed template engine "
    "(llama-cpp-python 0.2.72 or later, transformers' ImmutableSandboxedEnvironment) or supply a "
    "known-good template yourself, and obtain the model from a trusted source."
)

MALFORMED = Rule(
    id="GGUF-MALFORMED",
    title="GGUF structure is malformed",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-20",
    description=(
        "The GGUF header, a metadata value or a tensor description does not follow the format "
        "(bad magic or version, truncated structure, unknown value type, nesting beyond what readers "
        "support, a bad chat template value). Native readers have crashed on such input, and a "
        "scanner that reads it differently from the loader could miss what the loader sees."
    ),
    remediation=_DONT_LOAD,
)

ABSURD_COUNT = Rule(
    id="GGUF-ABSURD-COUNT",
    title="GGUF declares a tensor, metadata or array count that cannot fit in the file",
    severity=Severity.HIGH,
    category=Category.EXPLOIT,
    cwe="CWE-190",
    description=(
        "A count in the header or an array length is larger than the remaining bytes could hold. "
        "Readers that multiply or allocate from such counts before checking them overflowed or ran "
        "out of memory (the GGUF parser CVEs of 2024)."
    ),
    remediation=_DONT_LOAD,
    references=_PARSER_CVES,
)

STRING_LENGTH = Rule(
    id="GGUF-STRING-LENGTH",
    title="GGUF string length runs past the end of the file",
    severity=Severity.HIGH,
    category=Category.EXPLOIT,
    cwe="CWE-125",
    description=(
        "A key, string value or tensor name declares more bytes than remain in the file (or more "
        "than any reader accepts). Readers that allocated or copied the declared length before "
        "checking it read out of bounds or overflowed a size computation."
    ),
    remediation=_DONT_LOAD,
    references=_PARSER_CVES,
)

TOO_MANY_DIMS = Rule(
    id="GGUF-TOO-MANY-DIMS",
    title="GGUF tensor has more dimensions than ggml supports",
    severity=Severity.HIGH,
    category=Category.EXPLOIT,
    cwe="CWE-787",
    description=(
        "ggml tensors have at most 4 dimensions (GGML_MAX_DIMS). A reader that copies the declared "
        "dimensions into its fixed-size array writes past it."
    ),
    remediation=_DONT_LOAD,
    references=_PARSER_CVES,
)

UNKNOWN_TENSOR_TYPE = Rule(
    id="GGUF-UNKNOWN-TENSOR-TYPE",
    title="GGUF tensor has an unknown or removed ggml type",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-20",
    description=(
        "The tensor's ggml type is not one ggml defines (or was removed from it). Its size cannot be "
        "computed, and readers that index their type tables with it read out of bounds."
    ),
    remediation=_DONT_LOAD,
    references=_PARSER_CVES,
)

DIMENSION_OVERFLOW = Rule(
    id="GGUF-DIMENSION-OVERFLOW",
    title="GGUF tensor dimensions overflow or do not fit the type's block size",
    severity=Severity.HIGH,
    category=Category.EXPLOIT,
    cwe="CWE-190",
    description=(
        "The tensor's element count or byte size does not fit in a signed 64-bit integer, a "
        "dimension is negative as ggml reads it, or the first dimension is not a multiple of the "
        "type's block size. Size computations in native readers wrap around on such tensors."
    ),
    remediation=_DONT_LOAD,
    references=_PARSER_CVES,
)

BAD_ALIGNMENT = Rule(
    id="GGUF-BAD-ALIGNMENT",
    title="GGUF general.alignment is not a power of two",
    severity=Severity.MEDIUM,
    category=Category.EXPLOIT,
    cwe="CWE-369",
    description=(
        "general.alignment must be a non-zero power of two held in a uint32. A zero alignment "
        "divides by zero in readers; other values put tensor data where readers do not expect it."
    ),
    remediation=_DONT_LOAD,
    references=_PARSER_CVES,
)

MISALIGNED_TENSOR = Rule(
    id="GGUF-MISALIGNED-TENSOR",
    title="GGUF tensor data offset is not aligned",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-20",
    description=(
        "The tensor's data offset is not a multiple of the file's alignment. Writers always align "
        "tensor data; a misaligned offset is hand-made and readers disagree on how to treat it."
    ),
    remediation=_DONT_LOAD,
)

TENSOR_OUT_OF_RANGE = Rule(
    id="GGUF-TENSOR-OUT-OF-RANGE",
    title="GGUF tensor data lies outside the file",
    severity=Severity.HIGH,
    category=Category.EXPLOIT,
    cwe="CWE-125",
    description=(
        "The tensor's data (offset plus size) runs past the end of the file. Readers that map the "
        "file and trust the offset read out of bounds."
    ),
    remediation=_DONT_LOAD,
    references=_PARSER_CVES,
)

OVERLAPPING_TENSORS = Rule(
    id="GGUF-OVERLAPPING-TENSORS",
    title="GGUF tensors share bytes",
    severity=Severity.MEDIUM,
    category=Category.EXPLOIT,
    cwe="CWE-20",
    description=(
        "Two tensors' data ranges overlap. Writers never do this; overlapping ranges are used to make "
        "one write corrupt another tensor or to hide how much data the file really holds."
    ),
    remediation=_DONT_LOAD,
)

DUPLICATE_NAME = Rule(
    id="GGUF-DUPLICATE-NAME",
    title="GGUF repeats a metadata key or tensor name",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    description=(
        "A metadata key or tensor name appears twice. llama.cpp refuses such files while other "
        "readers keep the first or the last copy, so a scanner and a loader can see different "
        "values (a benign chat template followed by a malicious one). Every copy is scanned."
    ),
    remediation=_DONT_LOAD,
)

DATA_GAP = Rule(
    id="GGUF-DATA-GAP",
    title="GGUF data section holds bytes that belong to no tensor",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    confidence=Confidence.MEDIUM,
    description=(
        "Between two tensors (or before the first) there are more bytes than alignment padding. "
        "Writers pack tensors back to back and llama.cpp refuses files that do not; unused space "
        "can carry a hidden payload."
    ),
    remediation="Re-convert the model from trusted weights; inspect the bytes named in the location.",
)

APPENDED_DATA = Rule(
    id="GGUF-APPENDED-DATA",
    title="Data follows the last GGUF tensor",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    description=(
        "Bytes follow the end of the tensor data. GGUF readers ignore them, which makes the end of a "
        "model a place to hide a payload; the bytes are scanned as a child of this file."
    ),
    remediation="Re-convert the model from trusted weights; inspect the appended bytes.",
)

TEMPLATE_GLOBALS_ROUTE = Rule(
    id="CHAT-TEMPLATE-GLOBALS-ROUTE",
    title="Chat template reaches Python globals through a template global (sandbox escape)",
    severity=Severity.CRITICAL,
    category=Category.CODE_EXECUTION,
    cwe="CWE-1336",
    description=(
        "The Jinja chat template walks from a template global (cycler, joiner, namespace, lipsum, "
        "self, request, config…) into __init__/__globals__/__builtins__: the known shape of a "
        "server-side template injection payload that imports os and runs commands when the model "
        "is used for chat."
    ),
    remediation=_DONT_CHAT,
    references=_TEMPLATE_CVE,
)

TEMPLATE_DANGEROUS_NAME = Rule(
    id="CHAT-TEMPLATE-DANGEROUS-NAME",
    title="Chat template reaches os, subprocess, eval, exec or import",
    severity=Severity.CRITICAL,
    category=Category.CODE_EXECUTION,
    cwe="CWE-1336",
    description=(
        "The Jinja chat template names a process, evaluation or import facility (os, subprocess, "
        "popen, eval, exec, __import__…). No chat template needs them; rendered outside a sandbox "
        "the template runs commands."
    ),
    remediation=_DONT_CHAT,
    references=_TEMPLATE_CVE,
)

TEMPLATE_DUNDER_ACCESS = Rule(
    id="CHAT-TEMPLATE-DUNDER-ACCESS",
    title="Chat template accesses Python internals (dunder attributes)",
    severity=Severity.CRITICAL,
    category=Category.CODE_EXECUTION,
    cwe="CWE-1336",
    description=(
        "The Jinja chat template reads a double-underscore attribute (__class__, __mro__, "
        "__subclasses__, __globals__…), directly, by item, through |attr or by a computed name. This "
        "is how template injection walks from any value to every class in the interpreter; real chat "
        "templates never do it."
    ),
    remediation=_DONT_CHAT,
    references=_TEMPLATE_CVE,
)

TEMPLATE_DYNAMIC_ATTRIBUTE = Rule(
    id="CHAT-TEMPLATE-DYNAMIC-ATTRIBUTE",
    title="Chat template looks up an attribute by a computed name",
    severity=Severity.HIGH,
    category=Category.CODE_EXECUTION,
    cwe="CWE-1336",
    confidence=Confidence.MEDIUM,
    description=(
        "The template uses |attr with a name that is not a constant, or builds an attribute or item "
        "name from pieces (concatenation, join, format, replace, reverse). Payloads do this to hide "
        "dunder names from scanners; real chat templates index with plain names."
    ),
    remediation=_DONT_CHAT,
    references=_TEMPLATE_CVE,
)

TEMPLATE_INCLUDE = Rule(
    id="CHAT-TEMPLATE-INCLUDE",
    title="Chat template includes, imports or extends another template",
    severity=Severity.MEDIUM,
    category=Category.FILESYSTEM,
    cwe="CWE-73",
    description=(
        "The template uses include, import or extends. Chat templates are self-contained; with a "
        "file system loader these statements read files chosen by the model author."
    ),
    remediation=_DONT_CHAT,
)

TEMPLATE_UNPARSEABLE = Rule(
    id="CHAT-TEMPLATE-UNPARSEABLE",
    title="Chat template does not parse as Jinja",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    confidence=Confidence.MEDIUM,
    description=(
        "Jinja's parser rejects the chat template, so it could not be analysed. Template engines "
        "other than Jinja (minja in llama.cpp) may still accept and run it."
    ),
    remediation="Review the template by hand, or replace it with a known-good template.",
)

RULES: tuple[Rule, ...] = (
    MALFORMED,
    ABSURD_COUNT,
    STRING_LENGTH,
    TOO_MANY_DIMS,
    UNKNOWN_TENSOR_TYPE,
    DIMENSION_OVERFLOW,
    BAD_ALIGNMENT,
    MISALIGNED_TENSOR,
    TENSOR_OUT_OF_RANGE,
    OVERLAPPING_TENSORS,
    DUPLICATE_NAME,
    DATA_GAP,
    APPENDED_DATA,
    TEMPLATE_GLOBALS_ROUTE,
    TEMPLATE_DANGEROUS_NAME,
    TEMPLATE_DUNDER_ACCESS,
    TEMPLATE_DYNAMIC_ATTRIBUTE,
    TEMPLATE_INCLUDE,
    TEMPLATE_UNPARSEABLE,
)
