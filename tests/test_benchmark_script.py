"""Smoke test of benchmarks/run.py: its generators at a tiny size and its measurement of modelshield.

It installs nothing and never needs the peer scanners; the real benchmark is run by hand."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("modelshield_benchmark_run", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_generators_write_loadable_files_and_cache_them(bench, tmp_path):
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    size = 2 * 1024 * 1024

    pt = bench.make_torch_checkpoint(tmp_path / "c.pt", size, hidden=64)
    state = torch.load(pt, weights_only=True)
    assert state["model.layers.0.mlp.up_proj.weight"].shape == (176, 64)
    assert all(t.dtype == torch.float32 for t in state.values())
    assert 0.5 * size < sum(t.numel() * 4 for t in state.values()) < 1.5 * size

    npy = bench.make_npy(tmp_path / "w.npy", size, columns=64)
    arr = np.load(npy, mmap_mode="r")
    assert arr.dtype == np.float32 and arr.shape == (size // 256, 64)

    tiny = bench.make_tiny_pickle(tmp_path / "t.pkl")
    assert set(pickle.loads(tiny.read_bytes())) == {"lr", "momentum", "weight_decay", "eps"}

    mtime = pt.stat().st_mtime_ns
    bench.make_torch_checkpoint(pt, size, hidden=64)
    assert pt.stat().st_mtime_ns == mtime  # cached: same spec, same size
    assert not bench.is_cached(pt, {"kind": "torch", "target_bytes": size + 1, "hidden": 64})


def test_measures_modelshield_and_reports_targets(bench, tmp_path):
    tiny = bench.make_tiny_pickle(tmp_path / bench.TINY_FILE)
    commands = bench.build_commands(tmp_path, include_peers=False, only_modelshield=True)
    assert [c.label for c in commands] == [bench.MS_NOHASH, bench.MS_HASH]

    measurements = [bench.measure(c, tiny, 1, bench.rss_method(), tmp_path) for c in commands]
    for m in measurements:
        assert m.exit_codes == "0"
        assert m.note == "verdict clean"
        assert m.median_seconds > 0 and m.peak_rss_mb > 1

    verdicts = bench.evaluate(measurements)
    assert [(v.file, v.target.split()[0]) for v in verdicts] == [(bench.TINY_FILE, "start-up")]
    report = bench.render(measurements, verdicts, 1, bench.rss_method(), tmp_path)
    assert "| modelshield --no-hash | tiny.pkl |" in report
    assert "start-up" in report


def test_a_failed_scan_never_passes(bench, tmp_path):
    broken = bench.Measurement(
        bench.MS_NOHASH, bench.TINY_FILE, 89, [bench.Run(0.01, 10_000, 1)], "no JSON report"
    )
    (verdict,) = bench.evaluate([broken])
    assert not verdict.passed and "invalid" in verdict.value


def test_cold_mode_evicts_and_still_measures(bench, tmp_path):
    tiny = bench.make_tiny_pickle(tmp_path / bench.TINY_FILE)
    (command,) = bench.build_commands(tmp_path, include_peers=False, only_modelshield=True)[:1]
    m = bench.measure(command, tiny, 1, bench.rss_method(), tmp_path, cold=True)
    assert m.exit_codes == "0"
    assert "COLD" in bench.render([m], [], 1, bench.rss_method(), tmp_path, cold=True)


def test_wait4_fallback_measures_the_child_itself(bench):
    touch_64mb = "b = bytearray(64 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    run = bench.run_once([sys.executable, "-c", touch_64mb], "wait4")
    assert run.returncode == 0
    assert run.rss_kb > 64 * 1024
