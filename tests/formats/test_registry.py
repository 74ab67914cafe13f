"""The handler registry: every entry names its real handler, and no prefilter refuses content its
handler's sniffer accepts (on every sample the test suite builds, nested members included, and on
mutations of their first bytes)."""

from __future__ import annotations

import pickle
import random
import struct
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelshield.engine.blob import HEAD_BYTES, Blob, BufferBlob, open_file_blob
from modelshield.engine.context import ScanContext
from modelshield.engine.dispatch import Dispatcher, identify
from modelshield.engine.limits import DEFAULT_LIMITS, ReadBudget
from modelshield.formats import HANDLERS, compressed, placeholder
from modelshield.formats.base import ScanEvent
from modelshield.formats.registry import LazyHandler, check_unique_names
from modelshield.formats.signatures import ZIP_END_RECORD, ZIP_MAX_COMMENT
from modelshield.policy.model import Policy

ROOT = Path(__file__).resolve().parents[2]


def test_every_entry_names_its_handler() -> None:
    for entry in HANDLERS:
        assert entry.handler.name == entry.name
        assert entry.version == entry.handler.version
    assert HANDLERS[0].handler is placeholder


def test_compressed_codecs_keep_their_order() -> None:
    codecs = [entry.handler for entry in HANDLERS if entry.module == "modelshield.formats.compressed"]
    assert tuple(codecs) == compressed.HANDLERS


def test_a_duplicate_name_is_refused() -> None:
    twice = (LazyHandler("zip", "modelshield.formats.zip"), LazyHandler("zip", "modelshield.formats.tar"))
    with pytest.raises(RuntimeError, match="two format handlers are named 'zip'"):
        check_unique_names(twice)


def test_a_misnamed_entry_fails_when_loaded() -> None:
    with pytest.raises(RuntimeError, match="'tar'"):
        _ = LazyHandler("zip", "modelshield.formats.tar").handler


def test_a_pickle_scan_imports_no_unrelated_parser(tmp_path: Path) -> None:
    sample = tmp_path / "tiny.pkl"
    sample.write_bytes(pickle.dumps({"weights": [1.0, 2.0], "name": "tiny"}, protocol=4))
    code = (
        "import sys; from modelshield import scan; scan([sys.argv[1]]); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('modelshield.formats.'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(sample)], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert "modelshield.formats.pickle" in out
    for parser in ("hdf5", "onnx", "tensorflow", "tflite", "gguf", "safetensors", "nemo", "sevenzip", "tar"):
        assert f"modelshield.formats.{parser}" not in out


class _Checked:
    """A registry entry whose sniffer is asked directly, its prefilter checked against the answer."""

    def __init__(self, entry: LazyHandler, misses: dict[str, list[bytes]]) -> None:
        self.entry = entry
        self.name = entry.name
        self.version = entry.version
        self.anchored = entry.anchored
        self._misses = misses

    def sniff(self, blob: Blob) -> bool:
        accepted = self.entry.handler.sniff(blob)
        check(self.entry, blob, accepted, self._misses)
        return accepted

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        return self.entry.scan(blob, ctx)


def check(entry: LazyHandler, blob: Blob, accepted: bool, misses: dict[str, list[bytes]]) -> None:
    if accepted and entry.could_be is not None and not entry.could_be(_fresh(blob)):
        misses[entry.name].append(blob.head(64))
    first = blob.head(1)
    if accepted and entry.first_bytes is not None and first and first[0] not in entry.first_bytes:
        misses[f"{entry.name} (first byte)"].append(blob.head(64))  # the dispatcher would not ask it


def _fresh(blob: Blob) -> Blob:
    """The prefilter sees the blob as the dispatcher would first show it: no memo from the sniffer."""
    if blob.random_access and blob.size <= 1 << 20:
        return BufferBlob(bytes(blob.view()), blob.chain)
    return blob


def _sample_files(directory: Path) -> Iterator[Path]:
    sys.path.insert(0, str(ROOT))
    try:
        from fuzz.build_corpus import _builders, _extra_seeds
    finally:
        sys.path.remove(str(ROOT))
    for index, (_, build) in enumerate(_builders()):
        target = directory / f"s{index}"
        target.mkdir()
        try:
            build(target)
        except Exception:  # noqa: BLE001, S112 - a sample needing a missing optional library is skipped
            continue
    extra = directory / "extra"
    extra.mkdir()
    for name, data in _extra_seeds().items():
        (extra / name).write_bytes(data)
    for crash in sorted((ROOT / "tests" / "fuzz" / "crashes").glob("*")):
        (extra / f"crash-{crash.name}").write_bytes(crash.read_bytes())  # what the fuzzers found
    yield from (p for p in sorted(directory.rglob("*")) if p.is_file() and not p.is_symlink())


def _mutations(data: bytes, rng: random.Random) -> Iterator[bytes]:
    yield data[: len(data) // 2]
    yield data[:600]
    for _ in range(4):
        flipped = bytearray(data[:4096])
        if flipped:
            at = rng.randrange(min(len(flipped), 64))
            flipped[at] ^= 1 << rng.randrange(8)
        yield bytes(flipped) + data[4096:]


def test_no_prefilter_refuses_what_its_sniffer_accepts() -> None:
    misses: dict[str, list[bytes]] = defaultdict(list)
    dispatcher = Dispatcher([_Checked(entry, misses) for entry in HANDLERS])
    rng = random.Random(5)
    accepted: dict[str, int] = defaultdict(int)
    with tempfile.TemporaryDirectory(prefix="modelshield-registry-") as scratch:
        for path in _sample_files(Path(scratch)):
            with open_file_blob(path, path.name) as blob:
                dispatcher.scan(blob, ScanContext(limits=DEFAULT_LIMITS, policy=Policy()))
            data = path.read_bytes()
            if len(data) > 4 << 20:
                continue
            for variant in _mutations(data, rng):
                for entry in HANDLERS:
                    mutated = BufferBlob(variant, (path.name,))
                    sniffed = entry.handler.sniff(mutated)
                    accepted[entry.name] += sniffed
                    check(entry, mutated, sniffed, misses)
    assert not misses, {name: [head.hex() for head in heads[:3]] for name, heads in misses.items()}
    assert len([name for name, count in accepted.items() if count]) >= 20  # the samples reach the formats


def test_prefilters_find_formats_away_from_byte_zero(tmp_path: Path) -> None:
    """A user block before HDF5, and a zip appended to other data, are still offered to their handlers."""
    import io
    import zipfile

    h5py = pytest.importorskip("h5py")
    shifted = tmp_path / "user-block.h5"
    with h5py.File(shifted, "w", userblock_size=1024) as f:
        f["w"] = [1.0, 2.0]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps([1.0], protocol=2))
        z.comment = b"c" * 300
    appended = tmp_path / "appended.bin"
    appended.write_bytes(b"\x00junk" * 4000 + archive.getvalue())
    by_name = {entry.name: entry for entry in HANDLERS}
    for path, name in ((shifted, "hdf5"), (appended, "zip")):
        with open_file_blob(path, path.name) as blob:
            assert by_name[name].handler.sniff(blob)
            assert by_name[name].could_be is not None and by_name[name].could_be(_fresh(blob))
            assert by_name[name].sniff(blob)


SMALL_TEXTS_ACCEPTED = {
    "mlflow": [
        b"flavors:\n  python_function: {}\n",
        b"name: env\ndependencies:\n  - pip\n",
        b"python: 3.11\nbuild_dependencies:\n  - pip\n",
        b"torch==2.1\n",
        b"torch~=2.1\n",
        b"torch>2\n",
        b"-e .\nnumpy\n",
        b"--index-url https://example.org/simple\ntorch\n",
        b"pkg @ https://example.org/pkg.whl\n",
    ],
    "hydra-config": [b"model:\n  _target_: a.b.C\n", b"{_target_: a.b.C}\n", b"- '_target_': os.system\n"],
    "hf-remote-code": [b"from transformers import PreTrainedModel\nclass M(PreTrainedModel):\n    pass\n"],
}


@pytest.mark.parametrize(
    ("name", "data"), [(n, d) for n, texts in SMALL_TEXTS_ACCEPTED.items() for d in texts]
)
def test_text_prefilters_pass_small_files_their_sniffers_accept(name: str, data: bytes) -> None:
    entry = {entry.name: entry for entry in HANDLERS}[name]
    assert entry.handler.sniff(BufferBlob(data, ("f",)))
    assert entry.could_be is not None and entry.could_be(BufferBlob(data, ("f",)))
    assert entry.could_be(BufferBlob(data + b"\n" * 8192, ("f",)))  # past the probe: passed, whatever it says


@pytest.mark.parametrize("record", [b"1", b"3\n", b"little", b"64", b"1234567890123456789"])
def test_torch_records_import_no_text_parser(record: bytes) -> None:
    """The small records of every torch.save zip (version, byteorder, alignment, serialization id)."""
    text_formats = ("mlflow", "hydra-config", "hf-config", "hf-remote-code", "xml-model")
    for entry in HANDLERS:
        if entry.name in text_formats:
            assert entry.could_be is not None and not entry.could_be(BufferBlob(record, ("r",)))


def test_executable_magics_cover_every_signature_payloads_reads() -> None:
    from modelshield.analysis import payloads
    from modelshield.formats import signatures

    # _MACHO_THIN and _MACHO_FAT are the tables identify_executable reads its magics from
    tables = (*payloads._MACHO_THIN, *payloads._MACHO_FAT)  # noqa: SLF001
    assert set(tables) | {b"\x7fELF", b"MZ", b"#!"} == set(signatures.EXECUTABLE_MAGICS)


def test_safetensors_prefilter_checks_the_first_member() -> None:
    by_name = {entry.name: entry for entry in HANDLERS}
    prefilter = by_name["safetensors"].could_be
    assert prefilter is not None
    for header in (b"{}", b'{"a":{}}', b' { \n "__metadata__": {}}', b"{  "):
        blob = BufferBlob(len(header).to_bytes(8, "little") + header, ("h",))
        assert prefilter(blob) or not by_name["safetensors"].handler.sniff(blob)
    assert prefilter(BufferBlob((2).to_bytes(8, "little") + b"{}", ("h",)))
    assert not prefilter(BufferBlob((40).to_bytes(8, "little") + b"{ 0.5, 1.5 }" + b"\0" * 28, ("h",)))


def test_a_float_storage_is_identified_from_its_head_and_tail(tmp_path: Path) -> None:
    """What identifying a tensor storage reads: its head once, the zip end window and the HDF5 probes
    (a torch zip holds hundreds of storages, each offered to every handler)."""
    rng = random.Random(7)
    size = 1 << 20
    storage = tmp_path / "storage"
    storage.write_bytes(struct.pack(f"<{size // 4}f", *(rng.gauss(0, 0.02) for _ in range(size // 4))))
    hdf5_probes = 8 * (size // 512).bit_length()
    budget = ReadBudget(1 << 40)
    with open_file_blob(storage, "storage") as blob, blob.reads_counted(budget):
        assert identify(blob, HANDLERS).primary is None
    assert budget.used <= HEAD_BYTES + ZIP_END_RECORD + ZIP_MAX_COMMENT + hdf5_probes


def test_first_byte_tests_pass_no_other_first_byte() -> None:
    """A prefilter that declares its first bytes refuses content starting with any other byte (the
    dispatcher skips it for such content), whatever follows."""
    rng = random.Random(11)
    declared = [entry for entry in HANDLERS if entry.first_bytes is not None]
    assert {"placeholder", "numpy", "gzip", "onnx", "tensorflow", "executable", "hf-config"} <= {
        entry.name for entry in declared
    }
    tails = [bytes(rng.randrange(256) for _ in range(600)) for _ in range(8)]
    tails += [b"\x00" * 600, b" " * 600, b'{"a": 1}' * 60, b"<a/>" * 150, b"PK\x03\x04" * 150]
    for entry in declared:
        assert entry.could_be is not None and entry.first_bytes is not None
        for byte in set(range(256)) - entry.first_bytes:
            for tail in tails:
                assert not entry.could_be(BufferBlob(bytes([byte]) + tail, ("b",))), (entry.name, byte)


def test_the_dispatcher_asks_only_handlers_that_may_accept_the_first_byte() -> None:
    index = Dispatcher(HANDLERS)._by_first_byte  # noqa: SLF001
    table = [index[byte] for byte in range(256)]
    numpy_entry = next(entry for entry in HANDLERS if entry.name == "numpy")
    pickle_entry = next(entry for entry in HANDLERS if entry.name == "pickle")
    assert numpy_entry in table[0x93] and numpy_entry not in table[0x80]
    assert all(pickle_entry in candidates for candidates in table)  # no first bytes declared: always asked
    assert all(list(candidates) == [e for e in HANDLERS if e in candidates] for candidates in table)
