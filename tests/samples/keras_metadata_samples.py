"""Legacy tf.keras `keras_metadata.pb` built without TensorFlow, shaped like tf_keras 2.21 writes it:
`SavedMetadata.nodes` (1) of `SavedObject {node_id 2, node_path 3, identifier 4, metadata 5, version 6}`,
the metadata a JSON object holding the layer's Keras config (a Lambda's function as a `__tuple__`)."""

from __future__ import annotations

import base64
import json
import marshal
from pathlib import Path
from typing import Any

from tests.samples.tf_samples import message, number

VERSION = message(6, number(1, 2) + number(2, 1))  # VersionDef {producer: 2, min_consumer: 1}


def node(
    path: str, metadata: dict[str, Any] | str, identifier: str = "_tf_keras_layer", node_id: int = 0
) -> bytes:
    """One SavedObject; node_id 0 is left out, as protobuf writes a zero."""
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    body = (number(2, node_id) if node_id else b"") + message(3, path) + message(4, identifier)
    return message(1, body + message(5, text) + VERSION)


def layer(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """A layer node's metadata, with the bookkeeping keys tf_keras adds around class_name and config."""
    return {"name": config["name"], "trainable": True, "class_name": class_name, "config": config}


def dense(name: str = "dense") -> dict[str, Any]:
    initializer = {"class_name": "GlorotUniform", "config": {"seed": None}, "shared_object_id": 1}
    return layer(
        "Dense", {"name": name, "units": 3, "activation": "linear", "kernel_initializer": initializer}
    )


def lambda_layer(source: str, module: str = "__main__", name: str = "lambda") -> dict[str, Any]:
    code = base64.encodebytes(marshal.dumps(compile(source, "<string>", "eval").co_consts[0])).decode()
    function = {"class_name": "__tuple__", "items": [code, None, None]}
    config = {
        "name": name,
        "function": function,
        "function_type": "lambda",
        "module": module,
        "arguments": {},
    }
    return layer("Lambda", config)


def sequential(*layers: dict[str, Any]) -> dict[str, Any]:
    nested = [{"class_name": each["class_name"], "config": each["config"]} for each in layers]
    root = layer("Sequential", {"name": "sequential", "layers": nested})
    return {
        **root,
        "is_graph_network": True,
        "model_config": {"class_name": "Sequential", "config": root["config"]},
    }


def metadata(*layers: dict[str, Any]) -> bytes:
    """A Sequential root node, then one node per layer (`root.layer-N`), as model.save writes them."""
    nodes = [node("root", sequential(*layers), "_tf_keras_sequential")]
    nodes += [node(f"root.layer-{i}", each, node_id=i + 1) for i, each in enumerate(layers)]
    return b"".join(nodes)


BENIGN = metadata(dense(), dense("dense_1"))
LAMBDA_OS = metadata(dense(), lambda_layer("lambda x: __import__('os').system('id') or x"))
LAMBDA_MODULE_OS = metadata(lambda_layer("lambda x: system('id') or x", module="os"))
CUSTOM = metadata(dense(), {**layer("Attention", {"name": "attention"}), "module": "mylab.layers"})
DANGEROUS_INITIALIZER = metadata(
    layer(
        "Dense",
        {
            "name": "dense",
            "units": 3,
            "kernel_initializer": {"module": "os", "class_name": "system", "config": {}},
        },
    )
)


def write_metadata(directory: Path, data: bytes = LAMBDA_OS, name: str = "keras_metadata.pb") -> Path:
    """A keras_metadata.pb file (a Lambda calling os.system by default; also the fuzzers' seed)."""
    path = directory / name
    path.write_bytes(data)
    return path


def write_benign(directory: Path) -> Path:
    return write_metadata(directory, BENIGN)
