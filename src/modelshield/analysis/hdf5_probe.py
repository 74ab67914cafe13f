"""Runs in an isolated child process only: walks an HDF5 file with h5py (bounded, iteratively, never
following links to other files or reading datasets) and prints what it found as one JSON object.

Usage: python -I -m modelshield.analysis.hdf5_probe PATH [--datasets]

With --datasets (the scan's --deep) the report also lists where each float dataset's bytes are in the
file (contiguous offset, or each chunk's offset and stored size, and the filters): the data itself is
never read here, the scanner reads it.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

MAX_OBJECTS = 200_000
MAX_DEPTH = 64
MAX_ATTRIBUTES = 200_000
MAX_REPORTED = 1_000
"""At most this many entries of each list (links, external files, attributes) are reported."""
MAX_ATTRIBUTE_BYTES = 64 * 1024 * 1024
MAX_KERAS_TEXT = 32 * 1024 * 1024
SAMPLE_CHARS = 200
KERAS_ATTRIBUTES = ("model_config", "training_config", "keras_version", "backend")
MAX_CHUNKS = 200_000
"""Chunk locations listed in all (--datasets); a dataset past this many is listed without them."""
FLOAT_DTYPES = frozenset({"<f4", "<f2", ">f4", ">f2"})

_CODE = re.compile(
    rb"__import__|__builtins__|__reduce__|__globals__|__subclasses__|\bexec\s*\(|\beval\s*\(|"
    rb"\bcompile\s*\(|\bos\.(system|popen|exec\w*|spawn\w*)\b|\bsubprocess\b|\bmarshal\.loads\b|"
    rb"\bpickle\.loads?\b|\bbase64\.b64decode\b|(^|\n)\s*import\s+[A-Za-z_]|"
    rb"(^|\n)\s*from\s+[A-Za-z_][\w.]*\s+import\s|(^|\n)\s*def\s+\w+\s*\(|<script\b"
)
_SIGNATURES = (
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "PE/DOS executable"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "Mach-O executable"),
    (b"#!", "script with an interpreter line"),
    (b"PK\x03\x04", "zip archive"),
)


def code_reasons(data: bytes) -> list[str]:
    """Why bytes look like code, a pickle or an executable (empty when they do not)."""
    reasons = [what for magic, what in _SIGNATURES if data.startswith(magic)]
    if len(data) > 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        reasons.append(f"pickle protocol {data[1]}")
    match = _CODE.search(data)
    if match:
        reasons.append(f"code-like text {match.group(0).strip().decode('latin-1')[:40]!r}")
    return reasons


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _attribute_bytes(value: Any) -> bytes | None:
    """The bytes of a string-like attribute value (a scalar or an array of strings/bytes)."""
    import numpy as np

    if isinstance(value, str):
        return value.encode("utf-8", errors="replace")
    if isinstance(value, bytes):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SUO":
            parts = [_attribute_bytes(item) for item in value.reshape(-1)[:MAX_REPORTED]]
            return b"\n".join(part for part in parts if part is not None)
        if value.dtype.itemsize == 1 or value.dtype.kind == "V":
            return value.tobytes()
    if isinstance(value, np.void):
        return bytes(value.tobytes())
    return None


class Report:
    """The plain-data report and the bounds on building it; shared with the in-process reader
    (`formats/hdf5_structure.py`), which builds the same report for the files it understands."""

    max_reported = MAX_REPORTED

    def __init__(self) -> None:
        self.report: dict[str, Any] = {
            "userblock_size": 0,
            "external_links": [],
            "soft_links": [],
            "external_storage": [],
            "virtual_sources": [],
            "code_attributes": [],
            "keras": {},
            "problems": [],
            "truncated": [],
        }
        self.objects = 0
        self.attributes = 0

    def add(self, key: str, entry: object) -> None:
        entries: list[object] = self.report[key]
        if len(entries) < MAX_REPORTED:
            entries.append(entry)
        elif key not in self.report["truncated"]:
            self.report["truncated"].append(key)

    def count_object(self) -> bool:
        """Count one more object; False (and the report says so) once there are too many."""
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            self.report["truncated"].append(f"more than {MAX_OBJECTS} objects")
            return False
        return True

    def count_attribute(self) -> bool:
        """Count one more attribute; False (and the report says so) once there are too many."""
        self.attributes += 1
        if self.attributes > MAX_ATTRIBUTES:
            if f"more than {MAX_ATTRIBUTES} attributes" not in self.report["truncated"]:
                self.report["truncated"].append(f"more than {MAX_ATTRIBUTES} attributes")
            return False
        return True

    def attribute(self, path: str, name: str, data: bytes, *, root: bool) -> None:
        """Judge one attribute's bytes: Keras' root attributes are kept as text, others checked for code."""
        if root and name in KERAS_ATTRIBUTES:
            if len(data) > MAX_KERAS_TEXT:
                self.add("truncated", f"attribute {name}: larger than {MAX_KERAS_TEXT} bytes")
            else:
                self.report["keras"][name] = _text(data)
            return
        reasons = code_reasons(data[:MAX_ATTRIBUTE_BYTES])
        if reasons:
            self.add(
                "code_attributes",
                {
                    "path": path,
                    "name": str(name)[:200],
                    "size": len(data),
                    "reasons": reasons,
                    "sample": data[:SAMPLE_CHARS].decode("latin-1"),
                },
            )


class Probe(Report):
    """The h5py walk, bounded, feeding the report."""

    def __init__(self, datasets: bool = False) -> None:
        super().__init__()
        self.chunks_left = MAX_CHUNKS
        if datasets:
            self.report["datasets"] = []

    def walk(self, path: str) -> None:
        import h5py  # type: ignore[import-untyped]

        with h5py.File(path, "r") as f:
            self.report["userblock_size"] = int(f.userblock_size)
            self.attributes_of(f, "/", root=True)
            seen: set[int] = set()
            stack: list[tuple[Any, str, int]] = [(f, "/", 0)]
            while stack:
                group, where, depth = stack.pop()
                if depth >= MAX_DEPTH:
                    self.add("truncated", f"depth {MAX_DEPTH} at {where}")
                    continue
                for name in group:
                    if not self.count_object():
                        return
                    child_path = f"{where.rstrip('/')}/{name}"
                    child = self.visit_link(group, name, child_path)
                    if child is None:
                        continue
                    key = hash(child.id)
                    if key in seen:
                        continue
                    seen.add(key)
                    self.attributes_of(child, child_path)
                    if isinstance(child, h5py.Group):
                        stack.append((child, child_path, depth + 1))
                    elif isinstance(child, h5py.Dataset):
                        self.dataset(child, child_path)

    def visit_link(self, group: Any, name: str, path: str) -> Any:
        """The object a hard link names; external and soft links are reported, never followed."""
        import h5py

        try:
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                target = {"path": path, "file": str(link.filename), "target": str(link.path)}
                self.add("external_links", target)
                return None
            if isinstance(link, h5py.SoftLink):
                self.add("soft_links", {"path": path, "target": str(link.path)})
                return None
            if not isinstance(link, h5py.HardLink):
                self.add("problems", f"{path}: link of an unknown kind")
                return None
            return group[name]
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
            self.add("problems", f"{path}: {exc}"[:300])
            return None

    def dataset(self, dataset: Any, path: str) -> None:
        try:
            for file_name, offset, size in dataset.external or ():
                self.add(
                    "external_storage",
                    {"path": path, "file": _name(file_name), "offset": int(offset), "size": int(size)},
                )
            if dataset.is_virtual:
                for source in dataset.virtual_sources():
                    self.add(
                        "virtual_sources",
                        {"path": path, "file": _name(source.file_name), "dataset": _name(source.dset_name)},
                    )
            elif "datasets" in self.report and dataset.dtype.str in FLOAT_DTYPES:
                self.report["datasets"].append(self.storage(dataset, path))  # as many as objects
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
            self.add("problems", f"{path}: {exc}"[:300])

    def storage(self, dataset: Any, path: str) -> dict[str, Any]:
        """Where a float dataset's bytes are: its layout, offset or chunks, and filters (none are read)."""
        import h5py

        plist = dataset.id.get_create_plist()
        layout = plist.get_layout()
        entry: dict[str, Any] = {"path": path, "dtype": dataset.dtype.str, "shape": list(dataset.shape)}
        if dataset.external:
            entry["layout"] = "external"
        elif layout == h5py.h5d.CONTIGUOUS:
            entry.update(layout="contiguous", offset=dataset.id.get_offset())
        elif layout == h5py.h5d.CHUNKED:
            count = dataset.id.get_num_chunks()
            entry.update(
                layout="chunked",
                chunk_shape=list(plist.get_chunk()),
                filters=[plist.get_filter(i)[0] for i in range(plist.get_nfilters())],
            )
            if count <= self.chunks_left:
                self.chunks_left -= count
                infos = (dataset.id.get_chunk_info(i) for i in range(count))
                entry["chunks"] = [
                    [list(info.chunk_offset), info.filter_mask, info.byte_offset, info.size] for info in infos
                ]
        else:
            entry["layout"] = "compact" if layout == h5py.h5d.COMPACT else str(layout)
        return entry

    def attributes_of(self, obj: Any, path: str, *, root: bool = False) -> None:
        import h5py

        try:
            names = list(obj.attrs)
        except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
            self.add("problems", f"{path} attributes: {exc}"[:300])
            return
        for name in names:
            if not self.count_attribute():
                return
            try:
                attribute = obj.attrs.get_id(name)
                kind = attribute.get_type().get_class()
                if kind not in (h5py.h5t.STRING, h5py.h5t.OPAQUE, h5py.h5t.INTEGER, h5py.h5t.VLEN):
                    continue
                if attribute.get_storage_size() > MAX_ATTRIBUTE_BYTES:
                    self.add("truncated", f"{path} attribute {name}: larger than {MAX_ATTRIBUTE_BYTES} bytes")
                    continue
                data = _attribute_bytes(obj.attrs[name])
            except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
                self.add("problems", f"{path} attribute {name}: {exc}"[:300])
                continue
            if data is not None:
                self.attribute(path, str(name), data, root=root)


def _name(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[1:] not in ([], ["--datasets"]):
        print("usage: python -m modelshield.analysis.hdf5_probe PATH [--datasets]", file=sys.stderr)
        return 2
    probe = Probe(datasets=argv[1:] == ["--datasets"])
    try:
        probe.walk(argv[0])
    except ModuleNotFoundError as exc:  # any other import failure (memory, a broken library) is a crash
        probe.report["unavailable"] = str(exc)[:300]
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        probe.report["error"] = f"{type(exc).__name__}: {exc}"[:500]
    json.dump(probe.report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
