"""OpenVINO IR and PMML: standard documents are clean; DTDs are refused before parsing; custom layers,
scripts in extensions and code-calling functions are reported."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.samples import xml_model_samples as samples

from modelshield import FileResult, Severity, Verdict, scan


def scan_one(path: Path) -> FileResult:
    [file] = scan(path, compute_hash=False).files
    return file


def test_standard_ir_and_pmml_are_clean(tmp_path: Path) -> None:
    for name, data in (("model.xml", samples.openvino_ir()), ("model.pmml", samples.pmml())):
        file = scan_one(samples.write(tmp_path, name, data))
        assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN), name
        assert file.tree.format == "xml-model"


def test_user_defined_function_and_x_function_are_not_reported(tmp_path: Path) -> None:
    derived = (
        '<DefineFunction name="my.scale" optype="continuous"><ParameterField name="v"/>'
        '<Apply function="*"><FieldRef field="v"/><Constant>2</Constant></Apply></DefineFunction>'
        '<DerivedField name="x2" optype="continuous" dataType="double">'
        '<Apply function="my.scale"><FieldRef field="x1"/></Apply></DerivedField>'
    )
    file = scan_one(samples.write(tmp_path, "m.pmml", samples.pmml(transformations=derived)))
    assert file.findings == ()


def test_billion_laughs_is_refused_unexpanded(tmp_path: Path) -> None:
    start = time.monotonic()
    file = scan_one(samples.write(tmp_path, "b.pmml", samples.BILLION_LAUGHS))
    assert time.monotonic() - start < 5
    assert [f.rule_id for f in file.findings] == ["XML-DOCTYPE"]
    assert file.issues


def test_openvino_extension_and_unknown_types(tmp_path: Path) -> None:
    layers = [("Parameter", "opset1"), ("MyOp", "extension"), ("Frobnicate", "opset8"), ("Result", "opset1")]
    file = scan_one(samples.write(tmp_path, "m.xml", samples.openvino_ir(layers)))
    assert [(f.rule_id, f.evidence, f.location.detail) for f in file.findings] == [
        ("OPENVINO-CUSTOM-LAYER", "extension::MyOp", "layer 'n1' (MyOp)"),
        ("OPENVINO-CUSTOM-LAYER", "Frobnicate", "layer 'n2' (Frobnicate)"),
    ]


def test_pmml_script_and_java_function(tmp_path: Path) -> None:
    file = scan_one(samples.write(tmp_path, "s.pmml", samples.pmml(extension=samples.SCRIPT_EXTENSION)))
    assert [(f.rule_id, f.severity) for f in file.findings] == [("PMML-SCRIPT", Severity.HIGH)]
    file = scan_one(samples.write(tmp_path, "j.pmml", samples.pmml(transformations=samples.JAVA_FUNCTION)))
    assert [(f.rule_id, f.severity, f.evidence) for f in file.findings] == [
        ("PMML-CODE-FUNCTION", Severity.CRITICAL, "java.lang.Runtime.exec")
    ]


def test_large_pmml_streams(tmp_path: Path) -> None:
    fields = "".join(
        f'<DerivedField name="d{i}" optype="continuous" dataType="double"><Apply function="+">'
        f'<FieldRef field="x1"/><Constant>{i}</Constant></Apply></DerivedField>'
        for i in range(50_000)
    )
    file = scan_one(samples.write(tmp_path, "big.pmml", samples.pmml(transformations=fields)))
    assert (file.findings, file.issues) == ((), ())


def test_openvino_constants_inside_their_weights_file_are_clean(tmp_path: Path) -> None:
    file = scan_one(samples.openvino_with_weights(tmp_path, (("0", "12"), ("12", "12"))))
    assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN)


def test_openvino_constants_past_the_weights_or_not_numbers(tmp_path: Path) -> None:
    consts = (("0", "12"), ("16", "4096"), ("-8", "12"), ("0x10", "4"))
    file = scan_one(samples.openvino_with_weights(tmp_path, consts))
    assert [(f.rule_id, f.location.detail, f.evidence) for f in file.findings] == [
        ("OPENVINO-WEIGHTS-RANGE", "layer 'n4' (Const)", "offset=16 size=4096"),
        ("OPENVINO-WEIGHTS-RANGE", "layer 'n5' (Const)", "offset=-8 size=12"),
        ("OPENVINO-WEIGHTS-RANGE", "layer 'n6' (Const)", "offset=0x10 size=4"),
    ]


def test_openvino_weights_reached_by_a_link_out_of_the_folder_are_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "big.bin").write_bytes(bytes(1 << 16))
    model = tmp_path / "model"
    model.mkdir()
    samples.write(model, "model.xml", samples.openvino_ir(consts=(("16", "4096"),)))
    (model / "model.bin").symlink_to(outside / "big.bin")
    [file] = scan(model / "model.xml", compute_hash=False).files
    assert file.findings == ()  # the range is judged against no weights file: the link leaves the folder


def test_real_openvino_ir_is_clean(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    file = scan_one(samples.real_openvino_ir(tmp_path))
    assert (file.findings, file.issues, file.verdict) == ((), (), Verdict.CLEAN)


def test_real_openvino_ir_with_a_constant_past_its_weights_is_refused_by_openvino_and_reported(
    tmp_path: Path,
) -> None:
    pytest.importorskip("openvino")
    model = samples.real_openvino_ir(tmp_path)
    weights = (tmp_path / "model.bin").stat().st_size
    text = model.read_text()
    first = re.search(r'offset="(\d+)" size="(\d+)"', text)
    assert first is not None
    model.write_text(text.replace(first.group(0), f'offset="{first.group(1)}" size="{weights * 4}"', 1))
    file = scan_one(model)
    assert [f.rule_id for f in file.findings] == ["OPENVINO-WEIGHTS-RANGE"]
    loaded = subprocess.run(  # the real reader, in a child: it checks the range itself and refuses
        [sys.executable, "-c", "import sys, openvino; openvino.Core().read_model(sys.argv[1])", str(model)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode != 0
    assert "Incorrect weights in bin file" in loaded.stderr
