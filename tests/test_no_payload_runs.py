"""Every malicious sample the test suite builds, payload armed, scanned by the CLI: no payload runs.

The samples' payloads only create a marker file (most under the sample's own directory, a few at a
fixed path such as /tmp/pwned). The CLI scans the whole sample tree in a child process with a timeout;
the test then proves that no file appeared anywhere under the test's directory or at those fixed paths,
and that no malicious sample came out clean. tests/test_loader_proof.py proves the same pickle samples
do run their payload in the real loader.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.samples import gguf_samples, numpy_samples, safetensors_samples, torch_samples
from tests.samples import pickles as pk
from tests.test_rule_coverage import RULE_SAMPLES, SAMPLE_LIMITS

from modelshield.engine.findings import Severity
from modelshield.rules import REGISTRY

SCAN_TIMEOUT = 600
FIXED_MARKERS = (Path("/tmp/pwned"),)
"""Payloads of samples that mimic real exploits touch these paths instead of a per-test marker."""
MARKER_MODULES = (gguf_samples, numpy_samples, safetensors_samples, torch_samples)


@dataclass(frozen=True)
class ArmedSample:
    label: str
    build: Callable[[Path, Path], Path]
    """(directory, marker) -> the malicious file written under directory."""
    must_not_be_clean: bool


def _pickle(sample: pk.PickleSample) -> Callable[[Path, Path], Path]:
    def build(directory: Path, marker: Path) -> Path:
        path = directory / f"{sample.name}.bin"
        path.write_bytes(sample.build(str(marker)))
        return path

    return build


def _rule(builder: Callable[[Path], Path]) -> Callable[[Path, Path], Path]:
    return lambda directory, _marker: builder(directory)


def armed_samples() -> Iterator[ArmedSample]:
    """The pickle corpus, every builder of tests/samples that takes a marker, and one sample per rule."""
    for name, sample in sorted(pk.SAMPLES.items()):
        yield ArmedSample(f"pickle-{name}", _pickle(sample), must_not_be_clean=True)
    for module in MARKER_MODULES:
        for name, function in inspect.getmembers(module, inspect.isfunction):
            parameters = list(inspect.signature(function).parameters)
            if function.__module__ == module.__name__ and parameters[:2] == ["directory", "marker"]:
                yield ArmedSample(f"{module.__name__.rsplit('.', 1)[-1]}-{name}", function, True)
    for rule_id, builder in sorted(RULE_SAMPLES.items()):
        # Rules about a lowered limit only fire under that limit; low and info rules do not make a
        # file suspicious on their own. Their markers are checked all the same.
        serious = REGISTRY[rule_id].severity >= Severity.MEDIUM and rule_id not in SAMPLE_LIMITS
        yield ArmedSample(f"rule-{rule_id}", _rule(builder), must_not_be_clean=serious)


def _tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def test_no_sample_runs_its_payload_when_scanned(tmp_path: Path) -> None:
    fixed_before = {path: os.path.lexists(path) for path in FIXED_MARKERS}
    samples_dir, markers_dir = tmp_path / "samples", tmp_path / "markers"
    markers_dir.mkdir()
    sample_paths: dict[str, tuple[ArmedSample, Path]] = {}
    for index, sample in enumerate(armed_samples()):
        directory = samples_dir / f"{index:03d}"
        directory.mkdir(parents=True)
        path = sample.build(directory, markers_dir / sample.label)
        sample_paths[str(path)] = (sample, path)
    assert sorted(
        s.label for s, _ in sample_paths.values() if not s.label.startswith(("pickle-", "rule-"))
    ) == [
        "numpy_samples-malicious_npz",
        "numpy_samples-malicious_object_npy",
        "numpy_samples-malicious_structured_object_npy",
        "torch_samples-duplicate_pickle_pt",
        "torch_samples-edited_torchscript",
        "torch_samples-legacy_tar",
        "torch_samples-legacy_tar_with_storage",
        "torch_samples-malicious_legacy_pt",
        "torch_samples-malicious_zip_pt",
        "torch_samples-upper_case_pickle_pt",
    ], "a builder that takes a marker was renamed or lost: keep this list in step with tests/samples"
    assert list(markers_dir.iterdir()) == [], "building a sample must never run its payload"
    before = _tree(tmp_path)

    home = tmp_path / "home"  # the CLI must find no user policy or cache outside the test
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "modelshield",
            "scan",
            "--format",
            "json",
            "--no-hash",
            "--deep",
            str(samples_dir),
        ],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=SCAN_TIMEOUT,
    )

    created = sorted(str(path) for path in _tree(tmp_path) - before if not path.is_relative_to(home))
    assert created == [], f"files appeared during the scan (a payload ran?): {created}"
    assert {path: os.path.lexists(path) for path in FIXED_MARKERS} == fixed_before
    assert proc.returncode == 1, proc.stderr.decode(errors="replace")[-2000:]
    verdicts = {entry["path"]: entry["verdict"] for entry in json.loads(proc.stdout)["files"]}
    clean = sorted(
        sample.label
        for key, (sample, _path) in sample_paths.items()
        if sample.must_not_be_clean and verdicts[key] == "clean"
    )
    assert clean == [], f"malicious samples judged clean: {clean}"
