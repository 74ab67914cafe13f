"""TensorFlow samples written by tensorflow-cpu itself: SavedModels, frozen GraphDefs and TFLite models,
and legacy Keras SavedModels (with keras_metadata.pb) written by tf_keras.

tensorflow-cpu pins packages (h5py) older than the main venv's, so it lives in its own venv, `.venv-tf`
at the repository root. The test side of this module (main venv) makes that venv once, then runs this
file in it as a script: `build OUT` writes every sample into OUT, `prove SAMPLE` loads one with the real
loader. The builder side imports tensorflow only inside its functions. Payloads are harmless: they write
a marker file next to the samples, read one back, or print into one.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

TF_REQUIREMENT = "tensorflow-cpu==2.21.0"
# The Keras 2 that writes legacy SavedModels (keras_metadata.pb), released with the same TensorFlow;
# installed without dependencies, since it requires `tensorflow`, which tensorflow-cpu already is.
TF_KERAS_REQUIREMENT = "tf_keras==2.21.0"
REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-tf"
VENV_PYTHON = VENV / "bin" / "python"
INSTALL_TIMEOUT = 1800
BUILD_TIMEOUT = 900
PROVE_TIMEOUT = 300
DONE = "samples.json"
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    # The test process sets KERAS_BACKEND=torch for its own keras samples; this venv has no torch.
    "KERAS_BACKEND": "tensorflow",
}

# Marker files the payloads write or read, relative to the sample folder; payloads know them at build time.
MARKERS = "markers"
SOURCES = "sources"  # files the builders read (vocabularies copied into assets/); not samples
SECRET = "secret.txt"
SECRET_TEXT = "host secret the model must not see"


# ---------------------------------------------------------------- test side (main venv, no tensorflow)


class TensorFlowUnavailable(RuntimeError):
    """The tensorflow venv could not be made or the builder failed; the message says why."""


def _venv_works() -> bool:
    if not VENV_PYTHON.exists():
        return False
    probe = subprocess.run(
        [str(VENV_PYTHON), "-c", "import tensorflow, tf_keras"],
        env={**os.environ, **QUIET_ENV},
        capture_output=True,
        timeout=300,
    )
    return probe.returncode == 0


@functools.cache
def ensure_venv() -> Path:
    """The venv's python, making the venv when missing; built beside it and renamed into place, so a
    crash or a second test run never leaves a half-made `.venv-tf`."""
    if _venv_works():
        return VENV_PYTHON
    staging = Path(tempfile.mkdtemp(prefix=".venv-tf-", dir=REPO))
    pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "-q"]
    try:
        steps = (
            [sys.executable, "-m", "venv", str(staging)],
            [*pip, TF_REQUIREMENT],
            [*pip, "--no-deps", TF_KERAS_REQUIREMENT],
        )
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
            if done.returncode != 0:
                raise TensorFlowUnavailable(f"{' '.join(step[-3:])} failed: {done.stderr.strip()[-2000:]}")
        if _venv_works():
            return VENV_PYTHON  # another test run finished its venv first
        if VENV.exists():
            shutil.rmtree(VENV)  # present but broken or older: `import tensorflow, tf_keras` failed in it
        os.replace(staging, VENV)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not _venv_works():
        raise TensorFlowUnavailable(f"{VENV} was made but `import tensorflow, tf_keras` fails in it")
    return VENV_PYTHON


def run_in_venv(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ensure_venv()), __file__, *args],
        env={**os.environ, **QUIET_ENV},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@functools.cache
def build_samples(out: Path) -> dict[str, Path]:
    """Every sample, built once per `out` by the real libraries: name -> path (folder or file)."""
    if not (out / DONE).exists():
        out.mkdir(parents=True, exist_ok=True)
        done = run_in_venv("build", str(out), timeout=BUILD_TIMEOUT)
        if done.returncode != 0 or not (out / DONE).exists():
            raise TensorFlowUnavailable(f"the sample builder failed: {done.stderr.strip()[-4000:]}")
    names: list[str] = json.loads((out / DONE).read_text())
    return {name: out / name for name in names}


def samples_or_skip(base: Path) -> dict[str, Path]:
    """The samples, or a skip with the reason when tensorflow cannot be had; under CI=true a failure."""
    import pytest

    try:
        return build_samples(base / "tf-real")
    except (TensorFlowUnavailable, subprocess.TimeoutExpired, OSError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"real TensorFlow samples unavailable: {exc}")


def prove_in_venv(out: Path, requests: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Load each named sample with the real loader in one child process with a timeout; a feed of
    None loads only, any other feed calls the serving signature with it (TFLite: runs on zeros)."""
    done = run_in_venv("prove", str(out), json.dumps(requests), timeout=PROVE_TIMEOUT)
    if done.returncode != 0:
        raise TensorFlowUnavailable(f"the loader proof failed: {done.stderr.strip()[-4000:]}")
    results: dict[str, dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


# ---------------------------------------------------------------- builder side (tensorflow venv)

_F = TypeVar("_F", bound=Callable[..., Any])


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _module() -> Any:
    return _tf().Module


def _traced(*specs: Any) -> Callable[[_F], _F]:
    """tf.function with a fixed input signature (typed: tensorflow ships no type hints)."""
    traced: Callable[[_F], _F] = _tf().function(input_signature=list(specs))
    return traced


def _keras_model() -> Any:
    """A small functional model with the layers real exports carry: embedding, LSTM (a While loop in
    the function library), convolution, normalisation, attention, dropout, a Lambda."""
    import keras

    keras.utils.set_random_seed(7)
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 8)(tokens)
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.LSTM(8)(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Lambda(lambda t: t * 2.0 - 1.0)(x)  # traced into graph ops; no Python is saved
    out = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(tokens, out)


def build_keras_export(out: Path) -> None:
    _keras_model().export(str(out / "keras_export"))


def build_keras_saved_model(out: Path) -> None:
    _tf().saved_model.save(_keras_model(), str(out / "keras_saved_model"))


def build_module_with_assets(out: Path) -> None:
    """A tf.Module with variables, two signatures, an asset and data-dependent control flow (While and
    If become functions of the library)."""
    tf = _tf()
    vocab = out / SOURCES / "vocab.txt"
    vocab.write_text("alpha\nbeta\ngamma\n")

    class Scorer(_module()):  # type: ignore[misc]
        def __init__(self) -> None:
            self.weights = tf.Variable([[0.5], [-1.5]], name="weights")
            self.steps = tf.Variable(3, name="steps")
            self.vocab = tf.saved_model.Asset(str(vocab))

        @_traced(tf.TensorSpec([None, 2], tf.float32))
        def score(self, x: Any) -> Any:
            y = tf.matmul(x, self.weights)
            i = tf.constant(0)
            while i < self.steps:
                y = y * 2.0 if tf.reduce_sum(y) > 0 else y - 1.0
                i += 1
            return {"score": y}

        @_traced()
        def vocabulary(self) -> Any:
            return {"path": self.vocab.asset_path}

    module = Scorer()
    signatures = {"serving_default": module.score, "vocabulary": module.vocabulary}
    tf.saved_model.save(module, str(out / "module_with_assets"), signatures=signatures)


def _text_file_table(vocabulary: Any) -> Any:
    """A StaticHashTable from a text file: each whole line maps to its line number."""
    tf = _tf()
    whole_line, line_number = tf.lookup.TextFileIndex.WHOLE_LINE, tf.lookup.TextFileIndex.LINE_NUMBER
    init = tf.lookup.TextFileInitializer(vocabulary, tf.string, whole_line, tf.int64, line_number)
    return tf.lookup.StaticHashTable(init, default_value=-1)


def build_lookup_tables(out: Path) -> None:
    """Vocabulary lookups as real models ship them: a StaticHashTable initialised from a text file (an
    asset: HashTableV2 + InitializeTableFromTextFileV2), Keras StringLookup and TextVectorization."""
    import keras

    tf = _tf()
    vocab = out / SOURCES / "labels.txt"
    vocab.write_text("cat\ndog\nbird\n")

    class Tables(_module()):  # type: ignore[misc]
        def __init__(self) -> None:
            self.table = _text_file_table(str(vocab))
            self.lookup_layer = keras.layers.StringLookup(vocabulary=["cat", "dog"])
            self.vectorize = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4)
            self.vectorize.adapt(["the cat sat", "the dog ran far"])

        @_traced(tf.TensorSpec([None], tf.string))
        def ids(self, words: Any) -> Any:
            return {
                "table": self.table.lookup(words),
                "layer": self.lookup_layer(words),
                "vectors": self.vectorize(words),
            }

    module = Tables()
    tf.saved_model.save(module, str(out / "lookup_tables"), signatures=module.ids)


def build_v1_saved_model_with_table(out: Path, name: str = "v1_saved_model_with_table") -> None:
    """A TF1 SavedModel (SavedModelBuilder): the vocabulary is an asset whose path is a Const of the
    graph, listed in asset_file_def; the loader feeds the real path to it when it runs the main op."""
    tf = _tf()
    v1 = tf.compat.v1
    vocab = out / SOURCES / "v1_vocab.txt"
    vocab.write_text("red\ngreen\nblue\n")
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        words = v1.placeholder(tf.string, [None], name="x")
        path = tf.constant(str(vocab), name="vocab_path")
        v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, path)
        table = _text_file_table(path)
        ids = tf.identity(table.lookup(words), name="ids")
        session.run(v1.tables_initializer())
        builder = v1.saved_model.Builder(str(out / name))
        signature = v1.saved_model.predict_signature_def({"x": words}, {"output_0": ids})
        builder.add_meta_graph_and_variables(
            session,
            [v1.saved_model.tag_constants.SERVING],
            signature_def_map={"serving_default": signature},
            assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
            main_op=v1.tables_initializer(),
        )
        builder.save()


def build_ops_tour(out: Path) -> None:
    """One signature through the op families real models use beyond layers: strings and ragged
    tensors, map_fn/scan/TensorArray loops, signal, image, sparse, linear algebra, segments, sorting,
    stateless random numbers."""
    tf = _tf()

    class Tour(_module()):  # type: ignore[misc]
        def __init__(self) -> None:
            self.scale = tf.Variable(tf.ones([4]))

        @_traced(tf.TensorSpec([None], tf.string), tf.TensorSpec([None, 16], tf.float32))
        def serve(self, text: Any, x: Any) -> Any:
            words = tf.strings.split(tf.strings.regex_replace(tf.strings.lower(text), "[.,]", ""))
            ids = tf.strings.to_hash_bucket_fast(words, 100)
            steps = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
            for i in tf.range(tf.shape(x)[0]):
                steps = steps.write(i, tf.reduce_max(x[i]))
            image = tf.image.rot90(tf.image.resize(tf.reshape(x, [-1, 4, 4, 1]), [8, 8]))
            gram = tf.linalg.matmul(x, x, transpose_b=True) + tf.eye(tf.shape(x)[0])
            return {
                "ids": ids.to_tensor(default_value=0),
                "ngrams": tf.strings.ngrams(words, 2).to_tensor(),
                "lengths": tf.strings.length(text, unit="UTF8_CHAR"),
                "mapped": tf.map_fn(lambda row: tf.reduce_sum(row * self.scale[0]), x),
                "scanned": tf.scan(lambda total, row: total + row, x),
                "steps": steps.stack(),
                "spectrum": tf.abs(tf.signal.stft(x, frame_length=8, frame_step=4)),
                "image": tf.image.per_image_standardization(tf.image.flip_left_right(image)),
                "sparse": tf.sparse.reduce_sum(tf.sparse.from_dense(x), axis=1),
                "cholesky": tf.linalg.cholesky(gram @ tf.transpose(gram)),
                "segments": tf.math.unsorted_segment_sum(x, tf.zeros([tf.shape(x)[0]], tf.int32), 2),
                "top": tf.math.top_k(x, 3).values,
                "order": tf.argsort(x),
                "noise": tf.random.stateless_uniform([2], seed=[1, 2]),
                "einsum": tf.einsum("ij,kj->ik", x, x),
                "gelu": tf.nn.gelu(x),
                "one_hot": tf.one_hot(ids.flat_values, 100),
            }

    module = Tour()
    tf.saved_model.save(module, str(out / "ops_tour"), signatures=module.serve)


def _frozen(function: Any) -> bytes:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function)
    data: bytes = frozen.graph.as_graph_def().SerializeToString()
    return data


def build_frozen_graph(out: Path) -> None:
    tf = _tf()
    model = _keras_model()
    function = tf.function(lambda tokens: model(tokens)).get_concrete_function(
        tf.TensorSpec([1, 6], tf.int32)
    )
    (out / "frozen_graph.pb").write_bytes(_frozen(function))


def build_frozen_v1_control_flow(out: Path) -> None:
    """A TF1-style frozen graph: v1 control flow (Enter/Exit/Merge/Switch/NextIteration/LoopCond)."""
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        with tf.compat.v1.variable_scope("dense"):
            w = tf.compat.v1.get_variable("w", initializer=tf.constant([[1.0], [2.0]]))
        i = tf.constant(0)
        _, y = tf.compat.v1.while_loop(
            lambda i, y: i < 3, lambda i, y: (i + 1, tf.compat.v1.cond(i > 1, lambda: y * 2.0, lambda: y)),
            [i, tf.matmul(x, w)],
        )  # fmt: skip
        tf.identity(y, name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), ["y"]
            )
    (out / "frozen_v1_control_flow.pb").write_bytes(frozen.SerializeToString())


def _tf_keras() -> Any:
    import tf_keras

    return tf_keras


TF_KERAS_CUSTOM_CLASS = "mylab>Dropper"  # what a hostile keras_metadata.pb asks the loading process for


def build_tf_keras_models(out: Path) -> None:
    """Legacy tf.keras SavedModels (save_format="tf" writes keras_metadata.pb): a compiled Sequential
    (convolution, LSTM, dropout, metrics) and a functional model (Conv2D, normalisation, a
    bidirectional GRU, two inputs merged)."""
    keras = _tf_keras()
    keras.utils.set_random_seed(7)
    sequential = keras.Sequential(
        [
            keras.layers.Input((6, 4)),
            keras.layers.Conv1D(8, 3, padding="same", activation="relu"),
            keras.layers.LSTM(8),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    sequential.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    sequential.save(str(out / "tf_keras_sequential"), save_format="tf")
    image = keras.Input((8, 8, 1), name="image")
    extra = keras.Input((3,), name="extra")
    x = keras.layers.Conv2D(4, 3, activation="relu")(image)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Reshape((6, 24))(x)
    x = keras.layers.Bidirectional(keras.layers.GRU(4))(x)
    x = keras.layers.Concatenate()([x, keras.layers.Dense(4, activation="tanh")(extra)])
    functional = keras.Model([image, extra], keras.layers.Dense(2, name="scores")(x))
    functional.save(str(out / "tf_keras_functional"), save_format="tf")


def build_tf_keras_hostile(out: Path) -> None:
    """A Lambda layer whose code writes a marker file (tf_keras marshals it into keras_metadata.pb),
    and a plain model whose keras_metadata.pb is edited, as an attacker would, so that its Dense layer
    names a registered custom class from outside Keras."""
    keras = _tf_keras()
    from tf_keras.protobuf import saved_metadata_pb2

    marker = out / MARKERS / "tf_keras_lambda.txt"
    source = f"lambda t: (open({str(marker)!r}, 'w').write('written by the Lambda'), t)[1]"
    payload = eval(compile(source, "<payload>", "eval"))  # the model's author writes this lambda
    model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3), keras.layers.Lambda(payload)])
    model.save(str(out / "tf_keras_lambda"), save_format="tf")
    marker.unlink(missing_ok=True)  # saving traced the Lambda; only loading may write

    plain = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(3, name="scores")])
    plain.save(str(out / "tf_keras_custom_object"), save_format="tf")
    path = out / "tf_keras_custom_object" / "keras_metadata.pb"
    metadata = saved_metadata_pb2.SavedMetadata()
    metadata.ParseFromString(path.read_bytes())
    for node in metadata.nodes:
        layer = json.loads(node.metadata)
        if layer.get("class_name") == "Dense":
            layer["class_name"] = TF_KERAS_CUSTOM_CLASS
            node.metadata = json.dumps(layer)
    path.write_bytes(metadata.SerializeToString())


def _after(effect: Any, value: Any) -> Any:
    """`value`, computed only once the side-effecting op `effect` has run."""
    tf = _tf()
    with tf.control_dependencies([effect]):
        return tf.identity(value)


class _Hostile:
    """Malicious SavedModels: each holds one technique, with a node name the tests look for."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.markers = out / MARKERS
        self.markers.mkdir(exist_ok=True)
        (self.markers / SECRET).write_text(SECRET_TEXT)

    def save(self, name: str, module: Any, signature: Any) -> None:
        _tf().saved_model.save(module, str(self.out / name), signatures=signature)

    def module(self, body: Callable[[Any], Any], spec: Any) -> Any:
        class Payload(_module()):  # type: ignore[misc]
            @_traced(spec)
            def serve(self, x: Any) -> Any:
                return body(x)

        return Payload()

    def build_all(self) -> None:
        tf = _tf()
        text = tf.TensorSpec([], tf.string)
        vector = tf.TensorSpec([2], tf.float32)
        secret, markers = str(self.markers / SECRET), str(self.markers)
        hostile: dict[str, tuple[Callable[[Any], Any], Any]] = {
            "read_file": (lambda x: tf.io.read_file(secret, name="steal"), text),
            "write_file": (
                lambda x: _after(tf.io.write_file(f"{markers}/write_file.txt", x, name="drop"), x),
                text,
            ),
            "matching_files": (
                lambda x: tf.strings.reduce_join(tf.io.matching_files(f"{markers}/*", name="listing")),
                text,
            ),
            "print_to_file": (
                lambda x: _after(
                    tf.print(x, output_stream=f"file://{markers}/print_to_file.txt", name="spy"), x
                ),
                vector,
            ),
            "debug_identity": (
                lambda x: tf.raw_ops.DebugIdentity(
                    input=x, tensor_name="x:0", debug_urls=[f"file://{markers}/debug_identity"], name="tap"
                ),
                vector,
            ),
            "py_function": (
                lambda x: tf.py_function(lambda t: t * 2.0, [x], tf.float32, name="python_callback"),
                vector,
            ),
            "numpy_function": (
                lambda x: tf.numpy_function(lambda t: t * 2.0, [x], tf.float32, name="numpy_callback"),
                vector,
            ),
            "text_line_dataset": (
                lambda x: tf.data.TextLineDataset(secret, name="lines").reduce(
                    tf.constant(""), lambda acc, line: acc + line
                ),
                text,
            ),
        }
        for name, (body, spec) in hostile.items():
            module = self.module(body, spec)
            self.save(name, module, module.serve)
        self.build_on_load()
        self.build_table_files()

    def build_table_files(self) -> None:
        """Lookup tables that read a host file while the model loads: the TF2 initializer's filename
        rewired to a Const, and asset filenames (TF2 asset_file_def, TF1 'saved_model_assets') that
        climb out of assets/. TensorFlow's API always copies a table's file into assets/, so the
        SavedModels are written by TensorFlow and then edited with its own protos, as an attacker would."""
        tf = _tf()
        from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

        vocab = self.out / SOURCES / "table_vocab.txt"
        vocab.write_text("cat\ndog\n")

        class Table(_module()):  # type: ignore[misc]
            def __init__(self) -> None:
                self.table = _text_file_table(str(vocab))

            @_traced(tf.TensorSpec([None], tf.string))
            def serve(self, x: Any) -> Any:
                return self.table.lookup(x)

        def edit(name: str, change: Callable[[Any], None]) -> None:
            saved = saved_model_pb2.SavedModel()
            path = self.out / name / "saved_model.pb"
            saved.ParseFromString(path.read_bytes())
            change(saved.meta_graphs[0])
            path.write_bytes(saved.SerializeToString())

        def constant_filename(meta: Any) -> None:
            [init] = [f for f in meta.graph_def.library.function if "_initializer" in f.signature.name]
            [node] = [n for n in init.node_def if n.op == "InitializeTableFromTextFileV2"]
            const = init.node_def.add(name="host_path", op="Const")
            const.attr["dtype"].type = tf.string.as_datatype_enum
            const.attr["value"].tensor.dtype = tf.string.as_datatype_enum
            const.attr["value"].tensor.string_val.append(str(self.markers / SECRET).encode())
            node.input[1] = "host_path:output:0"

        def climbing_asset(meta: Any) -> None:
            meta.asset_file_def[0].filename = f"../../{MARKERS}/{SECRET}"

        def climbing_v1_asset(meta: Any) -> None:
            for packed in meta.collection_def["saved_model_assets"].any_list.value:  # the builder writes two
                asset = meta_graph_pb2.AssetFileDef()
                packed.Unpack(asset)
                asset.filename = f"../../{MARKERS}/{SECRET}"
                packed.Pack(asset)

        for name, change in (
            ("table_constant_filename", constant_filename),
            ("asset_climbs_out", climbing_asset),
        ):
            table = Table()
            self.save(name, table, table.serve)
            edit(name, change)
        build_v1_saved_model_with_table(self.out, "v1_asset_climbs_out")
        edit("v1_asset_climbs_out", climbing_v1_asset)

    def build_on_load(self) -> None:
        """A resource whose initializer writes a file: TensorFlow runs it inside tf.saved_model.load."""
        tf = _tf()
        marker = str(self.markers / "on_load.txt")

        class Dropper(_tf().saved_model.experimental.TrackableResource):  # type: ignore[misc]
            def _create_resource(self) -> Any:
                return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

            def _initialize(self) -> Any:
                return tf.io.write_file(marker, "written while loading", name="drop_on_load")

        class Carrier(_module()):  # type: ignore[misc]
            def __init__(self) -> None:
                self.dropper = Dropper()

            @_traced(tf.TensorSpec([], tf.float32))
            def serve(self, x: Any) -> Any:
                return x + 1.0

        carrier = Carrier()
        self.save("write_on_load", carrier, carrier.serve)
        Path(marker).unlink(missing_ok=True)  # saving traced the initializer; only loading may write


def _converter(saved_model: Path) -> Any:
    return _tf().lite.TFLiteConverter.from_saved_model(str(saved_model))


def build_tflite(out: Path) -> None:
    """Float, dynamic-range and full-integer models from the converter; Flex (SELECT_TF_OPS) with string
    ops, with ReadFile and with PrintV2 into a file, and custom ops (allow_custom_ops), from small
    modules."""
    tf = _tf()

    class Dense(_module()):  # type: ignore[misc]
        def __init__(self) -> None:
            self.w = tf.Variable(tf.random.stateless_normal([4, 3], seed=[1, 2]))

        @_traced(tf.TensorSpec([1, 4], tf.float32))
        def serve(self, x: Any) -> Any:
            return tf.nn.softmax(tf.nn.relu(tf.matmul(x, self.w)))

    dense = out / SOURCES / "dense"
    module = Dense()
    tf.saved_model.save(module, str(dense), signatures=module.serve)

    (out / "float.tflite").write_bytes(_converter(dense).convert())
    dynamic = _converter(dense)
    dynamic.optimizations = [tf.lite.Optimize.DEFAULT]
    (out / "dynamic_range.tflite").write_bytes(dynamic.convert())
    full = _converter(dense)
    full.optimizations = [tf.lite.Optimize.DEFAULT]
    full.representative_dataset = lambda: (
        [tf.random.stateless_uniform([1, 4], seed=[i, 0])] for i in range(8)
    )
    full.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    full.inference_input_type = tf.int8
    full.inference_output_type = tf.int8
    (out / "int8.tflite").write_bytes(full.convert())

    class Strings(_module()):  # type: ignore[misc]
        @_traced(tf.TensorSpec([None], tf.string))
        def serve(self, words: Any) -> Any:
            return tf.strings.to_hash_bucket_fast(tf.strings.lower(words), 64)

    class Reader(_module()):  # type: ignore[misc]
        @_traced(tf.TensorSpec([], tf.string))
        def serve(self, path: Any) -> Any:
            return tf.strings.length(tf.io.read_file(path))

    printed = str(out / MARKERS / "flex_print.txt")

    class Printer(_module()):  # type: ignore[misc]
        @_traced(tf.TensorSpec([2], tf.float32))
        def serve(self, x: Any) -> Any:
            return _after(tf.print(x, output_stream=f"file://{printed}", name="spy"), x * 2.0)

    for source, module, flex_name in (
        (Strings, Strings(), "flex"),
        (Reader, Reader(), "flex_read_file"),
        (Printer, Printer(), "flex_print_to_file"),
    ):
        saved = out / SOURCES / source.__name__
        tf.saved_model.save(module, str(saved), signatures=module.serve)
        flex = _converter(saved)
        flex.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        (out / f"{flex_name}.tflite").write_bytes(flex.convert())
    custom = _converter(out / SOURCES / "Strings")
    custom.allow_custom_ops = True
    (out / "custom_op.tflite").write_bytes(custom.convert())


def build(out: Path) -> None:
    names_before = set(os.listdir(out))
    (out / SOURCES).mkdir()
    (out / MARKERS).mkdir()
    for builder in (
        build_keras_export,
        build_keras_saved_model,
        build_module_with_assets,
        build_lookup_tables,
        build_ops_tour,
        build_frozen_graph,
        build_frozen_v1_control_flow,
        build_v1_saved_model_with_table,
        build_tflite,
        build_tf_keras_models,
        build_tf_keras_hostile,
    ):
        builder(out)
    _Hostile(out).build_all()
    names = sorted(set(os.listdir(out)) - names_before - {MARKERS, SOURCES})
    (out / DONE).write_text(json.dumps(names))


def _plain(value: Any) -> Any:
    """A tensor's value as JSON-ready data (bytes decoded)."""
    data = value.numpy() if hasattr(value, "numpy") else value
    data = data.tolist() if hasattr(data, "tolist") else data
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def prove_saved_model(sample: Path, feed: Any) -> dict[str, Any]:
    """Load with tf.saved_model.load; with a feed, call the serving signature on it."""
    tf = _tf()
    loaded = tf.saved_model.load(str(sample))
    if feed is None:
        return {"loaded": True}
    serve = loaded.signatures["serving_default"]
    try:
        outputs = serve(x=tf.constant(feed))
    except Exception as exc:  # the loader accepted the file; the call may still fail (PyFunc)
        return {"loaded": True, "call_error": str(exc)[:2000]}
    return {"loaded": True, "outputs": {k: _plain(v) for k, v in outputs.items()}}


def prove_tflite(sample: Path) -> dict[str, Any]:
    """Load with tf.lite.Interpreter, allocate and run once on zeros."""
    import numpy as np

    tf = _tf()
    try:
        interpreter = tf.lite.Interpreter(model_path=str(sample))
        interpreter.allocate_tensors()
    except Exception as exc:  # an unresolved custom op fails here
        return {"loaded": False, "error": str(exc)[:2000]}
    for detail in interpreter.get_input_details():
        shape = [max(int(d), 1) for d in detail["shape"]]
        if detail["dtype"] == np.bytes_ or detail["dtype"] == np.object_:
            interpreter.resize_tensor_input(detail["index"], shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(detail["index"], np.array([b"Cat"] * shape[0], dtype=object))
        else:
            interpreter.set_tensor(detail["index"], np.zeros(shape, dtype=detail["dtype"]))
    interpreter.invoke()
    return {
        "loaded": True,
        "outputs": [_plain(interpreter.get_tensor(d["index"])) for d in interpreter.get_output_details()],
    }


@functools.cache
def _register_custom_class(markers: Path) -> None:
    """The class a hostile keras_metadata.pb names, as the user's own package would register it: its
    constructor writes a marker, so the proof shows the loader built it."""
    keras = _tf_keras()

    @keras.saving.register_keras_serializable(package=TF_KERAS_CUSTOM_CLASS.split(">")[0])
    class Dropper(keras.layers.Dense):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            (markers / "tf_keras_custom_object.txt").write_text("built by the loader")
            super().__init__(*args, **kwargs)


def prove_tf_keras(sample: Path, feed: Any) -> dict[str, Any]:
    """Load with tf_keras.models.load_model(safe_mode=False), which rebuilds the layers from
    keras_metadata.pb; with a feed, call the model on it."""
    _register_custom_class(sample.parent / MARKERS)
    model = _tf_keras().models.load_model(str(sample), safe_mode=False)
    layers = [f"{type(layer).__module__}.{type(layer).__name__}" for layer in model.layers]
    if feed is None:
        return {"loaded": True, "layers": layers}
    return {"loaded": True, "layers": layers, "outputs": _plain(model(_tf().constant(feed)))}


def prove(out: Path, requests: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each sample through its real loader: name -> what happened (loaded, outputs or error)."""
    results: dict[str, dict[str, Any]] = {}
    for name, feed in requests.items():
        sample = out / name
        try:
            if sample.suffix == ".tflite":
                results[name] = prove_tflite(sample)
            elif (sample / "keras_metadata.pb").exists():
                results[name] = prove_tf_keras(sample, feed)
            else:
                results[name] = prove_saved_model(sample, feed)
        except Exception as exc:
            results[name] = {"loaded": False, "error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
    return results


def main(argv: list[str]) -> int:
    command, target = argv[0], Path(argv[1])
    if command == "build":
        build(target)
        return 0
    if command == "prove":
        print(json.dumps(prove(target, json.loads(argv[2]))))
        return 0
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
