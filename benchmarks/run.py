"""Speed and memory of modelshield on large model files, next to sha256sum, cat and peer scanners.

Run by hand (never as a timed test):

    python benchmarks/run.py --setup-peers   # once: the peer scanners, each in benchmarks/work/peers/NAME
    python benchmarks/run.py                 # generate (cached) files, measure, write work/results.md

The measuring process imports only the standard library; the test files are generated in a child
process (torch and numpy are imported there), so the measuring process stays small. See README.md.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = HERE / "work"
PEERS_REQUIREMENTS = HERE / "requirements-peers.txt"
GIB = 1024**3
MIB = 1024**2

# Targets from issues #2 and #5.
TARGET_NOHASH_SECONDS = 0.2
TARGET_NOHASH_RSS_MB = 100.0
TARGET_HASH_RATIO = 1.1
TARGET_STARTUP_SECONDS = 0.15
TARGET_RESCAN_SECONDS = 0.05
TARGET_TREE_RATIO = 2.0

TORCH_FILE = "checkpoint.pt"
NPY_FILE = "weights.npy"
TINY_FILE = "tiny.pkl"
# Issue #3 formats: the same --no-hash targets.
SAFETENSORS_FILE = "model.safetensors"
GGUF_FILE = "model.gguf"
ONNX_DIR = "onnx-external"
"""A directory: `model.onnx` and its one external data file `model.onnx.data` (scanned together)."""
H5_FILE = "model.h5"
TREE_DIR = "tree"
"""A directory of TREE_FILES small model files of eight formats (issue #5), measured in files per second."""
TREE_FILES = 2000
ISSUE2_FILES = (TORCH_FILE, NPY_FILE, TINY_FILE)
ISSUE3_FILES = (SAFETENSORS_FILE, GGUF_FILE, ONNX_DIR, H5_FILE)
ALL_FILES = ISSUE2_FILES + ISSUE3_FILES + (TREE_DIR,)
DATA_CHUNK = 64 * MIB


# --------------------------------------------------------------------------------------------------
# File generators. Each writes to a temporary name and renames, so a killed run never leaves a file
# that looks complete; a sidecar `<file>.spec.json` records what was asked for and the size written.


def _spec_path(path: Path) -> Path:
    return path.with_name(path.name + ".spec.json")


def is_cached(path: Path, spec: dict[str, object]) -> bool:
    """True when `path` was generated from the same spec and still has the size it was written with."""
    try:
        recorded = json.loads(_spec_path(path).read_text())
        return bool(recorded["spec"] == spec and path.stat().st_size == recorded["size"])
    except (OSError, ValueError, KeyError):
        return False


def _record(path: Path, spec: dict[str, object]) -> None:
    _spec_path(path).write_text(json.dumps({"spec": spec, "size": path.stat().st_size}))


def transformer_shapes(target_bytes: int, hidden: int = 1024) -> list[tuple[str, tuple[int, ...]]]:
    """Parameter names and shapes of a decoder-only transformer whose float32 weights are about
    `target_bytes`: embeddings, per-layer attention/MLP matrices, biases and norms, a head."""
    vocab = max(256, min(32000, target_bytes // (hidden * 4 * 8)))
    ffn = hidden * 11 // 4
    per_layer: list[tuple[str, tuple[int, ...]]] = [
        ("input_layernorm.weight", (hidden,)),
        ("self_attn.q_proj.weight", (hidden, hidden)),
        ("self_attn.q_proj.bias", (hidden,)),
        ("self_attn.k_proj.weight", (hidden, hidden)),
        ("self_attn.k_proj.bias", (hidden,)),
        ("self_attn.v_proj.weight", (hidden, hidden)),
        ("self_attn.v_proj.bias", (hidden,)),
        ("self_attn.o_proj.weight", (hidden, hidden)),
        ("post_attention_layernorm.weight", (hidden,)),
        ("mlp.gate_proj.weight", (ffn, hidden)),
        ("mlp.up_proj.weight", (ffn, hidden)),
        ("mlp.down_proj.weight", (hidden, ffn)),
    ]
    layer_bytes = sum(4 * _numel(shape) for _, shape in per_layer)
    fixed_bytes = 4 * (2 * vocab * hidden + hidden)
    layers = max(1, round((target_bytes - fixed_bytes) / layer_bytes))
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        shapes.extend((f"model.layers.{i}.{name}", shape) for name, shape in per_layer)
    shapes.append(("model.norm.weight", (hidden,)))
    shapes.append(("lm_head.weight", (vocab, hidden)))
    return shapes


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def make_torch_checkpoint(path: Path, target_bytes: int, hidden: int = 1024) -> Path:
    """`torch.save` of a float32 state_dict of about `target_bytes`. The tensors themselves are the
    only large allocation: torch.save streams each storage into the zip without copying it."""
    spec: dict[str, object] = {"kind": "torch", "target_bytes": target_bytes, "hidden": hidden}
    if is_cached(path, spec):
        return path
    import torch

    gen = torch.Generator().manual_seed(0)
    state_dict = {}
    for name, shape in transformer_shapes(target_bytes, hidden):
        t = torch.empty(shape, dtype=torch.float32)
        t.uniform_(-0.05, 0.05, generator=gen)  # cheap, non-constant contents
        state_dict[name] = t
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state_dict, tmp)
    del state_dict
    os.replace(tmp, path)
    _record(path, spec)
    return path


def make_npy(path: Path, target_bytes: int, columns: int = 1024) -> Path:
    """A float32 `.npy` of `target_bytes` of data: numpy's own header, then the data streamed in
    64 MiB chunks, so memory stays at one chunk whatever the size."""
    spec: dict[str, object] = {"kind": "npy", "target_bytes": target_bytes, "columns": columns}
    if is_cached(path, spec):
        return path
    import numpy as np

    rows = max(1, target_bytes // (4 * columns))
    rng = np.random.default_rng(0)
    chunk_rows = max(1, (64 * MIB) // (4 * columns))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        header = {
            "descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
            "fortran_order": False,
            "shape": (rows, columns),
        }
        np.lib.format.write_array_header_1_0(f, header)
        done = 0
        while done < rows:
            n = min(chunk_rows, rows - done)
            f.write(rng.standard_normal((n, columns), dtype=np.float32).tobytes())
            done += n
    os.replace(tmp, path)
    _record(path, spec)
    return path


def make_tiny_pickle(path: Path) -> Path:
    """A dict of a few floats: what is left is the scanner's start-up time."""
    spec: dict[str, object] = {"kind": "tiny-pickle"}
    if is_cached(path, spec):
        return path
    data = pickle.dumps({"lr": 0.001, "momentum": 0.9, "weight_decay": 0.0001, "eps": 1e-08}, protocol=4)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    _record(path, spec)
    return path


def _normal_chunks(nbytes: int, dtype: str, seed: int = 0) -> Iterator[bytes]:
    """`nbytes` of normal-distributed weights (scaled like trained ones), DATA_CHUNK at a time."""
    import numpy as np

    rng = np.random.default_rng(seed)
    width = np.dtype(dtype).itemsize
    left = nbytes // width
    while left > 0:
        n = min(left, DATA_CHUNK // width)
        yield (rng.standard_normal(n, dtype=np.float32) * 0.02).astype(dtype).tobytes()
        left -= n


def _write_chunks(f: BinaryIO, nbytes: int, dtype: str) -> None:
    for chunk in _normal_chunks(nbytes, dtype):
        f.write(chunk)


def make_safetensors(path: Path, target_bytes: int, hidden: int = 1024) -> Path:
    """A safetensors file of the transformer shapes (float32), written as the format defines it: the
    JSON header, then each tensor's bytes streamed, so memory stays at one chunk."""
    spec: dict[str, object] = {"kind": "safetensors", "target_bytes": target_bytes, "hidden": hidden}
    if is_cached(path, spec):
        return path
    entries: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    shapes = transformer_shapes(target_bytes, hidden)
    for name, shape in shapes:
        nbytes = _numel(shape) * 4
        entries[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        for _, shape in shapes:
            _write_chunks(f, _numel(shape) * 4, "<f4")
    os.replace(tmp, path)
    _record(path, spec)
    return path


def make_gguf(path: Path, target_bytes: int, hidden: int = 1024) -> Path:
    """A GGUF written by the `gguf` package's writer: llama metadata, F16 matrices and F32 norms and
    biases; tensors are added as infos first and their data streamed one tensor at a time."""
    spec: dict[str, object] = {"kind": "gguf", "target_bytes": target_bytes, "hidden": hidden}
    if is_cached(path, spec):
        return path
    import gguf
    import numpy as np

    # F16 halves the bytes of a matrix: twice the parameters make the same file size.
    shapes = transformer_shapes(2 * target_bytes, hidden)
    tmp = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name("benchmark")
    writer.add_context_length(4096)
    writer.add_embedding_length(hidden)
    writer.add_block_count(sum(1 for n, _ in shapes if n.endswith("input_layernorm.weight")))
    dtypes = []
    for name, shape in shapes:
        dtype = np.float16 if len(shape) > 1 else np.float32
        dtypes.append(dtype)
        writer.add_tensor_info(name, shape, np.dtype(dtype), _numel(shape) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    for (_, shape), dtype in zip(shapes, dtypes, strict=True):
        writer.write_tensor_data((rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(dtype))
    writer.close()
    os.replace(tmp, path)
    _record(path, spec)
    return path


def make_onnx_external(directory: Path, target_bytes: int, hidden: int = 1024) -> Path:
    """An ONNX model (a chain of MatMul+Add over the transformer's matrices) whose initializers all live
    in one external file, `model.onnx.data`, at increasing offsets: how large ONNX models are saved."""
    spec: dict[str, object] = {"kind": "onnx-external", "target_bytes": target_bytes, "hidden": hidden}
    marker = directory / "model.onnx"
    if is_cached(marker, spec) and (directory / "model.onnx.data").exists():
        return directory
    from onnx import TensorProto, helper

    directory.mkdir(parents=True, exist_ok=True)
    # Every tensor is an initializer in the one data file; the square projections form the graph.
    shapes = transformer_shapes(target_bytes, hidden)
    initializers, nodes, offset = [], [], 0
    previous = "input"
    for i, (name, shape) in enumerate(shapes):
        per = _numel(shape) * 4
        tensor = TensorProto(name=name, dims=list(shape), data_type=TensorProto.FLOAT)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "model.onnx.data"), ("offset", str(offset)), ("length", str(per))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        initializers.append(tensor)
        if shape == (hidden, hidden):
            nodes.append(helper.make_node("MatMul", [previous, name], [f"h{i}"]))
            previous = f"h{i}"
        offset += per
    graph = helper.make_graph(
        nodes,
        "benchmark",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, hidden])],
        [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [1, hidden])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data_tmp = directory / "model.onnx.data.tmp"
    with open(data_tmp, "wb") as f:
        _write_chunks(f, offset, "<f4")
    os.replace(data_tmp, directory / "model.onnx.data")
    tmp = directory / "model.onnx.tmp"
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, marker)
    _record(marker, spec)
    return directory


def make_h5(path: Path, target_bytes: int, hidden: int = 1024) -> Path | None:
    """A Keras-style HDF5 weights file (h5py): one dataset per tensor under model_weights/, written a
    slab at a time. None when h5py is not installed."""
    spec: dict[str, object] = {"kind": "h5", "target_bytes": target_bytes, "hidden": hidden}
    if is_cached(path, spec):
        return path
    try:
        import h5py
    except ImportError:
        print("note: h5py is not installed; model.h5 is skipped", file=sys.stderr)
        return None
    import numpy as np

    rng = np.random.default_rng(0)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        group = f.create_group("model_weights")
        for name, shape in transformer_shapes(target_bytes, hidden):
            ds = group.create_dataset(name.replace(".", "/"), shape=shape, dtype="<f4")
            rows = max(1, DATA_CHUNK // (4 * _numel(shape[1:])))
            for start in range(0, shape[0], rows):
                stop = min(shape[0], start + rows)
                ds[start:stop] = rng.standard_normal((stop - start, *shape[1:]), dtype=np.float32) * 0.02
    os.replace(tmp, path)
    _record(path, spec)
    return path


TREE_KINDS = (
    ("pkl", 5),
    ("pt", 3),
    ("npy", 3),
    ("safetensors", 3),
    ("onnx", 1),
    ("gguf", 1),
    ("h5", 2),
    ("keras", 2),
)
"""File kinds of the tree and their shares (of 20): mostly pickles and checkpoints, as on a model hub."""
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def _tree_kind(index: int) -> str:
    slot = index % sum(share for _, share in TREE_KINDS)
    for kind, share in TREE_KINDS:
        if slot < share:
            return kind
        slot -= share
    raise AssertionError("unreachable")


def _tree_file(directory: Path, index: int) -> Path:
    """One small benign model file, different in content from every other (identical files would be
    scanned once), built with the test suite's sample builders where they take the variation."""
    import numpy as np
    from tests.samples import hdf5_samples, keras_samples, numpy_samples, onnx_samples, safetensors_samples

    kind, stem = _tree_kind(index), f"model_{index:04d}"
    weights = np.arange(64, dtype=np.float32) * np.float32(0.001) + np.float32(index)
    if kind == "pkl":
        state = {"step": index, "lr": 0.001 * (index % 10 + 1), "weights": weights[:8].tolist()}
        return numpy_samples.write(directory, f"{stem}.pkl", pickle.dumps(state, protocol=4))
    if kind == "pt":
        import torch

        path = directory / f"{stem}.pt"
        torch.save({"linear.weight": torch.from_numpy(weights.reshape(8, 8)).clone()}, path)
        return path
    if kind == "npy":
        npy_header = "{'descr': '<f4', 'fortran_order': False, 'shape': (8, 8), }"
        return numpy_samples.write(
            directory, f"{stem}.npy", numpy_samples.npy_bytes(npy_header, weights.tobytes())
        )
    if kind == "safetensors":
        header: dict[str, object] = {"w": {"dtype": "F32", "shape": [8, 8], "data_offsets": [0, 256]}}
        data = safetensors_samples.build(header, weights.tobytes())
        return safetensors_samples.write(directory, f"{stem}.safetensors", data)
    if kind == "onnx":
        model = onnx_samples.benign_model()
        model.graph.name = stem
        return onnx_samples.save(model, directory / f"{stem}.onnx")
    if kind == "gguf":
        return _tree_gguf(directory / f"{stem}.gguf", weights)
    config = keras_samples.model_config(keras_samples.dense(units=index % 7 + 1))
    config["config"]["name"] = stem
    if kind == "h5":
        return hdf5_samples.legacy_keras(directory, config, name=f"{stem}.h5")
    return _tree_keras(directory / f"{stem}.keras", config, weights)


def _tree_gguf(path: Path, weights: object) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(path.stem)
    writer.add_context_length(128)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", weights.reshape(4, 16))  # type: ignore[attr-defined]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _tree_keras(path: Path, config: dict[str, object], weights: object) -> Path:
    """A Keras v3 archive: metadata and config as the sample builder writes them, real HDF5 weights."""
    import zipfile

    import h5py
    from tests.samples import keras_samples

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=weights)
    members = {
        "metadata.json": json.dumps(keras_samples.METADATA).encode(),
        "config.json": json.dumps(config).encode(),
        "model.weights.h5": buffer.getvalue(),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data)
    return path


def make_tree(directory: Path, count: int = TREE_FILES, per_dir: int = 100) -> Path:
    """`count` small model files in subdirectories of `per_dir`, deterministic, cached by a spec."""
    spec: dict[str, object] = {
        "kind": "tree",
        "count": count,
        "per_dir": per_dir,
        "kinds": [f"{kind}:{share}" for kind, share in TREE_KINDS],
    }
    marker = directory.with_name(directory.name + ".index")  # outside the tree: it is not a model file
    if is_cached(marker, spec) and directory.is_dir():
        return directory
    sys.path.insert(0, str(HERE.parent))  # the sample builders of tests/samples
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if directory.exists():
        shutil.rmtree(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    names = []
    for index in range(count):
        sub = tmp / f"part_{index // per_dir:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        names.append(str(_tree_file(sub, index).relative_to(tmp)))
    os.replace(tmp, directory)
    marker.write_text("\n".join(names) + "\n")
    _record(marker, spec)
    return directory


def tree_file_count(directory: Path) -> int:
    return sum(1 for p in directory.rglob("*") if p.is_file())


def generate_all(workdir: Path, target_bytes: int, names: Sequence[str] = ALL_FILES) -> dict[str, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    makers = {
        TORCH_FILE: lambda: make_torch_checkpoint(workdir / TORCH_FILE, target_bytes),
        NPY_FILE: lambda: make_npy(workdir / NPY_FILE, target_bytes),
        TINY_FILE: lambda: make_tiny_pickle(workdir / TINY_FILE),
        SAFETENSORS_FILE: lambda: make_safetensors(workdir / SAFETENSORS_FILE, target_bytes),
        GGUF_FILE: lambda: make_gguf(workdir / GGUF_FILE, target_bytes),
        ONNX_DIR: lambda: make_onnx_external(workdir / ONNX_DIR, target_bytes),
        H5_FILE: lambda: make_h5(workdir / H5_FILE, target_bytes),
        TREE_DIR: lambda: make_tree(workdir / TREE_DIR),
    }
    made = {name: makers[name]() for name in names}
    return {name: path for name, path in made.items() if path is not None}


def generate_in_child(workdir: Path, target_bytes: int, names: Sequence[str] = ALL_FILES) -> None:
    """Generate in a separate interpreter: the 2 GiB of tensors must not inflate this process, whose
    size would otherwise leak into children's peak RSS (see `measure`)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--generate-only",
        "--workdir",
        str(workdir),
        "--size-gib",
        repr(target_bytes / GIB),
        "--files",
        *names,
    ]
    subprocess.run(cmd, check=True)


# --------------------------------------------------------------------------------------------------
# Measurement.

TIME_BIN = "/usr/bin/time"


def rss_method() -> str:
    """`time` when GNU time is installed (it forks the command from a ~2 MB process, so even tiny
    commands are measured exactly); otherwise `wait4` (the child's own ru_maxrss from os.wait4)."""
    return "time" if os.access(TIME_BIN, os.X_OK) else "wait4"


SNAPSHOT_SRC: Path | None = None  # set by --snapshot: modelshield is imported from here


def child_env(workdir: Path) -> dict[str, str]:
    """The environment of measured commands: bytecode caching on (a user's install has .pyc files;
    PYTHONDONTWRITEBYTECODE would make every run recompile the package), cached under the workdir
    so the source tree is left alone. The warm-up run writes the cache."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env["MODELSHIELD_CACHE_DIR"] = str(workdir / "hash-cache")  # never the user's own hash cache
    if SNAPSHOT_SRC is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SNAPSHOT_SRC), env.get("PYTHONPATH")]))
    return env


def make_snapshot(workdir: Path) -> tuple[Path, str]:
    """`src/` of the committed HEAD, exported with `git archive`: what is measured is a commit, not a
    work tree that others may be editing while the benchmark runs."""
    head = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    target = workdir / f"snapshot-{head}"
    if not (target / "src" / "modelshield" / "__init__.py").exists():
        archive = subprocess.run(
            ["git", "-C", str(HERE.parent), "archive", "--format=tar", head, "src"],
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, filter="data")
            else:  # pragma: no cover - Python without extraction filters; the archive is our own
                tar.extractall(target)
    return target / "src", head


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_kb: int
    returncode: int


def run_once(
    argv: Sequence[str], method: str, stdout_path: str | None = None, env: dict[str, str] | None = None
) -> Run:
    """Run `argv` once; wall time from just before spawn to reaping; peak RSS of the command itself."""
    out = open(stdout_path, "wb") if stdout_path else open(os.devnull, "wb")  # noqa: SIM115
    try:
        if method == "time":
            with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
                full = [TIME_BIN, "-f", "%M", "-o", rss_file.name, *argv]
                t0 = time.perf_counter()
                proc = subprocess.Popen(full, stdout=out, stderr=subprocess.DEVNULL, env=env)
                code = proc.wait()
                elapsed = time.perf_counter() - t0
                text = rss_file.read().strip().splitlines()
            # GNU time writes "Command exited with non-zero status N" before the number.
            rss_kb = int(text[-1]) if text else -1
            return Run(elapsed, rss_kb, code)
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        return Run(elapsed, int(usage.ru_maxrss), proc.returncode)  # kB on Linux
    finally:
        out.close()


@dataclass
class Measurement:
    label: str
    file: str
    size: int
    runs: list[Run] = field(default_factory=list)
    note: str = ""
    load_before: float = 0.0
    load_after: float = 0.0
    reported_seconds: list[float] = field(default_factory=list)
    """The `duration_seconds` modelshield's JSON report gives for the file, per measured run."""
    files: int = 1

    @property
    def median_seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def median_reported_seconds(self) -> float | None:
        return statistics.median(self.reported_seconds) if self.reported_seconds else None

    @property
    def files_per_second(self) -> float:
        return self.files / self.median_seconds

    @property
    def peak_rss_mb(self) -> float:
        return max(r.rss_kb for r in self.runs) / 1024

    @property
    def valid(self) -> bool:
        """A modelshield row counts only if it wrote a report and exited 0 (the generated files are
        clean): a scanner that crashes fast must not pass as a fast scanner."""
        return "verdict clean" in self.note and self.exit_codes == "0"

    @property
    def exit_codes(self) -> str:
        return ",".join(sorted({str(r.returncode) for r in self.runs}))


def modelshield_argv() -> list[str]:
    script = Path(sys.executable).with_name("modelshield")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "modelshield"]


def peer_venv(workdir: Path, peer: str) -> Path:
    return workdir / "peers" / peer


def peer_requirements(text: str) -> dict[str, list[str]]:
    """The requirement lines of each `# venv: NAME` section of requirements-peers.txt."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# venv:"):
            current = sections.setdefault(stripped.removeprefix("# venv:").strip(), [])
        elif stripped and not stripped.startswith("#") and current is not None:
            current.append(stripped)
    return sections


@dataclass(frozen=True)
class Command:
    label: str
    argv_prefix: tuple[str, ...]
    argv_suffix: tuple[str, ...] = ()
    path_flag: tuple[str, ...] = ()
    is_modelshield: bool = False
    takes_directories: bool = True
    report_duration: bool = False
    """Read `duration_seconds` of the file from each measured run's JSON report."""
    scope: str = "files"
    """`files`: measured on the large files; `tree`: on the tree; `both`."""

    def argv(self, path: Path) -> list[str]:
        return [*self.argv_prefix, *self.path_flag, str(path), *self.argv_suffix]


MS_NOHASH = "modelshield --no-hash"
MS_DEEP = "modelshield --no-hash --deep"
MS_HASH = "modelshield (hash)"
MS_RESCAN = "modelshield re-scan (caches)"
SHA256SUM = "sha256sum"
CAT = "cat > /dev/null"
OPENSSL = "openssl dgst -sha256"


def ms_jobs_supported(workdir: Path) -> bool:
    """Whether the measured modelshield has `--jobs` (the parallel scan of issue #5)."""
    out = subprocess.run(
        [*modelshield_argv(), "scan", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env=child_env(workdir),
    )
    return "--jobs" in out.stdout


MS_TREE_DEFAULT = "modelshield (default jobs)"


def ms_tree_label(jobs: int) -> str:
    return f"modelshield --jobs {jobs}"


PEERS = ("picklescan", "modelscan", "modelaudit")


def peer_commands(workdir: Path, peers: Sequence[str] = PEERS) -> list[Command]:
    """Each peer's CLI for one path (file or directory); none of them needs the network for a local path
    (modelaudit's telemetry is switched off in `peer_env`)."""

    def script(peer: str) -> str:
        return str(peer_venv(workdir, peer) / "bin" / peer)

    argv = {
        "picklescan": ((script("picklescan"),), ("--path",), ()),
        "modelscan": ((script("modelscan"),), ("-p",), ()),
        "modelaudit": ((script("modelaudit"), "scan"), (), ("--format", "json", "--no-cache")),
    }
    return [
        Command(name, prefix, suffix, path_flag=flag, scope="both")
        for name, (prefix, flag, suffix) in argv.items()
        if name in peers and Path(prefix[0]).exists()
    ]


def build_commands(
    workdir: Path, include_peers: bool, only_modelshield: bool = False, peers: Sequence[str] = PEERS
) -> list[Command]:
    ms = tuple(modelshield_argv())
    commands = [
        Command(MS_NOHASH, (*ms, "scan"), ("--no-hash", "--format", "json"), is_modelshield=True),
        # --no-cache: every run hashes the file (the cache would answer after the warm-up run)
        Command(MS_HASH, (*ms, "scan"), ("--no-cache", "--format", "json"), is_modelshield=True),
    ]
    if ms_jobs_supported(workdir):
        commands.append(
            Command(MS_RESCAN, (*ms, "scan"), ("--format", "json"), is_modelshield=True, report_duration=True)
        )
        for jobs in (2, 1):
            suffix = ("--jobs", str(jobs), "--no-cache", "--format", "json")
            commands.append(
                Command(ms_tree_label(jobs), (*ms, "scan"), suffix, is_modelshield=True, scope="tree")
            )
        # No --jobs: the default, the CPU count as a ceiling (this process scans alongside N-1 workers)
        default = ("--no-cache", "--format", "json")
        commands.append(Command(MS_TREE_DEFAULT, (*ms, "scan"), default, is_modelshield=True, scope="tree"))
    else:
        only_one = ("--format", "json")
        commands.append(Command(ms_tree_label(1), (*ms, "scan"), only_one, is_modelshield=True, scope="tree"))
    if only_modelshield:
        return commands
    commands += [
        Command(SHA256SUM, ("sha256sum",), takes_directories=False),
        Command(CAT, ("cat",), takes_directories=False),
    ]
    if shutil.which("openssl"):
        # context only: coreutils' sha256sum may lack the SHA extensions that OpenSSL (and so hashlib) use
        commands.append(Command(OPENSSL, ("openssl", "dgst", "-sha256"), takes_directories=False))
    if include_peers:
        commands += peer_commands(workdir, peers)
    return commands


def applies(command: Command, path: Path) -> bool:
    if path.name == TREE_DIR:
        return command.scope in ("tree", "both")
    return command.scope in ("files", "both") and (command.takes_directories or not path.is_dir())


def _verdict_note(stdout_path: str) -> str:
    try:
        report = json.loads(Path(stdout_path).read_text())
        note = f"verdict {report['verdict']}"
        if not report.get("fully_scanned", True):
            note += ", NOT fully scanned"
        return note
    except (OSError, ValueError, KeyError, TypeError):
        return "no JSON report"


def _path_size(path: Path) -> int:
    """Bytes of a file, or of every file in a directory (ONNX with its external data)."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def evict_from_page_cache(path: Path) -> None:
    """Drop this one file's pages from the page cache (POSIX_FADV_DONTNEED; nothing else is touched)."""
    if path.is_dir():
        for member in sorted(p for p in path.rglob("*") if p.is_file()):
            evict_from_page_cache(member)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def peer_env(workdir: Path) -> dict[str, str]:
    """The measured commands' environment, plus what keeps the peers off the network: modelaudit sends
    usage telemetry unless told not to (its documented opt-outs)."""
    env = child_env(workdir)
    env.update(PROMPTFOO_DISABLE_TELEMETRY="1", NO_ANALYTICS="1")
    env.update(HF_HUB_OFFLINE="1", NO_PROXY="*")
    return env


def _reported_duration(stdout_path: str) -> float | None:
    try:
        return float(json.loads(Path(stdout_path).read_text())["files"][0]["duration_seconds"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _reported_from_cache(stdout_path: str) -> bool:
    """Whether every file of the JSON report came from the result cache."""
    try:
        files = json.loads(Path(stdout_path).read_text())["files"]
        return bool(files) and all(file.get("from_cache") is True for file in files)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def measure(
    command: Command, path: Path, runs: int, method: str, workdir: Path, cold: bool = False
) -> Measurement:
    """One warm-up run (fills the page cache and any lazy caches; not counted), then `runs` runs.
    With `cold`, the file is evicted from the page cache before each measured run."""
    m = Measurement(command.label, path.name, _path_size(path))
    if path.is_dir():
        m.files = tree_file_count(path)
    argv = command.argv(path)
    env = child_env(workdir) if command.is_modelshield else peer_env(workdir)
    with tempfile.TemporaryDirectory() as tmp:
        stdout_path = os.path.join(tmp, "stdout")
        run_once(argv, method, stdout_path, env)
        if command.is_modelshield:
            m.note = _verdict_note(stdout_path)
        else:  # kept for reading what the peer said about the file (what it scanned, what it skipped)
            outputs = workdir / "peer-output"
            outputs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(stdout_path, outputs / f"{command.label.split()[0]}-{path.name}.txt")
        m.load_before = os.getloadavg()[0]
        cached_runs = 0
        for _ in range(runs):
            if cold:
                evict_from_page_cache(path)
            m.runs.append(run_once(argv, method, stdout_path if command.report_duration else None, env))
            reported = _reported_duration(stdout_path) if command.report_duration else None
            if reported is not None:
                m.reported_seconds.append(reported)
                cached_runs += _reported_from_cache(stdout_path)
        m.load_after = os.getloadavg()[0]
        if command.report_duration:
            m.note += f"; result from cache in {cached_runs} of {runs} runs"
    if path.is_dir() and path.name == TREE_DIR:
        m.note = f"{m.files_per_second:.0f} files/s" + (f"; {m.note}" if m.note else "")
    if m.median_reported_seconds is not None:
        m.note += f"; report's duration_seconds {m.median_reported_seconds:.4f} s"
    return m


# --------------------------------------------------------------------------------------------------
# Report.


@dataclass(frozen=True)
class Verdict:
    target: str
    file: str
    value: str
    passed: bool


def evaluate(measurements: list[Measurement]) -> list[Verdict]:
    verdicts = _evaluate(measurements)
    invalid = {m.file for m in measurements if m.label.startswith("modelshield") and not m.valid}
    return [
        Verdict(v.target, v.file, f"{v.value} (invalid run: no clean report or exit ≠ 0)", False)
        if v.file in invalid
        else v
        for v in verdicts
    ]


def _evaluate(measurements: list[Measurement]) -> list[Verdict]:
    by_key = {(m.label, m.file): m for m in measurements}
    verdicts: list[Verdict] = []
    for name in (TORCH_FILE, NPY_FILE, *ISSUE3_FILES):
        nohash = by_key.get((MS_NOHASH, name))
        if nohash is not None:
            s, mb = nohash.median_seconds, nohash.peak_rss_mb
            verdicts.append(
                Verdict(
                    f"--no-hash ≤ {TARGET_NOHASH_SECONDS} s", name, f"{s:.3f} s", s <= TARGET_NOHASH_SECONDS
                )
            )
            verdicts.append(
                Verdict(
                    f"--no-hash ≤ {TARGET_NOHASH_RSS_MB:.0f} MB peak RSS",
                    name,
                    f"{mb:.1f} MB",
                    mb <= TARGET_NOHASH_RSS_MB,
                )
            )
        hashed, base = by_key.get((MS_HASH, name)), by_key.get((SHA256SUM, name))
        if hashed is not None and base is not None:
            ratio = hashed.median_seconds / base.median_seconds
            verdicts.append(
                Verdict(
                    f"hashing ≤ {TARGET_HASH_RATIO}× sha256sum",
                    name,
                    f"{ratio:.2f}×",
                    ratio <= TARGET_HASH_RATIO,
                )
            )
        verdicts += _rescan_verdicts(by_key.get((MS_RESCAN, name)), name)
    verdicts += _tree_verdicts(by_key)
    tiny = by_key.get((MS_NOHASH, TINY_FILE))
    if tiny is not None:
        s = tiny.median_seconds
        verdicts.append(
            Verdict(
                f"start-up ≤ {TARGET_STARTUP_SECONDS} s", TINY_FILE, f"{s:.3f} s", s <= TARGET_STARTUP_SECONDS
            )
        )
    return verdicts


def _rescan_verdicts(rescan: Measurement | None, name: str) -> list[Verdict]:
    """The re-scan of an unchanged file, as the user waits for it (CLI wall time) and as the report
    times the file itself (`duration_seconds`, without interpreter start-up and imports)."""
    if rescan is None:
        return []
    target = f"re-scan ≤ {TARGET_RESCAN_SECONDS} s"
    wall = rescan.median_seconds
    verdicts = [Verdict(f"{target} (CLI wall)", name, f"{wall:.3f} s", wall <= TARGET_RESCAN_SECONDS)]
    reported = rescan.median_reported_seconds
    if reported is not None:
        verdicts.append(
            Verdict(
                f"{target} (report's duration_seconds)",
                name,
                f"{reported:.4f} s",
                reported <= TARGET_RESCAN_SECONDS,
            )
        )
    return verdicts


def _tree_verdicts(by_key: dict[tuple[str, str], Measurement]) -> list[Verdict]:
    """Files per second on the tree against picklescan, which reads only the pickle-like files of the
    tree: with two jobs, and with the default job count (the CPU count, as a ceiling); one job when
    --jobs is not there yet."""
    peer = by_key.get(("picklescan", TREE_DIR))
    ours = [by_key.get((label, TREE_DIR)) for label in (ms_tree_label(2), MS_TREE_DEFAULT)]
    measured = [m for m in ours if m is not None]
    if not measured and (one := by_key.get((ms_tree_label(1), TREE_DIR))) is not None:
        measured = [one]
    if peer is None:
        return []
    verdicts = []
    for mine in measured:
        ratio = mine.files_per_second / peer.files_per_second
        rates = f"{mine.files_per_second:.0f} vs {peer.files_per_second:.0f} files/s"
        value = f"{ratio:.2f}× ({mine.label}: {rates})"
        target = f"tree files/s ≥ {TARGET_TREE_RATIO}× picklescan"
        verdicts.append(Verdict(target, TREE_DIR, value, ratio >= TARGET_TREE_RATIO))
    return verdicts


def _size_text(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB // 4 else f"{n / MIB:.1f} MiB" if n >= MIB else f"{n} B"


def peer_versions(workdir: Path) -> dict[str, str]:
    versions = {}
    for peer in PEERS:
        py = peer_venv(workdir, peer) / "bin" / "python"
        if py.exists():
            code = f"import importlib.metadata as m; print(m.version({peer!r}))"
            out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, check=False)
            versions[peer] = out.stdout.strip() or "unknown"
    return versions


def machine_text() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem_text = f"{int(mem) / 1024**2:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        mem_text = "RAM unknown"
    return f"{os.cpu_count()} cores (nproc), {model}, {mem_text}, {platform.system()} {platform.release()}"


def render(
    measurements: list[Measurement],
    verdicts: list[Verdict],
    runs: int,
    method: str,
    workdir: Path,
    cold: bool = False,
) -> str:
    base = {m.file: m.median_seconds for m in measurements if m.label == SHA256SUM}
    lines = [
        f"# modelshield benchmark — {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        "",
        f"- machine: {machine_text()}",
        f"- python: {platform.python_version()}; {_modelshield_version(workdir)}, {_commit()}",
        f"- peers: {', '.join(f'{k} {v}' for k, v in peer_versions(workdir).items()) or 'not installed'}",
        f"- method: {_cache_text(cold)}, median of {runs} "
        f"runs, peak RSS = max over runs via {'GNU time %M' if method == 'time' else 'os.wait4 ru_maxrss'}",
        "",
        "| command | file | size | median s | peak RSS MB | × sha256sum | exit | load 1m | note |",
        "|---|---|---|---:|---:|---:|---|---|---|",
    ]
    for m in measurements:
        ratio = f"{m.median_seconds / base[m.file]:.2f}" if base.get(m.file) else "—"
        lines.append(
            f"| {m.label} | {m.file} | {_size_text(m.size)} | {m.median_seconds:.3f} | {m.peak_rss_mb:.1f} "
            f"| {ratio} | {m.exit_codes} | {m.load_before:.2f}→{m.load_after:.2f} | {m.note} |"
        )
    lines += ["", "| target | file | measured | result |", "|---|---|---|---|"]
    lines += [f"| {v.target} | {v.file} | {v.value} | {'PASS' if v.passed else 'FAIL'} |" for v in verdicts]
    return "\n".join(lines) + "\n"


def _cache_text(cold: bool) -> str:
    if cold:
        return "COLD page cache (file evicted with POSIX_FADV_DONTNEED before each measured run)"
    return "warm page cache (one unmeasured warm-up run per command and file)"


def _commit() -> str:
    """The checked-out commit, with a mark when the work tree differs from it."""
    if SNAPSHOT_SRC is not None:
        return f"snapshot of commit {SNAPSHOT_SRC.parent.name.removeprefix('snapshot-')} (git archive)"
    try:
        head = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no", "--", "../src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"work tree at commit {head}{' + uncommitted changes in src/' if dirty else ''}"


def _modelshield_version(workdir: Path) -> str:
    out = subprocess.run(
        [*modelshield_argv(), "--version"],
        capture_output=True,
        text=True,
        check=False,
        env=child_env(workdir),
    )
    return out.stdout.strip() or "unknown"


# --------------------------------------------------------------------------------------------------
# Peers.


def setup_peers(workdir: Path) -> None:
    """One venv per peer scanner, so their dependencies never touch the project's or each other's."""
    for peer, requirements in peer_requirements(PEERS_REQUIREMENTS.read_text()).items():
        venv = peer_venv(workdir, peer)
        venv.parent.mkdir(parents=True, exist_ok=True)
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
        subprocess.run([*pip, *requirements], check=True)
    print("installed:", peer_versions(workdir))


# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="measured runs per command and file (default 5)")
    parser.add_argument("--size-gib", type=float, default=2.0, help="size of each large file (default 2)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--setup-peers", action="store_true", help="create the peers venv and exit")
    parser.add_argument("--no-peers", action="store_true", help="do not measure picklescan/modelscan")
    parser.add_argument("--only-modelshield", action="store_true", help="measure modelshield only")
    parser.add_argument(
        "--peers",
        nargs="+",
        choices=list(PEERS),
        default=list(PEERS),
        help="the peers to measure (default all; modelaudit alone takes most of a full run)",
    )
    parser.add_argument(
        "--files",
        nargs="+",
        choices=list(ALL_FILES),
        default=list(ALL_FILES),
    )
    parser.add_argument(
        "--deep-runs",
        type=int,
        default=None,
        help=f"measured runs of `{MS_DEEP}` on {SAFETENSORS_FILE} (default 1; 0 to skip)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="evict the file from the page cache before each measured run (results in results-cold.md)",
    )
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="measure src/ of the committed HEAD (git archive into the workdir), not the work tree",
    )
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    target_bytes = int(args.size_gib * GIB)

    if args.setup_peers:
        setup_peers(args.workdir)
        return 0
    if args.generate_only:
        generate_all(args.workdir, target_bytes, args.files)
        return 0

    free = shutil.disk_usage(args.workdir.parent if not args.workdir.exists() else args.workdir).free
    if free < 2.5 * target_bytes and not (args.workdir / NPY_FILE).exists():
        print(
            f"warning: only {free / GIB:.1f} GiB free for {2 * target_bytes / GIB:.1f} GiB of files",
            file=sys.stderr,
        )
    print(f"generating (cached) files in {args.workdir} ...", file=sys.stderr)
    generate_in_child(args.workdir, target_bytes, args.files)
    files = [args.workdir / name for name in args.files if (args.workdir / name).exists()]

    if args.snapshot:
        global SNAPSHOT_SRC
        SNAPSHOT_SRC, head = make_snapshot(args.workdir)
        print(f"measuring modelshield from a snapshot of {head}: {SNAPSHOT_SRC}", file=sys.stderr)
    method = rss_method()
    commands = build_commands(
        args.workdir,
        include_peers=not args.no_peers,
        only_modelshield=args.only_modelshield,
        peers=args.peers,
    )
    measurements = []
    deep_runs = 1 if args.deep_runs is None else args.deep_runs
    for path in files:
        for command in commands:
            if not applies(command, path):
                continue  # sha256sum and cat take files; the tree has its own modelshield rows
            print(f"measuring {command.label} on {path.name} ...", file=sys.stderr)
            measurements.append(measure(command, path, args.runs, method, args.workdir, args.cold))
        if path.name == SAFETENSORS_FILE and deep_runs > 0:
            deep = Command(
                MS_DEEP,
                (*modelshield_argv(), "scan"),
                ("--no-hash", "--deep", "--format", "json"),
                is_modelshield=True,
            )
            print(f"measuring {deep.label} on {path.name} ...", file=sys.stderr)
            measurements.append(measure(deep, path, deep_runs, method, args.workdir, args.cold))
    report = render(measurements, evaluate(measurements), args.runs, method, args.workdir, args.cold)
    print(report)
    (args.workdir / ("results-cold.md" if args.cold else "results.md")).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
