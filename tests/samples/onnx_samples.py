"""Build ONNX samples in code: onnx.helper and torch.onnx.export output (benign), hand-edited
ModelProtos (hostile: custom domains, escaping external data, tensors that lie about their size)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SampleBuilder = Callable[[Path], Path]
OPSET = [helper.make_opsetid("", 17)]


def _model(
    nodes: list[onnx.NodeProto],
    initializers: list[TensorProto] | None = None,
    opsets: list[onnx.OperatorSetIdProto] | None = None,
    functions: list[onnx.FunctionProto] | None = None,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "main",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=initializers or [],
    )
    return helper.make_model(graph, opset_imports=opsets or OPSET, functions=functions or [])


def benign_model() -> onnx.ModelProto:
    """y = relu(x @ w + b) with real weights, an If with two subgraphs, and a ml-domain-free opset."""
    w = numpy_helper.from_array(np.arange(9, dtype=np.float32).reshape(3, 3), "w")
    b = numpy_helper.from_array(np.ones(3, dtype=np.float32), "b")
    cond = numpy_helper.from_array(np.array(True), "cond")
    branch = helper.make_graph(
        [helper.make_node("Identity", ["h"], ["out"], name="branch_identity")],
        "branch",
        [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
    )
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["xw"], name="matmul"),
        helper.make_node("Add", ["xw", "b"], ["h0"], name="add"),
        helper.make_node("Relu", ["h0"], ["h"], name="relu"),
        helper.make_node("If", ["cond"], ["y"], name="choose", then_branch=branch, else_branch=branch),
    ]
    model = _model(nodes, [w, b, cond])
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def helper_model(directory: Path) -> Path:
    return save(benign_model(), directory / "helper.onnx")


def external_model(directory: Path) -> Path:
    """A model whose initializers onnx writes to a side file (model.onnx.data)."""
    model = benign_model()
    big = numpy_helper.from_array(np.zeros((64, 64), dtype=np.float32), "big")
    model.graph.initializer.append(big)
    path = directory / "external.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
        location="external.onnx.data", size_threshold=16,
    )  # fmt: skip
    return path


def torch_exported(directory: Path, *, dynamo: bool) -> Path:
    """A small CNN exported by torch.onnx.export (TorchScript-based or dynamo exporter)."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.norm = torch.nn.BatchNorm2d(4)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.norm(self.conv(x)))
            return torch.softmax(self.fc(h.mean(dim=(2, 3))), dim=-1)

    path = directory / ("dynamo.onnx" if dynamo else "torchscript.onnx")
    torch.onnx.export(Net().eval(), (torch.randn(1, 3, 8, 8),), str(path), dynamo=dynamo)
    return path


# -- hostile -------------------------------------------------------------------------------------------


def custom_domain(directory: Path) -> Path:
    nodes = [helper.make_node("Shell", ["x"], ["y"], name="evil_node", domain="evil.ops")]
    opsets = [*OPSET, helper.make_opsetid("evil.ops", 1)]
    return save(_model(nodes, opsets=opsets), directory / "custom.onnx")


def contrib_op(directory: Path) -> Path:
    nodes = [helper.make_node("FastGelu", ["x"], ["y"], name="gelu", domain="com.microsoft")]
    opsets = [*OPSET, helper.make_opsetid("com.microsoft", 1)]
    return save(_model(nodes, opsets=opsets), directory / "contrib.onnx")


def unknown_op(directory: Path) -> Path:
    nodes = [helper.make_node("RunCommand", ["x"], ["y"], name="odd_node")]
    return save(_model(nodes), directory / "unknown_op.onnx")


def local_function(directory: Path) -> Path:
    """A custom-domain op that a FunctionProto in the model defines: not custom code."""
    body = helper.make_function(
        "local.fns", "Double", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])], OPSET
    )
    nodes = [helper.make_node("Double", ["x"], ["y"], name="double", domain="local.fns")]
    opsets = [*OPSET, helper.make_opsetid("local.fns", 1)]
    return save(_model(nodes, opsets=opsets, functions=[body]), directory / "function.onnx")


def nested_custom(directory: Path) -> Path:
    """A custom op hidden two subgraphs deep: Loop body › If branch."""
    inner = helper.make_graph(
        [helper.make_node("Backdoor", ["x"], ["out"], name="deep_evil", domain="evil.ops")],
        "inner", [], [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
    )  # fmt: skip
    body = helper.make_graph(
        [helper.make_node("If", ["c"], ["out"], name="inner_if", then_branch=inner, else_branch=inner)],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 3])],
    )  # fmt: skip
    nodes = [helper.make_node("Loop", ["", ""], ["y"], name="outer_loop", body=body)]
    opsets = [*OPSET, helper.make_opsetid("evil.ops", 1)]
    return save(_model(nodes, opsets=opsets), directory / "nested.onnx")


def external_location(location: str, name: str = "leak", **entries: str) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[4])
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in {"location": location, **entries}.items():
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        nodes = [helper.make_node("Add", ["x", name], ["y"], name="add")]
        return save(_model(nodes, [tensor]), directory / "external_path.onnx")

    return build


def wrong_raw_size(directory: Path) -> Path:
    tensor = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "short_w")
    tensor.dims[:] = [1000, 1000]
    nodes = [helper.make_node("Add", ["x", "short_w"], ["y"], name="add")]
    return save(_model(nodes, [tensor]), directory / "raw_size.onnx")


def truncated(directory: Path) -> Path:
    data = benign_model().SerializeToString()
    path = directory / "truncated.onnx"
    path.write_bytes(data[: len(data) - 7])
    return path


RULE_SAMPLES: dict[str, SampleBuilder] = {
    "ONNX-CUSTOM-DOMAIN": custom_domain,
    "ONNX-CONTRIB-OP": contrib_op,
    "ONNX-UNKNOWN-OP": unknown_op,
    "ONNX-EXTERNAL-DATA": external_model,
    "ONNX-EXTERNAL-DATA-PATH": external_location("../../etc/passwd"),
    "ONNX-EXTERNAL-DATA-RANGE": external_location("w.bin", offset="-5", length="16"),
    "ONNX-TENSOR-SIZE": wrong_raw_size,
    "ONNX-MALFORMED": truncated,
}
"""Rule id -> a builder of one file that fires it (merged into the registry-wide coverage test)."""
