"""Folders of models for the inventory tests, built in code from the shared sample builders."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.samples import pickles as pk


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def benign_pickle(path: Path, epoch: int = 3) -> Path:
    """A harmless pickle (a dict of numbers); `epoch` makes different contents."""
    import pickle

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"weights": [0.5, 1.5, 2.5], "epoch": epoch}, protocol=2))
    return path


def malicious_pickle(path: Path, marker: Path) -> Path:
    """A pickle that runs `os.system("touch <marker>")` when loaded (never loaded here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pk.os_system(str(marker)))
    return path


def config(path: Path, text: str = '{"hidden_size": 8}') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
