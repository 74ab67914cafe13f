"""NeMo (.nemo) and Hydra configs: every `_target_` is judged (CVE-2025-23304), with its key path."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from tests.samples import nemo_samples as ns

from modelshield import FileResult, Severity, scan
from modelshield.engine.blob import BufferBlob
from modelshield.formats import nemo
from modelshield.policy.model import Policy


def scan_file(path: Path, policy: Policy | None = None) -> FileResult:
    return scan(path, policy, compute_hash=False).files[0]


def hits(result: FileResult, rule_id: str) -> set[str | None]:
    return {f.location.detail for f in result.findings if f.rule_id == rule_id}


def test_benign_nemo_is_clean(tmp_path: Path) -> None:
    result = scan_file(ns.write_nemo(tmp_path, ns.BENIGN_CONFIG))
    assert result.tree.format == "nemo"
    assert [c.format for c in result.tree.children][:1] == ["hydra-config"]
    assert result.findings == ()
    assert result.issues == ()


def test_gzipped_nemo_is_recognised(tmp_path: Path) -> None:
    result = scan_file(ns.write_nemo(tmp_path, ns.OS_SYSTEM_CONFIG, gz=True))
    assert result.tree.children[0].format == "nemo"
    assert hits(result, "HYDRA-DANGEROUS-TARGET") == {"loss._target_"}


def test_os_system_target_is_critical(tmp_path: Path) -> None:
    result = scan_file(ns.write_nemo(tmp_path, ns.OS_SYSTEM_CONFIG))
    [finding] = [f for f in result.findings if f.rule_id == "HYDRA-DANGEROUS-TARGET"]
    assert finding.severity is Severity.CRITICAL
    assert finding.location.chain[1:] == ("./model_config.yaml",)
    assert finding.location.detail == "loss._target_"
    assert "touch /tmp/pwned" in finding.evidence
    assert {f.rule_id for f in result.findings} == {"HYDRA-DANGEROUS-TARGET"}


def test_exec_with_args_is_critical(tmp_path: Path) -> None:
    result = scan_file(ns.write_nemo(tmp_path, ns.EXEC_ARGS_CONFIG))
    assert hits(result, "HYDRA-DANGEROUS-TARGET") == {"hook._target_"}
    [finding] = result.findings
    assert "_args_" in finding.evidence and "os.system" in finding.evidence


def test_deep_and_list_targets_are_found(tmp_path: Path) -> None:
    deep = scan_file(ns.write_nemo(tmp_path, ns.DEEP_CONFIG, name="deep.nemo"))
    assert hits(deep, "HYDRA-DANGEROUS-TARGET") == {"a.b.c.d._target_"}
    listed = scan_file(ns.write_nemo(tmp_path, ns.LIST_CONFIG, name="list.nemo"))
    assert hits(listed, "HYDRA-UNKNOWN-TARGET") == {"callbacks[1]._target_"}
    assert {f.severity for f in listed.findings} == {Severity.HIGH}


def test_legacy_target_key_is_judged_in_nemo(tmp_path: Path) -> None:
    config = ns.BENIGN_CONFIG.replace("nemo.collections.asr.models.ctc_models.EncDecCTCModel", "os.system")
    assert hits(scan_file(ns.write_nemo(tmp_path, config)), "HYDRA-DANGEROUS-TARGET") == {"target"}


def test_policy_allows_and_denies_targets(tmp_path: Path) -> None:
    path = ns.write_nemo(tmp_path, ns.UNKNOWN_CONFIG)
    assert hits(scan_file(path), "HYDRA-UNKNOWN-TARGET") == {"loss._target_"}
    assert scan_file(path, Policy(allowed_hydra_targets=frozenset({"mylab.*"}))).findings == ()
    denied = scan_file(
        ns.write_nemo(tmp_path, ns.BENIGN_CONFIG, name="b.nemo"),
        Policy(denied_hydra_targets=frozenset({"torch.nn.CTCLoss"})),
    )
    assert hits(denied, "HYDRA-DANGEROUS-TARGET") == {"loss._target_"}


def test_loader_inside_a_safe_namespace_is_dangerous() -> None:
    judge = nemo.HydraTargetJudge(Policy())
    assert judge.judge("nemo.core.ModelPT.restore_from").judgement.value == "dangerous"
    assert judge.judge("torch.nn.Linear").judgement.value == "safe"
    assert judge.judge("torch.hub.load").judgement.value == "dangerous"


def test_traversal_and_links_inside_nemo_are_reported(tmp_path: Path) -> None:
    link = tarfile.TarInfo("./tokenizer.model")
    link.type = tarfile.SYMTYPE
    link.linkname = "../../../../etc/passwd"
    slip = tarfile.TarInfo("../../evil.py")
    result = scan_file(ns.write_nemo(tmp_path, ns.BENIGN_CONFIG, extra=(link, slip)))
    assert result.tree.format == "nemo"
    assert {"ARCHIVE-LINK", "ARCHIVE-PATH-TRAVERSAL"} <= {f.rule_id for f in result.findings}


def test_alias_bomb_is_bounded(tmp_path: Path) -> None:
    lines = ["a0: &a0 {_target_: torch.nn.ReLU}"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    result = scan_file(ns.write_nemo(tmp_path, "\n".join(lines) + "\n"))
    assert result.findings == ()


def test_standalone_hydra_yaml(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(ns.HYDRA_YAML)
    result = scan_file(path)
    assert result.tree.format == "hydra-config"
    assert hits(result, "HYDRA-DANGEROUS-TARGET") == {"runner._target_"}
    assert hits(result, "HYDRA-UNKNOWN-TARGET") == {"model._target_"}


def test_sniff_is_strict() -> None:
    assert not nemo.HYDRA_CONFIG.sniff(BufferBlob(b"# _target_: os.system is documented here\n", ("x",)))
    assert not nemo.HYDRA_CONFIG.sniff(BufferBlob(b"def f():\n    return '_target_'\n", ("x",)))
    assert nemo.HYDRA_CONFIG.sniff(BufferBlob(b"a:\n  _target_: x.y\n", ("x",)))


def padded_flow_style_yaml(marker: Path, padding_lines: int) -> str:
    """A Hydra config whose file-writing target comes after `padding_lines` comment lines, in flow style
    (shutil.copyfile: hydra 1.3.8's target blocklist refuses os.system but lets this one run)."""
    padding = "# notes\n" * padding_lines
    copy = f"{{_target_: shutil.copyfile, _args_: ['{marker.parent / 'config.yaml'}', '{marker}']}}"
    return f"{padding}model: {{hidden: 8}}\nrunner: {copy}\n"


@pytest.mark.parametrize("padding_lines", [0, 20_000])
def test_flow_style_target_after_padding_is_found(tmp_path: Path, padding_lines: int) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(padded_flow_style_yaml(tmp_path / "marker", padding_lines))
    result = scan_file(path)
    assert hits(result, "HYDRA-DANGEROUS-TARGET") == {"runner._target_"}


def test_hydra_runs_the_padded_flow_style_target(tmp_path: Path) -> None:
    pytest.importorskip("hydra")
    import subprocess
    import sys

    path = tmp_path / "config.yaml"
    marker = tmp_path / "marker"
    path.write_text(padded_flow_style_yaml(marker, 20_000))
    code = (
        "import sys; from omegaconf import OmegaConf; from hydra.utils import instantiate; "
        "instantiate(OmegaConf.load(sys.argv[1]).runner)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], timeout=120, check=True, capture_output=True)
    assert marker.exists()


def test_a_target_beyond_the_yaml_limit_is_not_clean(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(padded_flow_style_yaml(tmp_path / "marker", 1_200_000))
    result = scan_file(path)
    assert result.tree.format == "hydra-config"
    assert [(i.kind, i.location.detail) for i in result.issues] == [("limit", "max_yaml_bytes")]
    assert result.verdict.value == "error"
