"""Every rule in the registry has a sample that fires it, and every sample here names a registered rule."""

from __future__ import annotations

import gzip
import io
import pickle
import random
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.analysis.test_weights import elf_in_weights, script_in_weights
from tests.formats.test_hf_config import MODELING_SOURCE
from tests.formats.test_joblib import _old_joblib_pickle, _zfile
from tests.formats.test_mlflow import (
    BENIGN_MLMODEL,
    CUSTOM_MLMODEL,
    HOSTILE_REQUIREMENTS,
    PYFUNC_MLMODEL,
    write_model_dir,
)
from tests.samples import archives
from tests.samples import flax_samples as fx
from tests.samples import gguf_samples as gg
from tests.samples import hdf5_samples as h5
from tests.samples import keras_samples as ks
from tests.samples import nemo_samples as ns
from tests.samples import numpy_samples as npy
from tests.samples import onnx_samples as ox
from tests.samples import pickles as pk
from tests.samples import safetensors_samples as st
from tests.samples import skops_samples as sk
from tests.samples import tf_samples as tfs
from tests.samples import tflite_samples as tfl
from tests.samples import torch_samples as pt
from tests.samples import xml_model_samples as xm
from tests.samples.archives import PAYLOAD, RawEntry, TarEntry
from tests.samples.pickles import Asm, G, call, program

import modelshield
from modelshield.engine.limits import Limits
from modelshield.engine.scanner import ScanOptions, scan_paths
from modelshield.rules import REGISTRY

SampleBuilder = Callable[[Path], Path]


def _write(name: str, data: bytes) -> SampleBuilder:
    def build(directory: Path) -> Path:
        path = directory / name
        path.write_bytes(data)
        return path

    return build


def _pickle_sample(sample: str) -> SampleBuilder:
    """A sample of the malicious pickle corpus, its payload aimed at a marker that is never created."""

    def build(directory: Path) -> Path:
        path = directory / f"{sample}.bin"
        path.write_bytes(pk.build(sample, str(directory / "marker")))
        return path

    return build


def _with_marker(build: Callable[[Path, Path], Path]) -> SampleBuilder:
    return lambda directory: build(directory, directory / "marker")


# -- pickles ----------------------------------------------------------------------------------------


def _unknown_class(directory: Path) -> Path:
    a = Asm(2)
    a.global_("mylab.models", "TinyNet").tuple_(0).newobj()
    a.emit({"hidden": 8}).build().stop()
    return _write("unknown_class.pkl", a.bytes())(directory)


def _external_file(directory: Path) -> Path:
    return _write("old_joblib.pkl", _zfile(_old_joblib_pickle("model.pkl_01.npy")))(directory)


# -- archives -----------------------------------------------------------------------------------------


def _header_mismatch() -> bytes:
    data = bytearray(archives.raw_zip([RawEntry(b"a.bin")]))
    data[8] = 8  # the local header says deflate, the central directory says stored
    return bytes(data)


def _overlapping_members() -> bytes:
    data = bytearray(archives.raw_zip([RawEntry(b"a.bin"), RawEntry(b"b.bin")]))
    central_b = data.rindex(b"PK\x01\x02")
    data[central_b + 42 : central_b + 46] = bytes(4)  # b.bin's data offset now points at a.bin
    return bytes(data)


def _truncated_tar() -> bytes:
    return archives.tar_bytes([TarEntry("big.bin", bytes(4096))])[: 512 + 1024]


# -- PyTorch, TorchScript, TorchServe ---------------------------------------------------------------


class _OddIdPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        return ("module", "os", "/tmp/x.py", "source") if obj == "hook" else None


def _odd_persistent_id(directory: Path) -> Path:
    buffer = io.BytesIO()
    _OddIdPickler(buffer, protocol=2).dump({"w": "hook"})
    return pt.rewrite_zip(
        pt.state_dict_pt(directory),
        directory / "oddid.pt",
        drop=("model/data.pkl",),
        add=(("model/data.pkl", buffer.getvalue()),),
    )


def _legacy_header(directory: Path) -> Path:
    path = pt.legacy_pt(directory)
    data = path.read_bytes()
    path.write_bytes(data.replace(pickle.dumps(1001, protocol=2), pickle.dumps(999, protocol=2), 1))
    return path


def _torchscript_code_member(archive: Path) -> tuple[str, str]:
    with zipfile.ZipFile(archive) as zin:
        for name in zin.namelist():
            if name.endswith(".py") and "TinyNet" in (text := zin.read(name).decode()):
                return name, text
    raise AssertionError(f"no TinyNet code member in {archive}")


def _torchscript_rewritten(directory: Path, name: str, edit: Callable[[str], str]) -> Path:
    source = pt.scripted_pt(directory)
    member, text = _torchscript_code_member(source)
    return pt.rewrite_zip(source, directory / name, drop=(member,), add=((member, edit(text).encode()),))


def _torchscript_line(line: str) -> SampleBuilder:
    """A real torch.jit.save archive whose forward() gains `line`, as a hand edit would add it."""
    signature = "    x: Tensor) -> Tensor:\n"

    def edit(text: str) -> str:
        head, tail = text.split(signature, 1)
        return head + signature + f"    {line}\n" + tail

    return lambda directory: _torchscript_rewritten(directory, "ts_edited.pt", edit)


def _torchscript_unparsed(directory: Path) -> Path:
    broken = "class TinyNet(Module:\n  def forward(self, x):\n    return x\n"
    return _torchscript_rewritten(directory, "ts_broken.pt", lambda _text: broken)


def _torchserve_requirements(directory: Path) -> Path:
    return pt.mar(directory, extra={"requirements.txt": b"numpy==1.26.4\n"})


def _torchserve_missing_file(directory: Path) -> Path:
    return pt.rewrite_zip(pt.mar(directory), directory / "nomodel.mar", drop=("weights.pt",))


# -- MLflow -------------------------------------------------------------------------------------------


def _mlflow(mlmodel: str, member: str = "MLmodel", requirements: str | None = None) -> SampleBuilder:
    def build(directory: Path) -> Path:
        extra = {} if requirements is None else {"requirements": requirements}
        return write_model_dir(directory / "model", mlmodel, **extra) / member

    return build


RULE_SAMPLES: dict[str, SampleBuilder] = {
    # pickle
    "PICKLE-DANGEROUS-CALL": _pickle_sample("gadget_os_system"),
    "PICKLE-DANGEROUS-IMPORT": _write("import.pkl", program({"hook": G("os", "system")}, proto=2)),
    "PICKLE-UNKNOWN-CALL": _write("call.pkl", program([call(G("mylab.models", "make_model"), 3)], proto=4)),
    "PICKLE-UNKNOWN-IMPORT": _write("ref.pkl", program([G("mylab.models", "DEFAULTS")], proto=4)),
    "PICKLE-UNKNOWN-CLASS": _unknown_class,
    "PICKLE-NESTED-LOAD": _pickle_sample("nested_raw_pickle_loads"),
    "PICKLE-NAME-RESOLVER": _pickle_sample("indirect_pydoc_locate"),
    "PICKLE-DYNAMIC-NAME": _pickle_sample("indirect_computed_stack_global"),
    "PICKLE-CODE-OBJECT": _pickle_sample("nested_marshal_function"),
    "PICKLE-GLOBAL-MUTATION": _pickle_sample("object_module_mutation"),
    "PICKLE-SETSTATE-PLANTED": _pickle_sample("object_setstate_planted"),
    "PICKLE-EXT-CODE": _write("ext.pkl", Asm(2).ext1(0x42).stop().bytes()),
    "PICKLE-MALFORMED": _pickle_sample("parser_invalid_opcode"),
    "PICKLE-EXTERNAL-FILE": _external_file,
    "PICKLE-TRAILING-DATA": _write("trailing.pkl", pk.benign_state() + b"\x00\x01\x02\x03 not a pickle"),
    # archives
    "ARCHIVE-PATH-TRAVERSAL": _write("slip.zip", archives.zip_with({"../escape.txt": PAYLOAD})),
    "ARCHIVE-ABSOLUTE-PATH": _write("abs.zip", archives.raw_zip([RawEntry(b"/abs/path")])),
    "ARCHIVE-LINK": _write(
        "link.tar", archives.tar_bytes([TarEntry("up", kind=tarfile.SYMTYPE, linkname="../../.bashrc")])
    ),
    "ARCHIVE-SPECIAL-FILE": _write("fifo.tar", archives.tar_bytes([TarEntry("pipe", kind=tarfile.FIFOTYPE)])),
    "ARCHIVE-BOMB": _write("bomb.zip", archives.deflate_bomb(256)),
    "ARCHIVE-TOO-MANY-MEMBERS": _write(
        "many.zip", archives.raw_zip([RawEntry(f"m{i}".encode()) for i in range(5)])
    ),
    "ARCHIVE-DUPLICATE-MEMBER": _write("dup.zip", archives.raw_zip([RawEntry(b"a.pkl"), RawEntry(b"a.pkl")])),
    "ARCHIVE-TRUNCATED": _write("short.tar", _truncated_tar()),
    "ARCHIVE-CORRUPT-STREAM": _write(
        "broken.gz", gzip.compress(random.Random(0).randbytes(4096), mtime=0)[:-300] + b"\xff" * 300
    ),
    "ZIP-NAME-MISMATCH": _write(
        "names.zip", archives.raw_zip([RawEntry(b"archive/data.pkl", local_name=b"archive/other.pk")])
    ),
    "ZIP-HEADER-MISMATCH": _write("headers.zip", _header_mismatch()),
    "ZIP-BAD-CRC": _write("crc.zip", archives.raw_zip([RawEntry(b"archive/data.pkl", method=8, crc=0x1234)])),
    "ZIP-UNUSUAL-FLAGS": _write("flags.zip", archives.raw_zip([RawEntry(b"odd", flags=0x0020)])),
    "ZIP-ENCRYPTED": _write("encrypted.zip", archives.raw_zip([RawEntry(b"a.bin", flags=0x0001)])),
    "ZIP-HIDDEN-MEMBER": _write(
        "hidden.zip",
        archives.raw_zip([RawEntry(b"shown.bin"), RawEntry(b"hidden.bin", b"x", in_central=False)]),
    ),
    "ZIP-OVERLAPPING-MEMBERS": _write("overlap.zip", _overlapping_members()),
    "ZIP-PREPENDED-DATA": _write(
        "prefixed.zip", archives.raw_zip([RawEntry(b"a.bin")], prefix=b"#!/bin/sh\n")
    ),
    "ZIP-TRAILING-DATA": _write("suffixed.zip", archives.raw_zip([RawEntry(b"a.bin")], trailing=b"APPENDED")),
    # PyTorch, TorchScript, TorchServe
    "PYTORCH-EMBEDDED-CONTENT": pt.extra_members_pt,
    "PYTORCH-MISSING-RECORD": pt.no_version_pt,
    "PYTORCH-DUPLICATE-PICKLE": _with_marker(pt.duplicate_pickle_pt),
    "PYTORCH-MISSING-STORAGE": pt.missing_storage_pt,
    "PYTORCH-ODD-PERSISTENT-ID": _odd_persistent_id,
    "PYTORCH-LEGACY-APPENDED": pt.legacy_appended_pt,
    "PYTORCH-LEGACY-TRUNCATED": pt.legacy_truncated_pt,
    "PYTORCH-LEGACY-HEADER": _legacy_header,
    "TORCHSCRIPT-FILE-ACCESS": _torchscript_line('_0 = ops.aten.save(x, "out")'),
    "TORCHSCRIPT-LIBRARY-LOAD": _torchscript_line('torch.ops.load_library("libevil.so")'),
    "TORCHSCRIPT-PYTHON-ESCAPE": _torchscript_line('os.system("id")'),
    "TORCHSCRIPT-CUSTOM-OP": _torchscript_line("_1 = ops.evilns.run(x)"),
    "TORCHSCRIPT-CUSTOM-CLASS": _torchscript_line("_2 = torch.classes.evilns.Shell()"),
    "TORCHSCRIPT-NETWORK-OP": _torchscript_line("_3 = ops.c10d.broadcast_([x], pg, 0, 0, False, -1)"),
    "TORCHSCRIPT-UNPARSED-CODE": _torchscript_unparsed,
    "TORCHSERVE-CUSTOM-HANDLER": lambda directory: pt.mar(directory, handler="somewhere.else:handle"),
    "TORCHSERVE-REQUIREMENTS": _torchserve_requirements,
    "TORCHSERVE-MISSING-FILE": _torchserve_missing_file,
    # NumPy
    "NUMPY-OBJECT-ARRAY": npy.object_ints_npy,
    "NUMPY-MALFORMED-HEADER": npy.not_literal_npy,
    "NUMPY-HEADER-OVERSIZED": npy.oversized_header_npy,
    "NUMPY-ABSURD-SHAPE": npy.absurd_shape_npy,
    "NUMPY-TRUNCATED": npy.truncated_npy,
    "NUMPY-APPENDED-DATA": npy.appended_npy,
    # MLflow and environments
    "MLFLOW-FOREIGN-LOADER": _mlflow(CUSTOM_MLMODEL),
    "MLFLOW-MODEL-CODE": _mlflow(PYFUNC_MLMODEL),
    "MLFLOW-CODE-PATH": _mlflow(CUSTOM_MLMODEL),
    "MLFLOW-PICKLED-MODEL": _mlflow(BENIGN_MLMODEL),
    "REQUIREMENTS-REMOTE-SOURCE": _mlflow(BENIGN_MLMODEL, "requirements.txt", HOSTILE_REQUIREMENTS),
    "YAML-PYTHON-TAG": _write("MLmodel", b"flavors: !!python/object/apply:os.system ['true']\n"),
    # NeMo and Hydra configs
    "HYDRA-DANGEROUS-TARGET": lambda d: ns.write_nemo(d, ns.OS_SYSTEM_CONFIG),
    "HYDRA-UNKNOWN-TARGET": lambda d: ns.write_nemo(d, ns.UNKNOWN_CONFIG),
    # Hugging Face folders
    "HF-REMOTE-CODE": _write("config.json", b'{"auto_map": {"AutoModel": "modeling_x.M"}}'),
    "HF-REMOTE-CODE-OTHER-REPO": _write("config.json", b'{"auto_map": {"AutoModel": "o/r--modeling_x.M"}}'),
    "HF-REMOTE-CODE-FILE": _write("modeling_x.py", MODELING_SOURCE.encode()),
    # Keras
    "KERAS-LAMBDA": lambda d: ks.write_keras(d, ks.LAMBDA_BENIGN),
    "KERAS-DANGEROUS-OBJECT": lambda d: ks.write_keras(d, ks.OS_SYSTEM),
    "KERAS-CUSTOM-OBJECT": lambda d: ks.write_keras(d, ks.CUSTOM),
    "KERAS-TORCH-MODULE": lambda d: ks.write_keras(d, ks.model_config(ks.torch_wrapper(pk.benign_state()))),
    # GGUF and its chat templates
    **gg.RULE_SAMPLES,
    # HDF5 and legacy Keras H5
    **h5.RULE_SAMPLES,
    # ONNX
    **ox.RULE_SAMPLES,
    # TensorFlow
    **tfs.RULE_SAMPLES,
    # TensorFlow Lite
    **tfl.RULE_SAMPLES,
    # skops
    **sk.RULE_SAMPLES,
    # Flax msgpack
    **fx.RULE_SAMPLES,
    # OpenVINO IR and PMML
    **xm.RULE_SAMPLES,
    # safetensors and embedded executables
    **st.RULE_SAMPLES,
    # payloads in the low bits of weights (scanned with deep=True)
    "WEIGHTS-EMBEDDED-PAYLOAD": elf_in_weights,
    "WEIGHTS-LOW-BIT-ANOMALY": script_in_weights,
}
"""Rule id -> a builder that writes, under the given directory, one file that fires the rule."""

SAMPLE_LIMITS: dict[str, Limits] = {
    # The default member limit (100,000) needs zip64 or a 50 MB tar; the rule is the same at 3.
    "ARCHIVE-TOO-MANY-MEMBERS": Limits(max_members_per_archive=3),
}
"""Rules about a configurable limit are fired by scanning their sample under a lower limit."""


def _fired(path: Path, rule_id: str) -> set[str]:
    if rule_id in SAMPLE_LIMITS:
        options = ScanOptions(compute_hash=False, limits=SAMPLE_LIMITS[rule_id])
        result = scan_paths([path], options=options)
    else:
        result = modelshield.scan(path, compute_hash=False, deep=rule_id.startswith("WEIGHTS-"))
    return {finding.rule_id for finding in result.findings}


@pytest.mark.parametrize("rule_id", sorted(set(REGISTRY) | set(RULE_SAMPLES)))
def test_rule_has_a_sample_that_fires_it(rule_id: str, tmp_path: Path) -> None:
    if rule_id not in RULE_SAMPLES:
        pytest.fail(f"{rule_id} has no sample: add a builder to RULE_SAMPLES in {__file__}")
    if rule_id not in REGISTRY:
        pytest.fail(f"{rule_id} is not a registered rule: remove it from RULE_SAMPLES (ids are never reused)")
    directory = tmp_path / "sample"
    directory.mkdir()
    path = RULE_SAMPLES[rule_id](directory)
    fired = _fired(path, rule_id)
    assert rule_id in fired, f"{path.name} fired {sorted(fired)}"


def test_samples_cover_exactly_the_registry() -> None:
    missing = sorted(set(REGISTRY) - set(RULE_SAMPLES))
    unknown = sorted(set(RULE_SAMPLES) - set(REGISTRY))
    assert (missing, unknown) == ([], []), f"rules without a sample: {missing}; samples of no rule: {unknown}"
    assert set(SAMPLE_LIMITS) <= set(RULE_SAMPLES)
