"""Build PyTorch, TorchScript and TorchServe samples in code: real torch output, then hand-edited variants."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import torch


class MarkerPayload:
    """Unpickling this runs a harmless shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


class TinyNet(torch.nn.Module):
    """A user-defined module: torch.save(model) pickles it by reference to this class."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x).relu()
        for layer in self.layers:
            x = layer(x)
        return x


def _linear() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(4, 2)


def state_dict_pt(directory: Path, name: str = "model.pt") -> Path:
    path = directory / name
    torch.save(_linear().state_dict(), path)
    return path


def mixed_dtypes_pt(directory: Path) -> Path:
    path = directory / "mixed.pt"
    torch.save(
        {
            "f16": torch.ones(3, dtype=torch.float16),
            "i64": torch.arange(5),
            "bool": torch.tensor([True, False]),
            "view": torch.arange(10.0)[2:6],
            "epoch": 3,
        },
        path,
    )
    return path


def whole_model_pt(directory: Path) -> Path:
    path = directory / "whole.pt"
    torch.manual_seed(0)
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU()), path)
    return path


def user_model_pt(directory: Path) -> Path:
    path = directory / "tinynet.pt"
    torch.manual_seed(0)
    torch.save(TinyNet(), path)
    return path


def legacy_pt(directory: Path, name: str = "legacy.pt") -> Path:
    path = directory / name
    torch.save(_linear().state_dict(), path, _use_new_zipfile_serialization=False)
    return path


def scripted_pt(directory: Path) -> Path:
    path = directory / "scripted.pt"
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(TinyNet()), path)
    return path


def traced_pt(directory: Path) -> Path:
    path = directory / "traced.pt"
    torch.manual_seed(0)
    torch.jit.save(torch.jit.trace(TinyNet(), torch.zeros(1, 4)), path, _extra_files={"config.json": "{}"})
    return path


def malicious_zip_pt(directory: Path, marker: Path) -> Path:
    path = directory / "evil.pt"
    torch.save({"weight": torch.ones(2), "payload": MarkerPayload(marker)}, path)
    return path


def malicious_legacy_pt(directory: Path, marker: Path) -> Path:
    path = directory / "evil_legacy.pt"
    torch.save(
        {"weight": torch.ones(2), "payload": MarkerPayload(marker)},
        path,
        _use_new_zipfile_serialization=False,
    )
    return path


def legacy_appended_pt(directory: Path) -> Path:
    path = legacy_pt(directory, "appended_legacy.pt")
    with open(path, "ab") as fh:
        fh.write(b"\x7fELF\x02\x01\x01" + b"\0" * 57)
    return path


def legacy_truncated_pt(directory: Path) -> Path:
    path = legacy_pt(directory, "truncated_legacy.pt")
    data = path.read_bytes()
    path.write_bytes(data[:-6])
    return path


def legacy_tar(directory: Path, marker: Path | None = None) -> Path:
    """The pre-0.4 tar layout, built from the format: storages, tensors, pickle, sys_info members."""
    path = directory / ("evil_legacy.tar" if marker else "legacy.tar")
    main: object = MarkerPayload(marker) if marker else {"epoch": 3, "lr": 0.1}
    members = {
        "sys_info": pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        "storages": pickle.dumps(0, protocol=2) + pickle.dumps([], protocol=2),
        "tensors": pickle.dumps(0, protocol=2),
        "pickle": pickle.dumps(main, protocol=2),
    }
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class _TensorRef:
    """Stands for a tensor in the tar layout's main pickle (persistent id = tensor key)."""

    def __init__(self, key: int) -> None:
        self.key = key


class _TarPickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> str | None:
        return str(obj.key) if isinstance(obj, _TensorRef) else None


def legacy_tar_with_storage(
    directory: Path, marker: Path | None = None, floats: bytes = struct.pack("<3f", 1.0, 2.0, 3.0)
) -> Path:
    """The tar layout with one real float storage (`floats`, little-endian float32); a payload hides in
    the storage-views pickle, which follows raw storage bytes inside the storages member."""
    path = directory / ("evil_storage.tar" if marker else "storage.tar")
    views: object = [MarkerPayload(marker)] if marker else []
    storages = (
        pickle.dumps(1, protocol=2)
        + pickle.dumps(("1", "cpu", torch.FloatStorage), protocol=2)
        + struct.pack("<q", len(floats) // 4)
        + floats
        + pickle.dumps(views, protocol=2)
    )
    tensors = (
        pickle.dumps(1, protocol=2)
        + pickle.dumps((2, "1", torch.FloatTensor), protocol=2)
        + struct.pack("<i", 1)
        + b"\0" * 4
        + struct.pack("<q", len(floats) // 4)
        + struct.pack("<q", 1)
        + struct.pack("<q", 0)
    )
    main = io.BytesIO()
    _TarPickler(main, protocol=2).dump({"weight": _TensorRef(2)})
    members = {
        "sys_info": pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        "storages": storages,
        "tensors": tensors,
        "pickle": main.getvalue(),
    }
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def rewrite_zip(
    source: Path, target: Path, *, drop: tuple[str, ...] = (), add: tuple[tuple[str, bytes], ...] = ()
) -> Path:
    """Copy a zip member by member (stored, like torch), dropping and appending members."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if info.filename not in drop:
                zout.writestr(info, zin.read(info.filename))
        for name, data in add:
            zout.writestr(name, data)
    return target


def extra_members_pt(directory: Path) -> Path:
    source = state_dict_pt(directory)
    return rewrite_zip(
        source,
        directory / "extras.pt",
        add=(
            ("model/helper.py", b"import os\nos.system('id')\n"),
            ("model/tool", b"\x7fELF\x02\x01\x01" + b"\0" * 57),
            ("model/extra.pkl", pickle.dumps({"x": 1}, protocol=2)),
        ),
    )


def upper_case_pickle_pt(directory: Path, marker: Path) -> Path:
    """data.pkl spelled DATA.PKL: torch's reader folds case and still loads it."""
    source = malicious_zip_pt(directory, marker)
    target = directory / "upper.pt"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename.replace("data.pkl", "DATA.PKL"), zin.read(info.filename))
    return target


def missing_storage_pt(directory: Path) -> Path:
    source = state_dict_pt(directory)
    return rewrite_zip(source, directory / "missing.pt", drop=("model/data/1",))


def short_storage_pt(directory: Path) -> Path:
    source = state_dict_pt(directory)
    return rewrite_zip(
        source, directory / "short.pt", drop=("model/data/0",), add=(("model/data/0", b"\0" * 4),)
    )


def no_version_pt(directory: Path) -> Path:
    source = state_dict_pt(directory)
    return rewrite_zip(source, directory / "noversion.pt", drop=("model/version", "model/.data/version"))


def duplicate_pickle_pt(directory: Path, marker: Path) -> Path:
    source = state_dict_pt(directory)
    payload = pickle.dumps(MarkerPayload(marker), protocol=2)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rewrite_zip(source, directory / "dup.pt", add=(("model/data.pkl", payload),))


def edited_torchscript(directory: Path, marker: Path, *, in_setstate: bool = False) -> Path:
    """A real torch.jit.save archive whose code/ is edited by hand to write a file with aten::save."""
    source = scripted_pt(directory)
    target = directory / ("ts_setstate.pt" if in_setstate else "ts_edited.pt")
    code_name = "scripted/code/__torch__/torch/samples/torch_samples.py"
    with zipfile.ZipFile(source) as zin:
        names = zin.namelist()
        code_name = next(n for n in names if n.endswith(".py") and "TinyNet" in zin.read(n).decode())
        text = zin.read(code_name).decode()
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if info.filename == code_name:
                    data = _edit_code(text, marker, in_setstate).encode()
                zout.writestr(info.filename, data)
    return target


def _edit_code(text: str, marker: Path, in_setstate: bool) -> str:
    call = f'    torch.save(torch.zeros([1]), "{marker}")\n'
    if not in_setstate:
        head, tail = text.split("    x: Tensor) -> Tensor:\n", 1)
        return head + "    x: Tensor) -> Tensor:\n" + call + tail
    # TorchScript calls __setstate__ while torch.jit.load unpickles data.pkl
    method = (
        "  def __getstate__(self: __torch__.torch_samples.TinyNet) -> int:\n"
        "    return 0\n"
        "  def __setstate__(self: __torch__.torch_samples.TinyNet,\n"
        "    state: Any) -> NoneType:\n"
        f"    {call.strip()}\n"
        "    return None\n"
    )
    head, tail = text.split("  def forward(", 1)
    return head + method + "  def forward(" + tail


def mar(directory: Path, *, handler: str = "image_classifier", extra: dict[str, bytes] | None = None) -> Path:
    """A TorchServe model archive as torch-model-archiver lays it out."""
    model = state_dict_pt(directory, "weights.pt").read_bytes()
    manifest: dict[str, object] = {
        "createdOn": "01/01/2025 00:00:00",
        "runtime": "python",
        "model": {
            "modelName": "tiny",
            "serializedFile": "weights.pt",
            "handler": handler,
            "modelVersion": "1.0",
        },
        "archiverVersion": "0.12.0",
    }
    files = {"weights.pt": model, **(extra or {})}
    if "requirements.txt" in files:
        manifest["model"]["requirementsFile"] = "requirements.txt"  # type: ignore[index]
    if "model.py" in files:
        manifest["model"]["modelFile"] = "model.py"  # type: ignore[index]
    path = directory / f"tiny_{len(files)}.mar"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in files.items():
            zout.writestr(name, data)
        zout.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest, indent=2))
    return path
