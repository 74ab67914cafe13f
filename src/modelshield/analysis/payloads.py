"""Embedded payloads recognised by signature: native executables (ELF, PE, Mach-O), scripts, archives."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

ReadAt = Callable[[int, int], bytes]
"""Reads `n` bytes at an offset of the same buffer `head` starts (for headers beyond the head)."""

_ELF_MACHINES = {
    0x03: "x86",
    0x08: "MIPS",
    0x14: "PowerPC",
    0x15: "PowerPC64",
    0x28: "ARM",
    0x3E: "x86-64",
    0xB7: "AArch64",
    0xF3: "RISC-V",
}
_ELF_TYPES = {1: "relocatable", 2: "executable", 3: "shared object", 4: "core dump"}
_PE_MACHINES = {
    0x14C: "i386",
    0x8664: "x86-64",
    0xAA64: "ARM64",
    0x1C0: "ARM",
    0x1C4: "ARMv7",
    0x200: "IA-64",
}
_MACHO_CPUS = {
    7: "x86",
    0x01000007: "x86-64",
    12: "ARM",
    0x0100000C: "ARM64",
    0x0200000C: "ARM64_32",
    18: "PowerPC",
    0x01000012: "PowerPC64",
}
_MACHO_THIN = {
    b"\xfe\xed\xfa\xce": (">", "32-bit"),
    b"\xfe\xed\xfa\xcf": (">", "64-bit"),
    b"\xce\xfa\xed\xfe": ("<", "32-bit"),
    b"\xcf\xfa\xed\xfe": ("<", "64-bit"),
}
_MACHO_FAT = {
    b"\xca\xfe\xba\xbe": ">",
    b"\xca\xfe\xba\xbf": ">",
    b"\xbe\xba\xfe\xca": "<",
    b"\xbf\xba\xfe\xca": "<",
}
# A Java class file shares the fat magic; its major version (45 or more) sits where nfat_arch does.
_MAX_FAT_ARCHES = 30
_MAX_PE_HEADER_OFFSET = 16 * 1024 * 1024
_SHEBANG_LINE = 256

_ARCHIVE_MAGICS = (
    (b"PK\x03\x04", "zip archive"),
    (b"PK\x05\x06", "zip archive (empty)"),
    (b"\x1f\x8b\x08", "gzip stream"),
    (b"BZh", "bzip2 stream"),
    (b"\xfd7zXZ\x00", "xz stream"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"\x28\xb5\x2f\xfd", "zstd stream"),
    (b"Rar!\x1a\x07", "RAR archive"),
)


@dataclass(frozen=True)
class ExecutableSignature:
    """What kind of executable a buffer starts with: `kind` (ELF, PE, Mach-O, script) and a description."""

    kind: str
    description: str


def identify_executable(head: bytes, read_at: ReadAt | None = None) -> ExecutableSignature | None:
    """The executable `head` starts with, or None. Checks structure past the magic to avoid chance hits."""
    for probe in (_elf, _macho, _macho_fat, _shebang):
        found = probe(head)
        if found is not None:
            return found
    return _pe(head, read_at)


def identify_archive(head: bytes) -> str | None:
    """A short name of the archive or compressed stream `head` starts with, or None."""
    return next((label for magic, label in _ARCHIVE_MAGICS if head.startswith(magic)), None)


def _elf(head: bytes) -> ExecutableSignature | None:
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    if head[6] != 1:
        return None
    order = "<" if head[5] == 1 else ">"
    e_type, e_machine = struct.unpack_from(order + "HH", head, 16)
    bits = "32-bit" if head[4] == 1 else "64-bit"
    endian = "little-endian" if head[5] == 1 else "big-endian"
    machine = _ELF_MACHINES.get(e_machine, f"machine {e_machine:#x}")
    kind = _ELF_TYPES.get(e_type, f"type {e_type}")
    return ExecutableSignature("ELF", f"ELF {bits} {endian} {kind}, {machine}")


def _pe(head: bytes, read_at: ReadAt | None) -> ExecutableSignature | None:
    if len(head) < 0x40 or head[:2] != b"MZ":
        return None
    e_lfanew: int = struct.unpack_from("<I", head, 0x3C)[0]
    if not 4 <= e_lfanew <= _MAX_PE_HEADER_OFFSET:
        return None
    header = head[e_lfanew : e_lfanew + 24]
    if len(header) < 24 and read_at is not None:
        header = read_at(e_lfanew, 24)
    if len(header) < 24 or header[:4] != b"PE\x00\x00":
        return None
    machine, characteristics = struct.unpack_from("<H", header, 4)[0], struct.unpack_from("<H", header, 22)[0]
    role = "DLL" if characteristics & 0x2000 else "executable"
    arch = _PE_MACHINES.get(machine, f"machine {machine:#x}")
    return ExecutableSignature("PE", f"Windows PE {role}, {arch}")


def _macho(head: bytes) -> ExecutableSignature | None:
    layout = _MACHO_THIN.get(head[:4])
    if layout is None or len(head) < 16:
        return None
    order, bits = layout
    cpu, _subtype, filetype = struct.unpack_from(order + "III", head, 4)
    if cpu not in _MACHO_CPUS or not 1 <= filetype <= 12:
        return None
    return ExecutableSignature("Mach-O", f"Mach-O {bits} {_MACHO_CPUS[cpu]}, file type {filetype}")


def _macho_fat(head: bytes) -> ExecutableSignature | None:
    order = _MACHO_FAT.get(head[:4])
    if order is None or len(head) < 12:
        return None
    count, first_cpu = struct.unpack_from(order + "II", head, 4)
    if not 1 <= count <= _MAX_FAT_ARCHES or first_cpu not in _MACHO_CPUS:
        return None
    return ExecutableSignature("Mach-O", f"Mach-O universal binary, {count} architecture(s)")


def _shebang(head: bytes) -> ExecutableSignature | None:
    if not head.startswith(b"#!"):
        return None
    line = head[2:_SHEBANG_LINE].split(b"\n", 1)[0].rstrip(b"\r").strip(b" \t")
    if not line.startswith(b"/") or not all(0x20 <= c < 0x7F or c == 0x09 for c in line):
        return None
    interpreter = line.decode("ascii")
    return ExecutableSignature("script", f"script run by {interpreter}")
