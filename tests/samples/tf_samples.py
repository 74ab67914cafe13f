"""Build TensorFlow graph samples without TensorFlow: a minimal protobuf encoder for GraphDef,
FunctionDef and SavedModel, shaped like what tf.saved_model.save and freeze_graph write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

SampleBuilder = Callable[[Path], Path]


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def number(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def message(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint((field << 3) | 2) + varint(len(data)) + data


def attr_string(key: str, value: str) -> bytes:
    """A NodeDef attr map entry holding AttrValue.s."""
    return message(5, message(1, key) + message(2, message(2, value)))


def node(name: str, op: str, *inputs: str, attrs: bytes = b"") -> bytes:
    """A NodeDef: name (1), op (2), inputs (3), attrs (5)."""
    return message(1, name) + message(2, op) + b"".join(message(3, i) for i in inputs) + attrs


def function(name: str, *nodes: bytes) -> bytes:
    """A FunctionDef: signature OpDef name (1), node_def (3)."""
    return message(1, message(1, name)) + b"".join(message(3, n) for n in nodes)


def graph_def(nodes: list[bytes], functions: list[bytes] | None = None, producer: int = 1395) -> bytes:
    """A GraphDef: nodes (1), library of functions (2), versions (4)."""
    data = b"".join(message(1, n) for n in nodes) + message(4, number(1, producer))
    if functions:
        data += message(2, b"".join(message(1, f) for f in functions))
    return data


def saved_model(graph: bytes, assets: tuple[str, ...] = ()) -> bytes:
    """A SavedModel: schema version 1, one MetaGraphDef with meta_info_def (tags), graph_def and
    asset_file_defs (tensor_info name, filename)."""
    meta_info = message(4, "serve") + message(5, "2.16.1")
    asset_defs = b"".join(message(6, message(1, message(1, "asset_path:0")) + message(2, a)) for a in assets)
    return number(1, 1) + message(2, message(1, meta_info) + message(2, graph) + asset_defs)


def keras_like_graph(*extra_function_nodes: bytes) -> bytes:
    """The shape of a Keras Dense model saved by tf.saved_model.save: variables and the checkpoint
    function in the graph, the forward pass in library functions called by StatefulPartitionedCall."""
    forward = function(
        "__inference_call_42",
        node("dense/MatMul/ReadVariableOp", "ReadVariableOp", "kernel"),
        node("dense/MatMul", "MatMul", "x", "dense/MatMul/ReadVariableOp"),
        node("dense/BiasAdd", "BiasAdd", "dense/MatMul", "bias"),
        node("dense/Relu", "Relu", "dense/BiasAdd"),
        node("Identity", "Identity", "dense/Relu"),
        *extra_function_nodes,
    )
    save = function(
        "__inference__traced_save_99",
        node("StaticRegexFullMatch", "StaticRegexFullMatch", "file_prefix"),
        node("Select", "Select", "StaticRegexFullMatch"),
        node("StringJoin", "StringJoin", "file_prefix", "Select"),
        node("ShardedFilename", "ShardedFilename", "StringJoin"),
        node("SaveV2", "SaveV2", "ShardedFilename"),
        node("MergeV2Checkpoints", "MergeV2Checkpoints", "ShardedFilename"),
        node("RestoreV2", "RestoreV2", "file_prefix"),
        node("AssignVariableOp", "AssignVariableOp", "kernel", "RestoreV2"),
        node("NoOp", "NoOp"),
    )
    nodes = [
        node("kernel", "VarHandleOp"),
        node("bias", "VarHandleOp"),
        node("serving_default_x", "Placeholder"),
        node("StatefulPartitionedCall", "StatefulPartitionedCall", "serving_default_x", "kernel", "bias"),
        node("saver_filename", "Placeholder"),
        node("PartitionedCall", "PartitionedCall", "saver_filename"),
        node("const", "Const"),
        node("call_by_name", "__inference_call_42", "serving_default_x"),
    ]
    return graph_def(nodes, [forward, save])


def _write(name: str, data: bytes) -> SampleBuilder:
    def build(directory: Path) -> Path:
        path = directory / name
        path.write_bytes(data)
        return path

    return build


def benign_saved_model(directory: Path) -> Path:
    return _write("saved_model.pb", saved_model(keras_like_graph(), assets=("vocab.txt",)))(directory)


def benign_frozen_graph(directory: Path) -> Path:
    nodes = [
        node("input", "Placeholder"),
        node("w", "Const"),
        node("conv", "Conv2D", "input", "w"),
        node("bn", "FusedBatchNormV3", "conv"),
        node("relu", "Relu6", "bn"),
        node("pool", "AvgPool", "relu"),
        node("logits", "Softmax", "pool"),
        node("print", "PrintV2", "logits", attrs=attr_string("output_stream", "stderr")),
    ]
    return _write("frozen.pb", graph_def(nodes))(directory)


def hostile_saved_model(*nodes: bytes, name: str = "saved_model.pb") -> SampleBuilder:
    """A Keras-shaped SavedModel whose forward function also runs `nodes`."""
    return _write(name, saved_model(keras_like_graph(*nodes)))


def hostile_frozen_graph(*nodes: bytes, name: str = "frozen.pb") -> SampleBuilder:
    return _write(name, graph_def([node("input", "Placeholder"), *nodes]))


RULE_SAMPLES: dict[str, SampleBuilder] = {
    "TF-PYTHON-CALL": hostile_saved_model(node("py", "PyFunc", "x")),
    "TF-FILE-ACCESS": hostile_saved_model(node("leak", "ReadFile", "path")),
    "TF-NETWORK-OP": hostile_frozen_graph(node("remote", "DataServiceDatasetV4", "address")),
    "TF-DEBUG-OP": hostile_frozen_graph(node("tap", "DebugIdentity", "input")),
    "TF-UNKNOWN-OP": hostile_frozen_graph(node("custom", "MyCustomOp", "input")),
    "TF-ASSET-PATH": _write(
        "saved_model.pb", saved_model(keras_like_graph(), assets=("vocab.txt", "../../../etc/passwd"))
    ),
    "TF-MALFORMED": _write("truncated.pb", saved_model(keras_like_graph())[:-40]),
}
"""Rule id -> a builder of one file that fires it (merged into the registry-wide coverage test)."""
