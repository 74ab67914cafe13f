"""Rules about safetensors files: header integrity, tensor layout, appended data and metadata payloads."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_REFERENCE = "https://github.com/huggingface/safetensors"
_REBUILD = (
    "Do not trust this file: re-export it with the safetensors library from a trusted source and "
    "compare hashes with the publisher's."
)

HEADER_LENGTH = Rule(
    id="SAFETENSORS-HEADER-LENGTH",
    title="Safetensors header length is out of bounds",
    severity=Severity.MEDIUM,
    category=Category.EXPLOIT,
    cwe="CWE-1284",
    description=(
        "The 8-byte header length exceeds the 100 MB the safetensors library accepts. The library "
        "refuses the file; loaders without that bound allocate or parse what an attacker chose."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

HEADER_MALFORMED = Rule(
    id="SAFETENSORS-HEADER-MALFORMED",
    title="Safetensors header is not a valid header",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-20",
    description=(
        "The header is not UTF-8, not JSON, not an object, nested too deeply, or a tensor entry lacks "
        "its dtype, shape or data_offsets. The safetensors library refuses such a file; a file built to "
        "break parsers, or one that only some other loader reads, has no business in a model store."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

DUPLICATE_KEY = Rule(
    id="SAFETENSORS-DUPLICATE-KEY",
    title="Safetensors header repeats a key",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    description=(
        "A JSON key appears twice. The safetensors library accepts the file and keeps the last value; "
        "parsers that keep the first see different tensors or metadata: a reviewer and the loader "
        "disagree about what the file holds."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

BAD_DTYPE = Rule(
    id="SAFETENSORS-BAD-DTYPE",
    title="Tensor dtype is not a safetensors dtype",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-20",
    description="A tensor declares a dtype the format does not define; the safetensors library refuses it.",
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

BAD_SHAPE = Rule(
    id="SAFETENSORS-BAD-SHAPE",
    title="Tensor shape is not a list of non-negative integers",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-20",
    description=(
        "A shape holds negative, fractional, non-numeric or out-of-range dimensions; the safetensors "
        "library refuses it, and loaders that compute sizes from it may overflow."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

SIZE_MISMATCH = Rule(
    id="SAFETENSORS-SIZE-MISMATCH",
    title="Tensor byte range does not match its shape and dtype",
    severity=Severity.MEDIUM,
    category=Category.EXPLOIT,
    cwe="CWE-190",
    description=(
        "data_offsets span a different number of bytes than shape × dtype size, end before they begin, "
        "or the product overflows 64 bits. The safetensors library refuses it; loaders that trust either "
        "number read out of bounds (the integer-overflow class of GGUF CVE-2024-25664…25668)."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

OFFSET_OUT_OF_RANGE = Rule(
    id="SAFETENSORS-OFFSET-OUT-OF-RANGE",
    title="Tensor data lies beyond the end of the file",
    severity=Severity.MEDIUM,
    category=Category.EXPLOIT,
    cwe="CWE-125",
    description=(
        "A tensor's data_offsets point past the data section. The safetensors library refuses the "
        "file; a loader that does not check reads out of bounds."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

OVERLAPPING_TENSORS = Rule(
    id="SAFETENSORS-OVERLAPPING-TENSORS",
    title="Tensors share bytes",
    severity=Severity.MEDIUM,
    category=Category.EXPLOIT,
    cwe="CWE-119",
    description=(
        "Two tensors' byte ranges overlap. The safetensors library refuses the file; other loaders "
        "alias the memory, so writing one tensor changes another."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

LAYOUT_GAP = Rule(
    id="SAFETENSORS-LAYOUT-GAP",
    title="Bytes between tensors belong to no tensor",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    description=(
        "The data section has bytes no tensor covers (before the first tensor or between two). The "
        "safetensors library refuses a non-contiguous layout; the bytes are a hiding place, and are "
        "scanned by content."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

APPENDED_DATA = Rule(
    id="SAFETENSORS-APPENDED-DATA",
    title="Data follows the last tensor",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    description=(
        "Bytes follow the end of the last tensor. The safetensors library refuses a file its header "
        "does not fully cover; appended data is where payloads (executables, archives, pickles) ride "
        "along, and it is scanned by content."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

UNALIGNED_TENSOR = Rule(
    id="SAFETENSORS-UNALIGNED-TENSOR",
    title="Tensor data is not aligned to its element size",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    confidence=Confidence.MEDIUM,
    description=(
        "A tensor begins at an offset that is not a multiple of its element size. The safetensors "
        "library accepts it (and copies), but its writer never produces it: the file was hand-made."
    ),
    remediation="Re-export the file with the safetensors library if its origin is unknown.",
    references=(_REFERENCE,),
)

UNKNOWN_FIELD = Rule(
    id="SAFETENSORS-UNKNOWN-FIELD",
    title="Tensor entry carries fields the format does not define",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    confidence=Confidence.MEDIUM,
    description=(
        "A tensor entry has keys besides dtype, shape and data_offsets. The safetensors library ignores "
        "them; other tools may not, and they can carry data past reviewers."
    ),
    remediation="Re-export the file with the safetensors library if its origin is unknown.",
    references=(_REFERENCE,),
)

METADATA_TYPE = Rule(
    id="SAFETENSORS-METADATA-TYPE",
    title="__metadata__ is not a map of strings to strings",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-20",
    description=(
        "The format allows only string values in __metadata__; the safetensors library refuses "
        "anything else. Nested values are a parser differential between loaders."
    ),
    remediation=_REBUILD,
    references=(_REFERENCE,),
)

METADATA_PAYLOAD = Rule(
    id="SAFETENSORS-METADATA-PAYLOAD",
    title="Metadata value holds a pickle, an executable or an archive",
    severity=Severity.HIGH,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-502",
    description=(
        "A __metadata__ value is, or decodes (base64, hex, zlib) to, a pickle, a native executable or "
        "an archive. Safetensors never runs it, but the code that reads the metadata may; the decoded "
        "payload is scanned in turn."
    ),
    remediation=(
        "Do not pass this metadata to pickle, exec or a shell. Strip the metadata or rebuild the file "
        "from a trusted source."
    ),
    references=(_REFERENCE,),
)

METADATA_CODE = Rule(
    id="SAFETENSORS-METADATA-CODE",
    title="Metadata value looks like code or a shell command",
    severity=Severity.MEDIUM,
    category=Category.CODE_EXECUTION,
    cwe="CWE-94",
    confidence=Confidence.MEDIUM,
    description=(
        "A __metadata__ value contains Python imports or calls of code-running functions, or shell "
        "commands. Metadata is data; code in it waits for a consumer that evaluates it."
    ),
    remediation="Review the value in the evidence; never evaluate metadata.",
    references=(_REFERENCE,),
)

METADATA_URL = Rule(
    id="SAFETENSORS-METADATA-URL",
    title="Metadata value contains a URL",
    severity=Severity.LOW,
    category=Category.NETWORK,
    confidence=Confidence.LOW,
    description=(
        "A __metadata__ value names a URL. Often harmless (a licence, a home page); worth a look when "
        "the tool that reads the metadata fetches what it names."
    ),
    remediation="Check that the URL points where the publisher says.",
    references=(_REFERENCE,),
)

RULES = (
    HEADER_LENGTH,
    HEADER_MALFORMED,
    DUPLICATE_KEY,
    BAD_DTYPE,
    BAD_SHAPE,
    SIZE_MISMATCH,
    OFFSET_OUT_OF_RANGE,
    OVERLAPPING_TENSORS,
    LAYOUT_GAP,
    APPENDED_DATA,
    UNALIGNED_TENSOR,
    UNKNOWN_FIELD,
    METADATA_TYPE,
    METADATA_PAYLOAD,
    METADATA_CODE,
    METADATA_URL,
)
