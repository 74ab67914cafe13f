"""TorchScript: torch.jit.script/trace output is clean; hand-edited code/ that reaches outside is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.samples import torch_samples as samples

from modelshield import FileResult, Severity, Verdict, scan
from modelshield.formats import torchscript

CODE_MEMBER = "scripted/code/__torch__/tests/samples/torch_samples.py"


def scan_one(path: Path) -> FileResult:
    return scan(path, compute_hash=False).files[0]


def run_loader(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], timeout=120, check=False, capture_output=True)


@pytest.mark.parametrize("build", [samples.scripted_pt, samples.traced_pt])
def test_real_torchscript_is_clean(tmp_path: Path, build) -> None:
    file = scan_one(build(tmp_path))
    assert file.tree.format == "torchscript"
    assert file.issues == ()
    assert file.verdict is Verdict.CLEAN
    # only the user's _extra_files are noted (low): torch.jit.load hands them back, never runs them
    assert {(f.rule_id, f.severity) for f in file.findings} <= {("PYTORCH-EMBEDDED-CONTENT", Severity.LOW)}


def test_file_write_in_forward(tmp_path: Path) -> None:
    file = scan_one(samples.edited_torchscript(tmp_path, tmp_path / "marker"))
    assert {(f.rule_id, f.location.chain[1:]) for f in file.findings} == {
        ("TORCHSCRIPT-FILE-ACCESS", (CODE_MEMBER,))
    }
    finding = file.findings[0]
    assert finding.severity is Severity.HIGH
    assert finding.location.detail == "line 10, in TinyNet.forward"
    assert "torch.save" in finding.evidence


def test_file_write_in_setstate_runs_at_load(tmp_path: Path) -> None:
    file = scan_one(samples.edited_torchscript(tmp_path, tmp_path / "marker", in_setstate=True))
    finding = next(f for f in file.findings if f.rule_id == "TORCHSCRIPT-FILE-ACCESS")
    assert finding.location.chain[1:] == (CODE_MEMBER,)
    assert finding.severity is Severity.CRITICAL
    assert "TinyNet.__setstate__" in finding.location.detail
    assert file.verdict is Verdict.MALICIOUS


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ('    x = torch.from_file("/etc/passwd", False, 10)', "TORCHSCRIPT-FILE-ACCESS"),
        ('    _0 = ops.aten.save(x, "out")', "TORCHSCRIPT-FILE-ACCESS"),
        ('    torch.ops.load_library("libevil.so")', "TORCHSCRIPT-LIBRARY-LOAD"),
        ("    y = ops.evilns.run(x)", "TORCHSCRIPT-CUSTOM-OP"),
        ("    h = torch.classes.evilns.Shell()", "TORCHSCRIPT-CUSTOM-CLASS"),
        ("    _1 = ops.c10d.broadcast_([x], pg, 0, 0, False, -1)", "TORCHSCRIPT-NETWORK-OP"),
        ('    f = open("/tmp/x", "w")', "TORCHSCRIPT-PYTHON-ESCAPE"),
        ('    os.system("id")', "TORCHSCRIPT-PYTHON-ESCAPE"),
        ('    __import__("subprocess")', "TORCHSCRIPT-PYTHON-ESCAPE"),
    ],
)
def test_source_analysis(line: str, rule: str) -> None:
    source = f"class M(Module):\n  def forward(self, x: Tensor) -> Tensor:\n{line}\n    return x\n"
    found, parsed = torchscript.analyse_source(source)
    assert parsed
    assert [(hit.rule.id, hit.line, hit.scope) for hit in found] == [(rule, 3, "M.forward")]


@pytest.mark.parametrize(
    "line",
    [
        '    _0 = getattr(self.layers, "0")',
        "    y = ops.prim.NumToTensor(3)",
        "    z = ops.quantized.linear(x, self._packed_params, 1.0, 0)",
        "    p : __torch__.torch.classes.quantized.LinearPackedParamsBase",
        "    w = torch.linear(input, weight, bias)",
        "    y = ops.torchvision.nms(x, x, 0.5)",
    ],
)
def test_ordinary_torchscript_is_not_flagged(line: str) -> None:
    signature = "def forward(self, input: Tensor, weight: Tensor, bias: Tensor, x: Tensor):"
    source = f"class M(Module):\n  {signature}\n{line}\n"
    found, parsed = torchscript.analyse_source(source)
    assert parsed and found == []


def test_unparsable_code_is_searched_as_text() -> None:
    found, parsed = torchscript.analyse_source("def forward(self, x:\n    torch.save(x, 'out') )))\n")
    assert not parsed
    assert [hit.rule.id for hit in found] == ["TORCHSCRIPT-FILE-ACCESS"]


# --- torch.jit.load really runs the edited code ------------------------------------------------------


def test_jit_load_runs_edited_forward(tmp_path: Path) -> None:
    marker = tmp_path / "forward-marker"
    path = samples.edited_torchscript(tmp_path, marker)
    run_loader(f"import torch; torch.jit.load({str(path)!r})(torch.zeros(1, 4))")
    assert marker.exists()


def test_jit_load_runs_setstate_while_loading(tmp_path: Path) -> None:
    marker = tmp_path / "setstate-marker"
    path = samples.edited_torchscript(tmp_path, marker, in_setstate=True)
    run_loader(f"import torch; torch.jit.load({str(path)!r})")
    assert marker.exists()


def test_code_member_that_does_not_parse(tmp_path: Path) -> None:
    source = samples.scripted_pt(tmp_path)
    broken = b"class TinyNet(Module:\n  def forward(self, x):\n    torch.save(x, 'out')\n"
    path = samples.rewrite_zip(
        source, tmp_path / "broken.pt", drop=(CODE_MEMBER,), add=((CODE_MEMBER, broken),)
    )
    file = scan_one(path)
    assert {(f.rule_id, f.location.chain[1:]) for f in file.findings} == {
        ("TORCHSCRIPT-UNPARSED-CODE", (CODE_MEMBER,)),
        ("TORCHSCRIPT-FILE-ACCESS", (CODE_MEMBER,)),
    }
