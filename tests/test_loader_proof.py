"""Proof that the corpus is real: each live sample runs its payload in the real loader, and is detected.

The loader runs in a child process (never in the test process) with a timeout and, for plain pickle
loads, an address-space limit, so a sample that misbehaves cannot hurt the test run. The payload only
creates a marker file in the test's temporary directory; the test passes when that file appears and
the scan of the same bytes matches the expectations of tests/analysis/test_pickle_bypasses.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.analysis.test_pickle_bypasses import EXPECTED, assert_detected
from tests.samples import pickles as pk

# `os` is imported at the top on purpose: indirect_main_traversal reaches __main__.os.system, which
# resolves in any loading script that imported os (most do).
LOADER = r"""
import os
import pickle
import sys

path, mode, setup = sys.argv[1:4]
exec(setup)
with open(path, "rb") as f:
    if mode == "torch":
        import torch
        torch.load(f, weights_only=False)
    elif mode == "pickle-all":
        while True:
            try:
                pickle.load(f)
            except EOFError:
                break
    else:
        pickle.load(f)
"""

LOAD_TIMEOUT = 120
ADDRESS_SPACE_LIMIT = 4 * 1024**3
MARKER_WAIT = 5.0  # Popen/os.popen/posix_spawn payloads finish after the loader returns

LIVE = sorted(name for name, sample in pk.SAMPLES.items() if sample.live)


def _limit_address_space() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, ADDRESS_SPACE_LIMIT))


def run_real_loader(sample: pk.PickleSample, path: Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PIP_NO_INPUT": "1"}
    return subprocess.run(
        [sys.executable, "-c", LOADER, str(path), sample.loader, sample.loader_setup],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=LOAD_TIMEOUT,
        preexec_fn=None if sample.loader == "torch" else _limit_address_space,
    )


def _wait_for(marker: Path) -> bool:
    deadline = time.monotonic() + MARKER_WAIT
    while time.monotonic() < deadline:
        if os.path.lexists(marker):
            return True
        time.sleep(0.05)
    return os.path.lexists(marker)


def test_live_set_is_representative() -> None:
    families = {pk.SAMPLES[name].family for name in LIVE}
    assert families == {1, 2, 3, 4, 5}
    assert len(LIVE) >= 10


@pytest.mark.parametrize("name", LIVE)
def test_sample_runs_in_real_loader_and_is_detected(name: str, tmp_path: Path) -> None:
    sample = pk.SAMPLES[name]
    work = tmp_path / "load"
    work.mkdir()
    marker = work / "marker"
    data = sample.build(str(marker))
    assert data == sample.build(str(marker)), "builders must be deterministic"
    path = work / f"{name}{EXPECTED[name].suffix}"
    path.write_bytes(data)

    proc = run_real_loader(sample, path, work)
    assert _wait_for(marker), (
        f"payload of {name} did not run under {sample.loader}: rc={proc.returncode}\n"
        f"{proc.stderr.decode(errors='replace')[-2000:]}"
    )

    scan_dir = tmp_path / "scan"
    scan_dir.mkdir()
    assert_detected(name, scan_dir)
