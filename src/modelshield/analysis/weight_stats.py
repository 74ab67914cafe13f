"""The numpy half of the deep weights analysis (see `weights`): statistics over float tensor bytes.

Opt-in (`--deep`): every float32, float16 and bfloat16 tensor is read in bounded chunks, never as one
buffer. Two questions are asked of it:

1. Do the low bytes, taken one (or two, three) per weight or a nibble per weight, spell a known payload?
   An executable, archive or pickle found that way is a finding of high confidence.
2. Are the low bits structured where the bits just above them are not? Trained weights have near-uniform
   low mantissa bits, so uniformity proves nothing (an encrypted payload is uniform too). What a plain
   payload changes is the low byte's distribution (zero runs, opcodes, ASCII) while the next byte up, which
   the embedding leaves alone, stays uniform. Weights upcast from fp16 or dequantised from int8 have
   structured low bits too, but then the byte above them is structured in the same way; the control byte
   separates the two. Such a finding has low or medium confidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from modelshield.analysis.payloads import identify_archive, identify_executable
from modelshield.analysis.weights import FLOAT_WIDTHS, ReadAt

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

CHUNK_BYTES = 4 * 1024 * 1024
"""Bytes read at a time; a multiple of every element width, and of two elements (nibble pairs)."""
WINDOW_ELEMENTS = 65_536
"""Statistics are judged per window too, so a small payload in a huge tensor is not averaged away."""
MIN_ELEMENTS = 4_096
"""Below this a window's histogram is too sparse to judge."""
CARRY_BYTES = 64
"""Bytes of each extracted stream kept across chunk boundaries, so a signature split by one is found."""
START_BYTES = 4_096
"""Extracted bytes at the start of a tensor checked with the full signature checks."""


_PE_STUB = b"This program cannot be run in DOS mode"
_PICKLE_FRAME = re.compile(rb"\x80[\x04\x05]\x95[\x00-\xff]{3}\x00{5}", re.DOTALL)
_PICKLE_TEXT_GLOBAL = re.compile(
    rb"(?:\x80[\x02-\x05])?c(?:os|posix|nt|subprocess|builtins|__builtin__|socket|shutil|runpy|pty|sys|importlib)\n\w+\n"
)
_ELF_ANYWHERE = re.compile(rb"\x7fELF[\x01\x02][\x01\x02]\x01")
_ZIP_ANYWHERE = re.compile(rb"PK\x03\x04[\x0a\x14\x2d\x3f]\x00", re.DOTALL)
MIN_TEXT_RUN = 48
"""Printable bytes in a row in a low-byte stream: uniform bytes make such a run once in ~10^20."""


@dataclass(frozen=True)
class PayloadHit:
    """A payload spelled by the low bytes of a tensor."""

    what: str
    extraction: str
    element: int
    """Index of the first weight that carries it."""
    preview: bytes


@dataclass(frozen=True)
class LowBitStats:
    """How the low bits of one tensor (or its worst window) are distributed, beside the control bits."""

    elements: int
    entropy: float
    """Bits per symbol of the low byte (float32) or low nibble (16-bit floats) over the whole tensor."""
    chi_square: float
    control_entropy: float
    window_element: int
    """First weight of the window where the low bits depart most from the control."""
    window_effect: float
    """Chi-square per sample of the low bits in that window (0 for a perfectly flat histogram)."""
    control_effect: float
    window_repeats: float
    """Fraction of neighbouring weights with equal low bits in that window."""
    control_repeats: float
    window_text_run: int
    odd_effect: float
    """The window's effect over odd low values only: weights drawn at reduced precision (torch's uniform
    init, small values of a 24-bit draw) end in zero bits more often, but their odd values stay uniform."""
    symbols: int

    @property
    def structured(self) -> bool:
        """Low bits far from uniform in some window while the bits above them are near uniform."""
        if self.elements < MIN_ELEMENTS:
            return False
        flat_control = self.control_effect < 0.05
        departs = self.window_effect > 0.25 and self.window_effect > 10 * self.control_effect
        return flat_control and departs and self.odd_effect > 0.25

    @property
    def repeats(self) -> bool:
        """Neighbouring low bits are equal far more often than chance and the control allow (code, tables)."""
        return self.window_repeats > max(0.03, 8 * self.control_repeats)

    @property
    def text(self) -> bool:
        return self.window_text_run >= MIN_TEXT_RUN

    @property
    def suspicious(self) -> bool:
        """Structured, and in the way code or text is. Structure alone is not enough: weights drawn at
        reduced precision (torch's uniform init of small layers) skew the low byte without a payload."""
        return self.structured and (self.repeats or self.text)

    def describe(self) -> str:
        return (
            f"{self.elements} weights; low bits entropy {self.entropy:.3f}/{math.log2(self.symbols):.0f} "
            f"bits, chi-square {self.chi_square:.0f} ({self.symbols - 1} dof), control entropy "
            f"{self.control_entropy:.3f}; worst window at weight {self.window_element}: effect "
            f"{self.window_effect:.3f} (control {self.control_effect:.3f}), repeats "
            f"{self.window_repeats:.3f} (control {self.control_repeats:.3f}), longest printable run "
            f"{self.window_text_run}, odd-value effect {self.odd_effect:.3f}"
        )


@dataclass(frozen=True)
class TensorReport:
    """What the deep analysis found in one tensor."""

    stats: LowBitStats
    hits: tuple[PayloadHit, ...]


def _extractions(a: npt.NDArray[np.uint8], width: int) -> Iterator[tuple[str, int, npt.NDArray[np.uint8]]]:
    """(name, weights per output byte ×2, bytes) for each way a payload is commonly written into weights.

    `a` is (elements, width) little-endian bytes. The second item is how many weights, doubled, one
    output byte spans, so an output offset maps back to a weight index."""
    import numpy as np

    low = a[:, 0]
    yield "low byte", 2, low
    pairs = low[: len(low) // 2 * 2].reshape(-1, 2) & 0x0F
    yield "low nibble", 4, ((pairs[:, 0] << 4) | pairs[:, 1]).astype(np.uint8)
    yield "low nibble (swapped)", 4, ((pairs[:, 1] << 4) | pairs[:, 0]).astype(np.uint8)
    if width == 4:
        yield "low 2 bytes", 1, a[:, [1, 0]].reshape(-1)
        yield "low 2 bytes (little-endian)", 1, a[:, :2].reshape(-1)
        yield "low 3 bytes", 0, a[:, [2, 1, 0]].reshape(-1)
        yield "low 3 bytes (little-endian)", 0, a[:, :3].reshape(-1)


def _weight_of(offset: int, span: int, width: int) -> int:
    if span == 0:  # three bytes per weight
        return offset // 3
    return offset * span // 2


def _start_payload(data: bytes) -> str | None:
    executable = identify_executable(data, lambda off, n: data[off : off + n])
    if executable is not None:
        return executable.description
    archive = identify_archive(data)
    if archive is not None and len(set(data[:64])) > 8:
        return archive
    if _PICKLE_FRAME.match(data) or _PICKLE_TEXT_GLOBAL.match(data):
        return "pickle"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03") and re.match(rb"..(?:c\w|\x8c.\w|\x63)", data):
        return "pickle"
    return None


_PICKLE_MODULES = (b"os", b"posix", b"nt", b"builtins", b"__builtin__", b"subprocess")
"""Modules a text-protocol pickle payload imports first; each is one more pass over every stream."""
_ANCHORS: tuple[tuple[bytes, re.Pattern[bytes], str, int], ...] = (
    (b"\x7fELF", _ELF_ANYWHERE, "ELF executable", 0),
    (b"\x80\x04\x95", _PICKLE_FRAME, "pickle", 0),
    (b"\x80\x05\x95", _PICKLE_FRAME, "pickle", 0),
    *(
        (b"c" + module + b"\n", _PICKLE_TEXT_GLOBAL, "pickle importing a dangerous module", 2)
        for module in _PICKLE_MODULES
    ),
    (b"PK\x03\x04", _ZIP_ANYWHERE, "zip archive", 0),
)
"""(literal, full check, what, bytes of optional prefix): literals are found with bytes.find (memchr
speed), the regular expression only confirms a candidate."""


def _anywhere_payload(data: bytes) -> tuple[str, int] | None:
    best: tuple[str, int] | None = None
    for literal, pattern, what, prefix in _ANCHORS:
        at = data.find(literal)
        while at >= 0 and (best is None or at < best[1]):
            begin = max(0, at - prefix)
            match = pattern.match(data, begin) or (pattern.match(data, at) if begin != at else None)
            if match:
                best = (what, match.start())
                break
            at = data.find(literal, at + 1)
    at = data.find(_PE_STUB)
    if at >= 0 and (best is None or at < best[1]):
        best = ("PE executable (DOS stub)", at)
    return best


class _Histograms:
    """Running histograms of the low and control symbols, overall and per window."""

    def __init__(self, symbols: int) -> None:
        import numpy as np

        self.symbols = symbols
        self.low = np.zeros(symbols, dtype=np.int64)
        self.control = np.zeros(symbols, dtype=np.int64)
        self.elements = 0
        self.score = -math.inf
        self.window = (0, 0.0, 0.0, 0.0, 0.0, 0, 0.0)
        """First weight, effect, control effect, repeats, control repeats, printable run, odd effect."""

    def add(self, low: npt.NDArray[np.uint8], control: npt.NDArray[np.uint8], first: int) -> None:
        import numpy as np

        self.low += np.bincount(low, minlength=self.symbols)
        self.control += np.bincount(control, minlength=self.symbols)
        self.elements += len(low)
        for start in range(0, len(low), WINDOW_ELEMENTS):
            lw, cw = low[start : start + WINDOW_ELEMENTS], control[start : start + WINDOW_ELEMENTS]
            if len(lw) < MIN_ELEMENTS and self.score > -math.inf:
                continue
            effect = _effect(np.bincount(lw, minlength=self.symbols), len(lw))
            control_effect = _effect(np.bincount(cw, minlength=self.symbols), len(cw))
            score = effect - 10 * control_effect
            if score > self.score:
                self.score = score
                odd = np.bincount(lw, minlength=self.symbols)[1::2]
                self.window = (
                    first + start,
                    effect,
                    control_effect,
                    _repeats(lw),
                    _repeats(cw),
                    _text_run(lw),
                    _effect(odd, int(odd.sum())) if odd.sum() >= MIN_ELEMENTS // 4 else 0.0,
                )

    def stats(self) -> LowBitStats:
        element, effect, control_effect, repeats, control_repeats, text_run, odd_effect = self.window
        return LowBitStats(
            elements=self.elements,
            entropy=_entropy(self.low),
            chi_square=_chi_square(self.low),
            control_entropy=_entropy(self.control),
            window_element=element,
            window_effect=effect,
            control_effect=control_effect,
            window_repeats=repeats,
            control_repeats=control_repeats,
            window_text_run=text_run,
            odd_effect=odd_effect,
            symbols=self.symbols,
        )


def _entropy(counts: npt.NDArray[np.int64]) -> float:
    import numpy as np

    total = int(counts.sum())
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def _chi_square(counts: npt.NDArray[np.int64]) -> float:

    total = int(counts.sum())
    if total == 0:
        return 0.0
    expected = total / len(counts)
    return float(((counts - expected) ** 2).sum() / expected)


def _effect(counts: npt.NDArray[np.int64], n: int) -> float:
    """Chi-square per sample, less what sampling noise alone gives: about 0 for uniform, up to k-1."""
    return max(0.0, _chi_square(counts) / n - (len(counts) - 1) / n)


def _repeats(values: npt.NDArray[np.uint8]) -> float:
    import numpy as np

    if len(values) < 2:
        return 0.0
    return float(np.count_nonzero(values[1:] == values[:-1]) / (len(values) - 1))


@cache
def _printable_table() -> npt.NDArray[np.bool_]:
    import numpy as np

    table = np.zeros(256, dtype=bool)
    table[0x20:0x7F] = True
    table[[0x09, 0x0A, 0x0D]] = True
    return table


def _text_run(values: npt.NDArray[np.uint8]) -> int:
    """The longest run of printable bytes that uses at least eight distinct values (not a constant fill)."""
    import numpy as np

    printable = _printable_table()[values]
    if not printable.any():
        return 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], printable.view(np.int8), [0]))))
    starts, ends = edges[0::2], edges[1::2]
    best = 0
    for i in np.argsort(ends - starts)[::-1][:8]:
        length = int(ends[i] - starts[i])
        if length <= best:
            break
        if len(np.unique(values[starts[i] : ends[i]])) >= 8:
            best = length
    return best


def analyse_tensor(
    read_at: ReadAt, offset: int, nbytes: int, dtype: str, *, check: Callable[[], None] | None = None
) -> TensorReport:
    """Low-bit statistics and payload signatures of the float tensor at [offset, offset + nbytes).

    Reads CHUNK_BYTES at a time; memory stays bounded by a few times that, whatever the tensor's size.
    `check` is called between chunks (the scan's time limit)."""
    import numpy as np

    width = FLOAT_WIDTHS[dtype]
    nbytes -= nbytes % (2 * width)
    hist = _Histograms(256 if width == 4 else 16)
    hits: dict[str, PayloadHit] = {}
    carry: dict[str, bytes] = {}
    emitted: dict[str, int] = {}
    for pos in range(0, nbytes, CHUNK_BYTES):
        if check is not None:
            check()
        raw = read_at(offset + pos, min(CHUNK_BYTES, nbytes - pos))
        raw = raw[: len(raw) // (2 * width) * (2 * width)]
        if not raw:
            break
        a = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width)
        first = pos // width
        if width == 4:
            hist.add(a[:, 0], a[:, 1], first)
        else:
            hist.add((a[:, 0] & 0x0F).astype(np.uint8), (a[:, 0] >> 4).astype(np.uint8), first)
        for name, span, stream in _extractions(a, width):
            if name in hits:
                continue
            data = stream.tobytes()
            before = carry.get(name, b"")
            base = emitted.get(name, 0) - len(before)
            if pos == 0:
                found = _start_payload(data[:START_BYTES])
                if found is not None:
                    hits[name] = PayloadHit(found, name, 0, data[:48])
                    continue
            joined = before + data
            anywhere = _anywhere_payload(joined)
            if anywhere is not None:
                what, at = anywhere
                hits[name] = PayloadHit(what, name, _weight_of(base + at, span, width), joined[at : at + 48])
                continue
            carry[name] = joined[-CARRY_BYTES:]
            emitted[name] = emitted.get(name, 0) + len(data)
    return TensorReport(hist.stats(), tuple(hits.values()))
