"""OpenVINO IR and PMML documents written by hand to each format's schema (no PMML exporter is installed
here): benign ones as the tools write them, hostile ones one change away; and real OpenVINO IR written by
openvino's own `save_model`."""

from __future__ import annotations

from pathlib import Path


def openvino_ir(
    layers: list[tuple[str, str]] | None = None,
    ir_version: int = 11,
    consts: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A network of (type, version) layers, wired in a chain like `ovc` writes them; `consts` adds a
    Const layer per (offset, size) into the .bin weights, as `ovc` writes each constant."""
    layers = layers or [("Parameter", "opset1"), ("Relu", "opset1"), ("Result", "opset1")]
    ranges = [("", "")] * len(layers) + list(consts)
    layers = layers + [("Const", "opset1")] * len(consts)
    parts = [f'<?xml version="1.0"?>\n<net name="tiny" version="{ir_version}">\n\t<layers>\n']
    for i, ((op, version), (offset, size)) in enumerate(zip(layers, ranges, strict=True)):
        weights = f' offset="{offset}" size="{size}"' if op == "Const" else ""
        parts.append(
            f'\t\t<layer id="{i}" name="n{i}" type="{op}" version="{version}">\n'
            f'\t\t\t<data shape="1,3" element_type="f32"{weights} />\n'
            f'\t\t\t<output><port id="0" precision="FP32"><dim>1</dim><dim>3</dim></port></output>\n'
            "\t\t</layer>\n"
        )
    parts.append("\t</layers>\n\t<edges>\n")
    parts.extend(
        f'\t\t<edge from-layer="{i}" from-port="0" to-layer="{i + 1}" to-port="0" />\n'
        for i in range(len(layers) - 1)
    )
    parts.append('\t</edges>\n\t<rt_info><MO_version value="2024.4" /></rt_info>\n</net>\n')
    return "".join(parts).encode()


def pmml(transformations: str = "", extension: str = "") -> bytes:
    """A linear regression as sklearn2pmml writes it, with optional derived fields and extension."""
    derived = transformations or (
        '<DerivedField name="x2" optype="continuous" dataType="double">'
        '<Apply function="*"><FieldRef field="x1"/><Constant dataType="double">2.0</Constant></Apply>'
        "</DerivedField>"
    )
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header><Application name="SkLearn2PMML package" version="0.110.0"/>{extension}</Header>
  <DataDictionary>
    <DataField name="x1" optype="continuous" dataType="double"/>
    <DataField name="y" optype="continuous" dataType="double"/>
  </DataDictionary>
  <TransformationDictionary>{derived}</TransformationDictionary>
  <RegressionModel functionName="regression" algorithmName="sklearn.linear_model._base.LinearRegression">
    <MiningSchema><MiningField name="y" usageType="target"/><MiningField name="x1"/></MiningSchema>
    <RegressionTable intercept="0.5"><NumericPredictor name="x2" coefficient="1.25"/></RegressionTable>
  </RegressionModel>
</PMML>
""".encode()


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE PMML [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
    b'<PMML version="4.4"><Header copyright="&b;"/></PMML>\n'
)
SCRIPT_EXTENSION = '<Extension name="preprocess">import os; os.system("id")</Extension>'
JAVA_FUNCTION = (
    '<DerivedField name="x2" optype="continuous" dataType="string">'
    '<Apply function="java.lang.Runtime.exec"><Constant>touch /tmp/x</Constant></Apply></DerivedField>'
)


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def openvino_with_weights(directory: Path, consts: tuple[tuple[str, str], ...], weights: int = 24) -> Path:
    """`model.xml` with its `model.bin` of `weights` bytes beside it (two f32[3] constants fit)."""
    write(directory, "model.bin", bytes(range(weights)))
    return write(directory, "model.xml", openvino_ir(consts=consts))


def real_openvino_ir(directory: Path) -> Path:
    """`model.xml` + `model.bin` saved by openvino from a small network that uses the ops whose IR names
    differ from their class names (Constant, Relu, PRelu, Softmax) next to common ones."""
    import numpy as np
    import openvino as ov
    from openvino import opset1, opset8, opset13

    x = opset13.parameter([1, 3, 8, 8], np.float32, name="x")
    kernel = opset13.constant(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32))
    y = opset13.convolution(x, kernel, [1, 1], [1, 1], [1, 1], [1, 1])
    y = opset13.relu(opset13.add(y, opset13.constant(np.ones((1, 4, 1, 1), np.float32))))
    y = opset13.prelu(y, opset13.constant(np.full((1,), 0.1, np.float32)))
    y = opset13.reshape(y, opset13.constant(np.array([1, 256], np.int64)), False)
    dense = opset13.constant(np.random.default_rng(1).normal(size=(256, 10)).astype(np.float32))
    y = opset1.softmax(opset13.matmul(y, dense, False, False), 1)
    y = opset8.softmax(y, 1)
    model = ov.Model([y], [x], "tiny")
    path = directory / "model.xml"
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


RULE_SAMPLES = {
    "XML-DOCTYPE": lambda d: write(d, "laughs.pmml", BILLION_LAUGHS),
    "OPENVINO-CUSTOM-LAYER": lambda d: write(
        d, "custom.xml", openvino_ir([("Parameter", "opset1"), ("MyOp", "extension"), ("Result", "opset1")])
    ),
    "OPENVINO-WEIGHTS-RANGE": lambda d: openvino_with_weights(d, (("0", "12"), ("16", "4096"))),
    "PMML-SCRIPT": lambda d: write(d, "script.pmml", pmml(extension=SCRIPT_EXTENSION)),
    "PMML-CODE-FUNCTION": lambda d: write(d, "java.pmml", pmml(transformations=JAVA_FUNCTION)),
}
