"""Seed corpora for the fuzzers: every sample the test suite builds, sorted by the handler that reads it.

Each sample is scanned once with every handler wrapped in a recorder, so a handler's corpus holds each
blob it was given, nested members included (the pickle inside a zip, the .npy inside an .npz). A
handler the samples never reach gets hand-made seeds (`_extra_seeds`). The samples are tiny and their
payloads only aim at a marker file in a temporary directory; nothing here loads them.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import importlib
import inspect
import lzma
import pickle
import shutil
import sys
import tempfile
import traceback
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fuzz.harness import ALL, MAX_INPUT_BYTES, handler_names  # noqa: E402
from modelshield.engine.blob import Blob, open_file_blob  # noqa: E402
from modelshield.engine.context import ScanContext  # noqa: E402
from modelshield.engine.dispatch import Dispatcher  # noqa: E402
from modelshield.engine.limits import DEFAULT_LIMITS  # noqa: E402
from modelshield.formats import HANDLERS  # noqa: E402
from modelshield.formats.base import FormatHandler, ScanEvent  # noqa: E402
from modelshield.policy.model import Policy  # noqa: E402

DEFAULT_WORK = ROOT / "fuzz" / "work"
SAMPLE_MODULES = (
    "archives", "flax_samples", "gguf_samples", "hdf5_samples", "keras_samples", "keras_metadata_samples",
    "nemo_samples", "numpy_samples", "onnx_samples", "safetensors_samples", "skops_samples", "tf_samples",
    "tflite_samples", "torch_samples", "xml_model_samples",
)  # fmt: skip
"""Modules of tests/samples whose one-argument functions build a sample under a directory."""

Builder = Callable[[Path], object]


class _Recorder:
    """A handler that keeps every blob it is asked to scan (up to the fuzz input size), then scans it."""

    def __init__(self, handler: FormatHandler, seeds: dict[str, set[bytes]]) -> None:
        self._handler = handler
        self._seeds = seeds
        self.name = handler.name
        self.version = handler.version
        anchored = getattr(handler, "anchored", None)
        if anchored is not None:
            self.anchored = anchored

    def sniff(self, blob: Blob) -> bool:
        return self._handler.sniff(blob)

    def scan(self, blob: Blob, ctx: ScanContext) -> Iterator[ScanEvent]:
        if blob.size <= MAX_INPUT_BYTES:
            self._seeds[self.name].add(bytes(blob.view()))
        return self._handler.scan(blob, ctx)


def _builders() -> Iterator[tuple[str, Builder]]:
    from tests.samples import pickles
    from tests.test_rule_coverage import RULE_SAMPLES

    for rule_id, build in RULE_SAMPLES.items():
        yield f"rule {rule_id}", build
    for name, sample in pickles.SAMPLES.items():
        yield f"pickle {name}", _pickle_builder(sample.build, name)
    for module_name in SAMPLE_MODULES:
        module = importlib.import_module(f"tests.samples.{module_name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__ or name.startswith("_"):
                continue
            parameters = list(inspect.signature(function).parameters.values())
            required = [p for p in parameters if p.default is inspect.Parameter.empty]
            if len(required) == 1 and required[0].name == "directory":
                yield f"{module_name}.{name}", function


def _pickle_builder(build: Callable[[str], bytes], name: str) -> Builder:
    def write(directory: Path) -> Path:
        path = directory / f"{name}.pkl"
        path.write_bytes(build(str(directory / "marker")))
        return path

    return write


def _extra_seeds() -> dict[str, bytes]:
    """Seeds for formats no test sample reaches on its own: each compression around a pickle, a 7z
    archive, Git LFS and git-annex pointers."""
    from tests.samples.archives import sevenzip_bytes

    payload = pickle.dumps({"weights": [1.0, 2.0], "name": "tiny"}, protocol=2)
    seeds = {
        "model.7z": sevenzip_bytes({"archive/data.pkl": payload, "config.json": b'{"a": 1}'}),
        "lfs.bin": b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 1234\n",
        "annex.bin": b"/annex/objects/SHA256E-s1234--" + b"cd" * 32 + b".bin\n",
        "gzip.pkl.gz": gzip.compress(payload, mtime=0),
        "bzip2.pkl.bz2": bz2.compress(payload),
        "xz.pkl.xz": lzma.compress(payload),
        "lzma.pkl.lzma": lzma.compress(payload, format=lzma.FORMAT_ALONE),
        "zlib.pkl.z": zlib.compress(payload),
    }
    try:
        import zstandard

        seeds["zstd.pkl.zst"] = zstandard.ZstdCompressor().compress(payload)
    except ImportError:
        pass
    return seeds


def build(work: Path, verbose: bool = False) -> dict[str, int]:
    """Write `work/corpus/<handler>/<sha1>` for every recorded blob, and each one again under
    `work/corpus/all/` behind its handler's index byte; the count per handler."""
    seeds: dict[str, set[bytes]] = defaultdict(set)
    dispatcher = Dispatcher([_Recorder(handler, seeds) for handler in HANDLERS])
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modelshield-fuzz-seeds-") as scratch:
        for index, (label, builder) in enumerate(_builders()):
            directory = Path(scratch) / f"s{index}"
            directory.mkdir()
            try:
                builder(directory)
            except Exception:  # noqa: BLE001 - a sample needing a missing library only shrinks the corpus
                failed.append(label)
                if verbose:
                    traceback.print_exc()
        extra = Path(scratch) / "extra"
        extra.mkdir()
        for name, data in _extra_seeds().items():
            (extra / name).write_bytes(data)
        for path in sorted(Path(scratch).rglob("*")):
            if path.is_file() and not path.is_symlink():
                with open_file_blob(path, path.name) as blob:
                    dispatcher.scan(blob, ScanContext(limits=DEFAULT_LIMITS, policy=Policy()))
    corpus = work / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    counts = {}
    for name in handler_names():
        directory = corpus / name
        directory.mkdir(parents=True)
        for data in seeds.get(name, ()):
            (directory / hashlib.sha1(data, usedforsecurity=False).hexdigest()).write_bytes(data)
        counts[name] = len(seeds.get(name, ()))
    multiplexed = corpus / ALL
    multiplexed.mkdir()
    for index, name in enumerate(handler_names()):
        for data in seeds.get(name, ()):
            tagged = bytes([index]) + data
            (multiplexed / hashlib.sha1(tagged, usedforsecurity=False).hexdigest()).write_bytes(tagged)
    if failed:
        print(f"{len(failed)} sample builders failed (missing optional libraries?): {', '.join(failed)}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="work dir (default fuzz/work)")
    parser.add_argument("--verbose", action="store_true", help="print why a sample builder failed")
    args = parser.parse_args()
    counts = build(args.work, args.verbose)
    for name, count in counts.items():
        print(f"{name:16} {count:5} seeds")


if __name__ == "__main__":
    main()
