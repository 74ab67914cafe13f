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
    on_files = [c for c in commands if bench.applies(c, tiny)]
    rescan = bench.ms_jobs_supported(tmp_path)  # the hash cache came with --jobs (issue #5)
    assert [c.label for c in on_files] == [bench.MS_NOHASH, bench.MS_HASH] + (
        [bench.MS_RESCAN] if rescan else []
    )

    measurements = [bench.measure(c, tiny, 2, bench.rss_method(), tmp_path) for c in on_files]
    for m in measurements:
        assert m.exit_codes == "0"
        assert m.note.startswith("verdict clean")
        assert m.median_seconds > 0 and m.peak_rss_mb > 1
    if rescan:
        assert len(measurements[-1].reported_seconds) == 2
        assert "report's duration_seconds" in measurements[-1].note

    verdicts = bench.evaluate(measurements)  # the re-scan target is for the large files only
    assert [(v.file, v.target.split()[0]) for v in verdicts] == [(bench.TINY_FILE, "start-up")]
    report = bench.render(measurements, verdicts, 1, bench.rss_method(), tmp_path)
    assert "| modelshield --no-hash | tiny.pkl |" in report
    assert "start-up" in report


def test_tree_target_compares_files_per_second_with_picklescan(bench):
    def timed(label, seconds):
        m = bench.Measurement(
            label, bench.TREE_DIR, 1, [bench.Run(seconds, 1000, 0)], "verdict clean", files=2000
        )
        return m

    ours, peer = timed(bench.ms_tree_label(2), 4.0), timed("picklescan", 10.0)
    (verdict,) = bench.evaluate([ours, peer])
    assert verdict.passed and verdict.value == "2.50× (modelshield --jobs 2: 500 vs 200 files/s)"
    (slow,) = bench.evaluate([timed(bench.ms_tree_label(2), 5.1), peer])
    assert not slow.passed


def test_rescan_target_reports_wall_and_in_process_time(bench):
    m = bench.Measurement(bench.MS_RESCAN, bench.NPY_FILE, 1, [bench.Run(0.12, 1000, 0)], "verdict clean")
    m.reported_seconds = [0.004, 0.002, 0.003]
    verdicts = bench.evaluate([m])
    assert [(v.target, v.value, v.passed) for v in verdicts] == [
        ("re-scan ≤ 0.05 s (CLI wall)", "0.120 s", False),
        ("re-scan ≤ 0.05 s (report's duration_seconds)", "0.0030 s", True),
    ]


def test_tree_is_mixed_distinct_and_scans_clean(bench, tmp_path):
    for module in ("torch", "onnx", "gguf", "h5py"):
        pytest.importorskip(module)
    import hashlib

    from modelshield import scan

    tree = bench.make_tree(tmp_path / "tree", count=20, per_dir=8)
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    assert [p.parent.name for p in files].count("part_00") == 8
    suffixes = [p.suffix for p in files]
    assert {s: suffixes.count(s) for s in set(suffixes)} == {
        ".pkl": 5,
        ".pt": 3,
        ".npy": 3,
        ".safetensors": 3,
        ".onnx": 1,
        ".gguf": 1,
        ".h5": 2,
        ".keras": 2,
    }
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in files}) == 20
    result = scan(tree, compute_hash=False)
    assert [f.verdict.value for f in result.files] == ["clean"] * 20
    mtime = files[0].stat().st_mtime_ns
    bench.make_tree(tmp_path / "tree", count=20, per_dir=8)
    assert files[0].stat().st_mtime_ns == mtime  # cached


def test_each_peer_has_its_own_pinned_venv(bench):
    sections = bench.peer_requirements(bench.PEERS_REQUIREMENTS.read_text())
    assert sections == {
        "picklescan": ["picklescan==1.0.5"],
        "modelscan": ["modelscan==0.8.8", "numpy==1.26.4"],
        "modelaudit": ["modelaudit==0.2.54"],
    }
    assert tuple(sections) == bench.PEERS


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
