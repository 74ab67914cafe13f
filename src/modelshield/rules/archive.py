"""Rules about containers: zip, tar and 7z archives and single-stream compressed files."""

from __future__ import annotations

from modelshield.engine.findings import Category, Confidence, Severity
from modelshield.engine.rules import Rule

_ZIP_DIFFERENTIAL = (
    "Scanners and loaders that read the same zip differently can be made to scan one thing while the "
    "loader runs another. Every copy is scanned here; do not trust the file until its producer "
    "rewrites it with a standard tool (torch.save, numpy.savez, zipfile)."
)

PATH_TRAVERSAL = Rule(
    id="ARCHIVE-PATH-TRAVERSAL",
    title="Archive member path climbs out of the extraction directory",
    severity=Severity.HIGH,
    category=Category.FILESYSTEM,
    references=("CVE-2007-4559",),
    cwe="CWE-22",
    description=(
        "A member name contains '..' components that leave the directory the archive is extracted "
        "into. Extracting it overwrites files elsewhere (a shell profile, a site-packages module)."
    ),
    remediation="Do not extract the archive; if you must, use an extractor that refuses such names.",
)

ABSOLUTE_PATH = Rule(
    id="ARCHIVE-ABSOLUTE-PATH",
    title="Archive member has an absolute path",
    severity=Severity.HIGH,
    category=Category.FILESYSTEM,
    cwe="CWE-36",
    description=(
        "A member name starts at the file-system root ('/', a drive letter or a UNC path). Naive "
        "extractors write it there instead of under the extraction directory."
    ),
    remediation="Do not extract the archive; if you must, use an extractor that strips absolute paths.",
)

LINK = Rule(
    id="ARCHIVE-LINK",
    title="Archive member is a symbolic or hard link",
    severity=Severity.MEDIUM,
    category=Category.FILESYSTEM,
    cwe="CWE-59",
    description=(
        "A member is a link. Extracting it and then writing through it, or a later member with the "
        "same path, reaches files outside the archive. Severity is high when the target escapes the "
        "extraction directory."
    ),
    remediation="Do not extract the archive with a tool that follows links; model archives need none.",
)

SPECIAL_FILE = Rule(
    id="ARCHIVE-SPECIAL-FILE",
    title="Archive member is a device or a FIFO",
    severity=Severity.MEDIUM,
    category=Category.FILESYSTEM,
    cwe="CWE-73",
    description=(
        "A member is a character or block device or a named pipe. Extracting it as root creates a "
        "device node; reading a FIFO blocks the loader. Model archives never contain them."
    ),
    remediation="Do not extract the archive; remove the special members.",
)

BOMB = Rule(
    id="ARCHIVE-BOMB",
    title="Compressed data expands far beyond its size (decompression bomb)",
    severity=Severity.HIGH,
    category=Category.DECOMPRESSION,
    cwe="CWE-409",
    description=(
        "A member or stream declares or produces an expansion above the configured ratio. Loading "
        "it exhausts memory or disk; scanners that decompress without bounds crash on it, hiding "
        "the rest of the file."
    ),
    remediation="Do not load or extract the file. A real model does not compress at such ratios.",
)

TOO_MANY_MEMBERS = Rule(
    id="ARCHIVE-TOO-MANY-MEMBERS",
    title="Archive holds more members than the scanner allows",
    severity=Severity.MEDIUM,
    category=Category.DECOMPRESSION,
    cwe="CWE-400",
    description=(
        "The member count exceeds the limit. Huge counts exhaust loaders and scanners, and members "
        "past the limit were not scanned."
    ),
    remediation="Raise max_members_per_archive in the policy if the archive is trusted; otherwise reject it.",
)

DUPLICATE_MEMBER = Rule(
    id="ARCHIVE-DUPLICATE-MEMBER",
    title="Archive holds several members with the same name",
    severity=Severity.HIGH,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    references=("CVE-2025-1944",),
    description=(
        "Two members share a name (for zip, also a name that differs only by case, which PyTorch's "
        "case-insensitive lookup treats as the same). Which copy a loader reads depends on the loader, "
        "so a scanner that checks one copy can miss the one that runs."
    ),
    remediation=_ZIP_DIFFERENTIAL,
)

TRUNCATED = Rule(
    id="ARCHIVE-TRUNCATED",
    title="Archive member declares more data than the file holds",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    description=(
        "A member's declared size or offset reaches past the end of the archive. The file is "
        "truncated or crafted to make parsers disagree."
    ),
    remediation="Re-download the file and compare its hash with the publisher's.",
)

CORRUPT_STREAM = Rule(
    id="ARCHIVE-CORRUPT-STREAM",
    title="Compressed data is corrupt part-way",
    severity=Severity.LOW,
    category=Category.INTEGRITY,
    description=(
        "A compressed stream stops decoding with an error. Loaders that read it as a stream (joblib, "
        "gzip-wrapped pickles) act on everything decoded before the error, which is scanned; the rest "
        "can be read by no loader. Also seen when other data merely resembles a compressed header."
    ),
    remediation="Re-download the file and compare its hash with the publisher's.",
)

ZIP_NAME_MISMATCH = Rule(
    id="ZIP-NAME-MISMATCH",
    title="Zip member name differs between the local header and the central directory",
    severity=Severity.HIGH,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    references=("CVE-2025-1944",),
    description=(
        "PyTorch's reader trusts the central-directory name; Python's zipfile refuses the member. "
        "Scanners built on zipfile crash or skip it while torch.load runs it. Standard writers never "
        "produce this."
    ),
    remediation=_ZIP_DIFFERENTIAL,
)

ZIP_HEADER_MISMATCH = Rule(
    id="ZIP-HEADER-MISMATCH",
    title="Zip local header disagrees with the central directory",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    description=(
        "The compression method, flags or sizes in a member's local header differ from its central "
        "directory entry, or its data decompresses to a different size than declared. Readers that "
        "trust different copies of the header read different bytes."
    ),
    remediation=_ZIP_DIFFERENTIAL,
)

ZIP_BAD_CRC = Rule(
    id="ZIP-BAD-CRC",
    title="Zip member CRC does not match its data",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    references=("CVE-2025-1944", "CVE-2025-10156"),
    description=(
        "PyTorch ignores zip CRCs while Python's zipfile raises on them, so a wrong CRC makes "
        "zipfile-based scanners fail on a member that torch.load still runs."
    ),
    remediation=_ZIP_DIFFERENTIAL,
)

ZIP_UNUSUAL_FLAGS = Rule(
    id="ZIP-UNUSUAL-FLAGS",
    title="Zip member sets unusual general-purpose flag bits",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    references=("CVE-2025-1945",),
    description=(
        "Flag bits that standard writers never set (patched data, strong encryption, masked headers, "
        "reserved bits) make some readers refuse the member while others read it."
    ),
    remediation=_ZIP_DIFFERENTIAL,
)

ZIP_ENCRYPTED = Rule(
    id="ZIP-ENCRYPTED",
    title="Zip member is marked as encrypted",
    severity=Severity.MEDIUM,
    category=Category.INTEGRITY,
    cwe="CWE-436",
    references=("CVE-2025-1945",),
    description=(
        "The member is flagged as encrypted. Its content cannot be verified, and a false flag makes "
        "zipfile-based scanners skip a member that other loaders read as plain data. The content "
        "is scanned as if unencrypted."
    ),
    remediation="Model files are never encrypted member by member; obtain an unencrypted copy.",
)

ZIP_HIDDEN_MEMBER = Rule(
    id="ZIP-HIDDEN-MEMBER",
    title="Zip holds a local entry that the central directory does not list",
    severity=Severity.HIGH,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-436",
    description=(
        "A local file header sits outside every listed member. Readers that walk local headers "
        "(streaming unzip, some scanners) see it; readers of the central directory do not. It is "
        "scanned as a child of this file."
    ),
    remediation=_ZIP_DIFFERENTIAL,
)

ZIP_OVERLAPPING_MEMBERS = Rule(
    id="ZIP-OVERLAPPING-MEMBERS",
    title="Zip members overlap each other",
    severity=Severity.HIGH,
    category=Category.DECOMPRESSION,
    cwe="CWE-409",
    references=("CVE-2024-0450",),
    description=(
        "Two central-directory entries point into the same bytes. This is how overlapping zip bombs "
        "reach huge expansion, and it lets two names share one payload."
    ),
    remediation="Do not extract or load the file; standard writers never overlap members.",
)

ZIP_PREPENDED_DATA = Rule(
    id="ZIP-PREPENDED-DATA",
    title="Data precedes the first zip member",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-436",
    description=(
        "Bytes before the first local header are ignored by zip readers but read by whatever opens "
        "the file as another format (a polyglot). They are scanned as a child of this file."
    ),
    remediation="Find out what produced the leading bytes; model zips start with their first member.",
)

ZIP_TRAILING_DATA = Rule(
    id="ZIP-TRAILING-DATA",
    title="Data follows the end of the zip",
    severity=Severity.MEDIUM,
    category=Category.EMBEDDED_PAYLOAD,
    cwe="CWE-506",
    confidence=Confidence.MEDIUM,
    description=(
        "Bytes after the end-of-central-directory record are ignored by zip readers and can carry a "
        "payload. They are scanned as a child of this file."
    ),
    remediation="Find out what appended the bytes; model zips end with their central directory.",
)

RULES: tuple[Rule, ...] = (
    PATH_TRAVERSAL,
    ABSOLUTE_PATH,
    LINK,
    SPECIAL_FILE,
    BOMB,
    TOO_MANY_MEMBERS,
    DUPLICATE_MEMBER,
    TRUNCATED,
    CORRUPT_STREAM,
    ZIP_NAME_MISMATCH,
    ZIP_HEADER_MISMATCH,
    ZIP_BAD_CRC,
    ZIP_UNUSUAL_FLAGS,
    ZIP_ENCRYPTED,
    ZIP_HIDDEN_MEMBER,
    ZIP_OVERLAPPING_MEMBERS,
    ZIP_PREPENDED_DATA,
    ZIP_TRAILING_DATA,
)
