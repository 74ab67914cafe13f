"""Suite-wide settings: no test reads or writes the caches of the user running the suite."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("modelshield-cache")
    monkeypatch.setenv("MODELSHIELD_CACHE_DIR", str(cache))
    return cache
