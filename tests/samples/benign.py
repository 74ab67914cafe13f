"""Build real benign model files with the real libraries: the false-positive corpus.

Every builder writes tiny, deterministic files (fixed seeds, tiny shapes) into a directory and returns
`BenignFile` records saying how the real library loads each one. Nothing here is scanned content: these
are the files a user's own training code produces, and the scanner must call every one of them clean.
Builders whose library is not installed are skipped by `build_all`.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import os
import pathlib
import pickle
import re
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 0


@dataclass(frozen=True)
class BenignFile:
    """One built file: where it is, what it is, and which real loader opens it.

    `loader` is one of: torch, torchscript, pickle, joblib, numpy, pandas, dill, safetensors, json,
    text. `user_classes` names classes defined in this test module that the file rebuilds (the scanner
    cannot know them, so it reports them as PICKLE-UNKNOWN-CLASS, severity low).
    """

    path: Path
    label: str
    loader: str
    user_classes: tuple[str, ...] = ()


Point = collections.namedtuple("Point", ["x", "y"])


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _tiny_xy(n: int = 40, features: int = 4) -> tuple[Any, Any, Any]:
    import numpy as np

    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(n, features))
    y_class = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    y_reg = x @ np.arange(1, features + 1) + rng.normal(scale=0.1, size=n)
    return x, y_class, y_reg


def _pickle_to(path: Path, obj: Any, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


# --------------------------------------------------------------------------------------------- torch


def _torch_classes() -> tuple[type, type]:
    """Define the torch test modules lazily so this file imports without torch."""
    global MyNet, TinyTraceable
    try:
        return MyNet, TinyTraceable
    except NameError:
        pass
    from torch import nn

    class _MyNet(nn.Module):
        """A user-defined model, as in every training script."""

        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.act = nn.ReLU()
            self.fc2 = nn.Linear(8, 2)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class _TinyTraceable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.bn = nn.BatchNorm2d(2)

        def forward(self, x):
            return self.bn(self.conv(x)).relu().mean()

    _MyNet.__name__ = _MyNet.__qualname__ = "MyNet"
    _TinyTraceable.__name__ = _TinyTraceable.__qualname__ = "TinyTraceable"
    MyNet, TinyTraceable = _MyNet, _TinyTraceable
    return MyNet, TinyTraceable


def __getattr__(name: str) -> Any:
    """Create the torch test classes on first use, so unpicklers find them as module attributes."""
    if name in ("MyNet", "TinyTraceable"):
        return dict(zip(("MyNet", "TinyTraceable"), _torch_classes()))[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _torch_sequential() -> Any:
    from torch import nn

    class_free = nn.Sequential(
        nn.Embedding(10, 4),
        nn.LayerNorm(4),
        nn.Linear(4, 4),
        nn.ReLU(),
        nn.Dropout(0.1),
    )
    return nn.ModuleDict(
        {
            "seq": class_free,
            "conv": nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2)),
            "lstm": nn.LSTM(4, 3, batch_first=True),
            "attn": nn.MultiheadAttention(4, 2),
            "gelu": nn.GELU(),
        }
    )


def build_torch(dest: Path) -> list[BenignFile]:
    import torch

    torch.manual_seed(SEED)
    my_net_cls, traceable_cls = _torch_classes()
    out: list[BenignFile] = []

    def save(name: str, obj: Any, label: str, user: tuple[str, ...] = (), **kw: Any) -> None:
        path = dest / name
        torch.save(obj, path, **kw)
        out.append(BenignFile(path, label, "torch", user))

    model = _torch_sequential()
    save("torch_state_dict.pt", model.state_dict(), "torch state_dict (zip)")
    save("torch_whole_module.pt", model, "torch whole nn.Module built from torch.nn layers")
    my_net = my_net_cls()
    save("torch_user_module.pt", my_net, "torch whole user-defined MyNet", (_qualname(my_net_cls),))
    save(
        "torch_legacy_state_dict.pt",
        model.state_dict(),
        "torch legacy (non-zip) state_dict",
        _use_new_zipfile_serialization=False,
    )
    save(
        "torch_legacy_whole_module.pt",
        model,
        "torch legacy (non-zip) whole module",
        _use_new_zipfile_serialization=False,
    )

    adam = torch.optim.Adam(my_net.parameters(), lr=1e-3)
    sgd = torch.optim.SGD(my_net.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(adam, step_size=1, gamma=0.5)
    loss = my_net(torch.randn(3, 4)).sum()
    loss.backward()
    adam.step()
    sgd.step()
    scheduler.step()
    save(
        "torch_optimizer.pt",
        {"adam": adam.state_dict(), "sgd": sgd.state_dict(), "scheduler": scheduler.state_dict()},
        "torch optimizer + scheduler state_dicts",
    )

    qtensor = torch.quantize_per_tensor(torch.tensor([0.5, -1.0, 2.0]), 0.1, 10, torch.quint8)
    checkpoint = {
        "epoch": 3,
        "loss": 0.125,
        "best": float(loss.detach()),
        "model": my_net.state_dict(),
        "tensors": {
            "f16": torch.ones(2, dtype=torch.float16),
            "bf16": torch.ones(2, dtype=torch.bfloat16),
            "i8": torch.arange(3, dtype=torch.int8),
            "u8": torch.arange(3, dtype=torch.uint8),
            "i64": torch.arange(3),
            "bool": torch.tensor([True, False]),
            "c64": torch.tensor([1 + 2j], dtype=torch.complex64),
            "f64": torch.zeros(1, dtype=torch.float64),
            "qint8": qtensor,
            "param": torch.nn.Parameter(torch.ones(2)),
            "view": torch.arange(6.0).reshape(2, 3)[:, 1],
        },
        "sizes": torch.Size([2, 3]),
        "device": torch.device("cpu"),
        "dtype": torch.float32,
    }
    save("torch_checkpoint.pt", checkpoint, "torch checkpoint dict, many dtypes, quantized")
    save(
        "torch_sparse.pt",
        {"coo": torch.eye(3).to_sparse(), "csr": torch.eye(3).to_sparse_csr()},
        "torch sparse COO and CSR tensors",
    )

    scripted = torch.jit.script(my_net)
    path = dest / "torchscript_scripted.pt"
    torch.jit.save(scripted, str(path))
    out.append(BenignFile(path, "TorchScript torch.jit.script of MyNet", "torchscript"))
    traced = torch.jit.trace(traceable_cls().eval(), torch.randn(1, 1, 5, 5))
    path = dest / "torchscript_traced.pt"
    torch.jit.save(traced, str(path))
    out.append(BenignFile(path, "TorchScript torch.jit.trace of conv+bn", "torchscript"))
    return out


# --------------------------------------------------------------------------------------------- numpy


def build_numpy(dest: Path) -> list[BenignFile]:
    import numpy as np

    rng = np.random.default_rng(SEED)
    out: list[BenignFile] = []
    arrays: dict[str, Any] = {
        "f32": rng.normal(size=(3, 4)).astype(np.float32),
        "f16": np.arange(4, dtype=np.float16),
        "i64": np.arange(5, dtype=np.int64),
        "u8": np.arange(5, dtype=np.uint8),
        "bool": np.array([True, False]),
        "c128": np.array([1 + 2j]),
        "unicode": np.array(["ab", "cde"]),
        "bytes": np.array([b"ab", b"c"]),
        "datetime": np.array(["2024-01-01", "2024-02-03"], dtype="datetime64[D]"),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "structured": np.array(
            [(1, (0.5, 1.5), b"abc"), (2, (2.5, 3.5), b"de")],
            dtype=[("a", "<i4"), ("b", "<f8", (2,)), ("c", "S3")],
        ),
        "bigendian": np.arange(3, dtype=">i4"),
    }
    for name, arr in arrays.items():
        path = dest / f"numpy_{name}.npy"
        np.save(path, arr)
        out.append(BenignFile(path, f"numpy .npy {arr.dtype}", "numpy"))
    path = dest / "numpy_savez.npz"
    np.savez(path, **arrays)
    out.append(BenignFile(path, "numpy .npz (savez)", "numpy"))
    path = dest / "numpy_savez_compressed.npz"
    np.savez_compressed(path, **arrays)
    out.append(BenignFile(path, "numpy .npz (savez_compressed)", "numpy"))
    path = dest / "numpy_object.npy"
    np.save(path, np.array([1, "two", 3.0, None, (4, 5)], dtype=object), allow_pickle=True)
    out.append(BenignFile(path, "numpy object-dtype .npy (pickled after header)", "numpy"))
    path = dest / "numpy_object_savez.npz"
    np.savez(path, obj=np.array([{"k": 1}, [2, 3]], dtype=object), plain=np.arange(3))
    out.append(BenignFile(path, "numpy .npz with an object array", "numpy"))
    data = {
        "arr": arrays["f32"],
        "structured": arrays["structured"],
        "datetime": arrays["datetime"],
        "scalars": [np.float64(1.5), np.int32(7), np.bool_(True), np.str_("s"), np.datetime64("2024-01-01")],
        "dtype": np.dtype("float32"),
        "struct_dtype": arrays["structured"].dtype,
        "masked": np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]),
        "matrix_free_record": np.rec.array([(1, 2.0)], dtype=[("x", "i4"), ("y", "f8")]),
    }
    out.extend(
        BenignFile(
            _pickle_to(dest / f"numpy_pickled_p{protocol}.pkl", data, protocol),
            f"numpy arrays, scalars, dtypes pickled (protocol {protocol})",
            "pickle",
        )
        for protocol in (2, 5)
    )
    return out


# ------------------------------------------------------------------------------------------- sklearn


def sklearn_estimators() -> dict[str, Any]:
    """A dozen common scikit-learn estimators fitted on tiny data."""
    import numpy as np
    import pandas as pd
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeRegressor

    x, y, y_reg = _tiny_xy()
    frame = pd.DataFrame(
        {"num": x[:, 0], "num2": x[:, 1], "cat": np.where(x[:, 2] > 0, "hi", "lo")},
    )
    column_pipeline = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), ["num", "num2"]),
                        ("onehot", OneHotEncoder(handle_unknown="ignore"), ["cat"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    )
    texts = ["a tiny model", "a safe model", "tiny tensors only", "model weights"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "logistic_regression": LogisticRegression().fit(x, y),
            "random_forest": RandomForestClassifier(n_estimators=3, max_depth=3, random_state=SEED).fit(x, y),
            "gradient_boosting": GradientBoostingClassifier(n_estimators=3, random_state=SEED).fit(x, y),
            "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=3, random_state=SEED).fit(x, y),
            "svc": SVC(probability=False, random_state=SEED).fit(x, y),
            "kmeans": KMeans(n_clusters=2, n_init=1, random_state=SEED).fit(x),
            "pca": PCA(n_components=2, random_state=SEED).fit(x),
            "scaler_pipeline": Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]).fit(
                x, y
            ),
            "column_transformer": column_pipeline.fit(frame, y),
            "decision_tree_regressor": DecisionTreeRegressor(max_depth=3, random_state=SEED).fit(x, y_reg),
            "mlp": MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=SEED).fit(x, y),
            "isolation_forest": IsolationForest(n_estimators=3, random_state=SEED).fit(x),
            "tfidf": TfidfVectorizer().fit(texts),
            "label_encoder": LabelEncoder().fit(["cat", "dog", "cat", "bird"]),
        }


JOBLIB_COMPRESSORS = ("zlib", "gzip", "bz2", "xz", "lzma", "lz4")


def build_sklearn(dest: Path) -> list[BenignFile]:
    import joblib
    import numpy as np

    out: list[BenignFile] = []
    estimators = sklearn_estimators()
    for name, est in estimators.items():
        out.append(
            BenignFile(_pickle_to(dest / f"sklearn_{name}.pkl", est), f"sklearn {name} (pickle)", "pickle")
        )
    bundle = {
        "forest": estimators["random_forest"],
        "pipeline": estimators["column_transformer"],
        "tfidf": estimators["tfidf"],
        "array": np.arange(12.0).reshape(3, 4),
        "objects": np.array(["a", 1], dtype=object),
    }
    path = dest / "sklearn_bundle.joblib"
    joblib.dump(bundle, path)
    out.append(BenignFile(path, "sklearn bundle (joblib, uncompressed)", "joblib"))
    for compressor in JOBLIB_COMPRESSORS:
        if compressor == "lz4":
            try:
                import lz4  # noqa: F401
            except ImportError:
                continue
        path = dest / f"sklearn_bundle_{compressor}.joblib"
        joblib.dump(bundle, path, compress=(compressor, 3))
        out.append(BenignFile(path, f"sklearn bundle (joblib, {compressor})", "joblib"))
    return out


# ------------------------------------------------------------------------------------ pandas / scipy


def _frame() -> Any:
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {
            "i": np.arange(4, dtype=np.int64),
            "f": np.linspace(0.0, 1.0, 4),
            "when": pd.date_range("2024-01-01", periods=4, freq="D"),
            "when_tz": pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC"),
            "delta": pd.to_timedelta(np.arange(4), unit="s"),
            "cat": pd.Categorical(["a", "b", "a", "c"]),
            "s": pd.array(["w", "x", None, "z"], dtype="string"),
            "obj": ["p", "q", "r", "s"],
            "flag": [True, False, True, False],
            "nullable": pd.array([1, None, 3, 4], dtype="Int64"),
            "period": pd.period_range("2024-01", periods=4, freq="M"),
        },
        index=pd.Index(["r0", "r1", "r2", "r3"], name="row"),
    )


def build_pandas(dest: Path) -> list[BenignFile]:
    import pandas as pd

    out: list[BenignFile] = []
    frame = _frame()
    series = pd.Series([1.5, 2.5, 3.5], index=pd.date_range("2024-01-01", periods=3), name="v")
    multi = frame.set_index(["obj", "i"])[["f"]]
    interval = pd.Series(pd.interval_range(0, 3))
    path = dest / "pandas_frame.pkl"
    frame.to_pickle(path)
    out.append(BenignFile(path, "pandas DataFrame (to_pickle)", "pandas"))
    path = dest / "pandas_frame.pkl.gz"
    frame.to_pickle(path)
    out.append(BenignFile(path, "pandas DataFrame (to_pickle, gzip)", "pandas"))
    path = dest / "pandas_series.pkl"
    series.to_pickle(path)
    out.append(BenignFile(path, "pandas Series with DatetimeIndex (to_pickle)", "pandas"))
    obj = {"frame": frame, "series": series, "multi": multi, "interval": interval}
    out.extend(
        BenignFile(
            _pickle_to(dest / f"pandas_plain_p{protocol}.pkl", obj, protocol),
            f"pandas objects (pickle protocol {protocol})",
            "pickle",
        )
        for protocol in (2, 5)
    )
    return out


def build_scipy(dest: Path) -> list[BenignFile]:
    import numpy as np
    from scipy import sparse

    dense = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 3.0]])
    obj = {
        "csr": sparse.csr_matrix(dense),
        "csc": sparse.csc_matrix(dense),
        "coo": sparse.coo_matrix(dense),
        "lil": sparse.lil_matrix(dense),
        "dok": sparse.dok_matrix(dense),
        "csr_array": sparse.csr_array(dense),
        "coo_array": sparse.coo_array(dense),
    }
    path = _pickle_to(dest / "scipy_sparse.pkl", obj)
    return [BenignFile(path, "scipy.sparse matrices and arrays", "pickle")]


# ---------------------------------------------------------------------------------- xgboost/lightgbm


def build_boosters(dest: Path) -> list[BenignFile]:
    import joblib

    x, y, y_reg = _tiny_xy()
    out: list[BenignFile] = []
    models: dict[str, Any] = {}
    try:
        import xgboost

        models["xgboost_classifier"] = xgboost.XGBClassifier(
            n_estimators=3, max_depth=2, random_state=SEED, n_jobs=1
        ).fit(x, y)
        models["xgboost_regressor"] = xgboost.XGBRegressor(
            n_estimators=3, max_depth=2, random_state=SEED, n_jobs=1
        ).fit(x, y_reg)
    except ImportError:
        pass
    try:
        import lightgbm

        models["lightgbm_classifier"] = lightgbm.LGBMClassifier(
            n_estimators=3, num_leaves=4, min_child_samples=2, random_state=SEED, verbose=-1, n_jobs=1
        ).fit(x, y)
        models["lightgbm_regressor"] = lightgbm.LGBMRegressor(
            n_estimators=3, num_leaves=4, min_child_samples=2, random_state=SEED, verbose=-1, n_jobs=1
        ).fit(x, y_reg)
    except ImportError:
        pass
    for name, model in models.items():
        out.append(BenignFile(_pickle_to(dest / f"{name}.pkl", model), f"{name} (pickle)", "pickle"))
        path = dest / f"{name}.joblib"
        joblib.dump(model, path)
        out.append(BenignFile(path, f"{name} (joblib)", "joblib"))
    return out


# -------------------------------------------------------------------------------------- transformers


def build_transformers(dest: Path) -> list[BenignFile]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer, TrainingArguments

    torch.manual_seed(SEED)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, vocab_size=99
    )
    model = BertModel(config).eval()
    out: list[BenignFile] = []
    bin_dir = dest / "hf_bert_bin"
    model.save_pretrained(bin_dir, safe_serialization=False)
    if not (bin_dir / "pytorch_model.bin").exists():
        # transformers 5 always writes safetensors; 4.x wrote this file with exactly this call
        torch.save(model.state_dict(), bin_dir / "pytorch_model.bin")
        (bin_dir / "model.safetensors").unlink(missing_ok=True)
    st_dir = dest / "hf_bert_safetensors"
    model.save_pretrained(st_dir, safe_serialization=True)
    for directory, kind in ((bin_dir, "bin"), (st_dir, "safetensors")):
        for path in sorted(directory.iterdir()):
            loaders = {".bin": "torch", ".safetensors": "safetensors", ".json": "json"}
            loader = loaders.get(path.suffix, "text")
            out.append(BenignFile(path, f"transformers BERT save_pretrained ({kind}): {path.name}", loader))

    try:  # TrainingArguments needs `accelerate` (transformers[torch]); without it there is no such file
        args = TrainingArguments(output_dir=str(dest / "hf_out"), report_to=[], seed=SEED, use_cpu=True)
    except ImportError:
        args = None
    if args is not None:
        path = dest / "training_args.bin"
        torch.save(args, path)
        out.append(BenignFile(path, "transformers training_args.bin", "torch"))

    vocab = dest / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "tiny", "model", "##s"]) + "\n")
    tok_dir = dest / "hf_tokenizer"
    BertTokenizer(str(vocab)).save_pretrained(tok_dir)
    for path in sorted(tok_dir.iterdir()):
        loader = "json" if path.suffix == ".json" else "text"
        out.append(BenignFile(path, f"transformers tokenizer: {path.name}", loader))
    return out


# -------------------------------------------------------------------------------- dill / cloudpickle


def _plain_data() -> dict[str, Any]:
    import numpy as np

    return {
        "ints": [1, 2, 3],
        "nested": {"a": (1.5, "b"), "c": {4, 5}},
        "array": np.arange(6.0).reshape(2, 3),
        "types": [int, float, str, type(None)],
    }


def build_dill_cloudpickle(dest: Path) -> list[BenignFile]:
    out: list[BenignFile] = []
    from sklearn.linear_model import LogisticRegression

    x, y, _ = _tiny_xy()
    data = _plain_data()
    data["model"] = LogisticRegression().fit(x, y)
    try:
        import dill

        path = dest / "dill_data.pkl"
        with path.open("wb") as fh:
            dill.dump(data, fh)
        out.append(BenignFile(path, "dill dump of plain data and a sklearn model", "dill"))
        path = dest / "dill_data_recurse.pkl"
        with path.open("wb") as fh:
            dill.dump(data, fh, recurse=True, byref=False, protocol=2)
        out.append(BenignFile(path, "dill dump (recurse, protocol 2) of plain data", "dill"))
    except ImportError:
        pass
    try:
        import cloudpickle

        path = dest / "cloudpickle_data.pkl"
        with path.open("wb") as fh:
            cloudpickle.dump(data, fh)
        out.append(BenignFile(path, "cloudpickle dump of plain data and a sklearn model", "pickle"))
    except ImportError:
        pass
    return out


# ---------------------------------------------------------------------------------------- stdlib


def stdlib_data() -> dict[str, Any]:
    """Builtins and standard-library data types, nothing that carries code."""
    return {
        "none": None,
        "bools": [True, False],
        "int_big": 2**80,
        "floats": [1.5, float("inf"), -0.0],
        "complex": complex(1, -2),
        "str": "text ✓",
        "bytes": b"\x00\x01bytes",
        "bytearray": bytearray(b"abc"),
        "tuple": (1, (2, 3)),
        "set": {1, 2},
        "frozenset": frozenset({"a"}),
        "range": range(0, 10, 2),
        "slice": slice(1, 5, 2),
        "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
        "naive": datetime.datetime(2024, 1, 2),
        "date": datetime.date(2024, 1, 2),
        "time": datetime.time(12, 30),
        "timedelta": datetime.timedelta(days=1, seconds=2),
        "tz": datetime.timezone(datetime.timedelta(hours=2), "X"),
        "decimal": decimal.Decimal("1.25"),
        "fraction": fractions.Fraction(1, 3),
        "ordered": collections.OrderedDict([("a", 1), ("b", 2)]),
        "defaultdict": collections.defaultdict(list, {"k": [1]}),
        "counter": collections.Counter("abca"),
        "deque": collections.deque([1, 2], maxlen=5),
        "enum": re.RegexFlag.IGNORECASE,
        "uuid": uuid.UUID(int=SEED + 1),
        "path": pathlib.PurePosixPath("models/weights.bin"),
        "windows_path": pathlib.PureWindowsPath("C:/models/w.bin"),
        "builtin_types": [int, str, list, dict],
    }


def build_stdlib(dest: Path) -> list[BenignFile]:
    out: list[BenignFile] = []
    data = stdlib_data()
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        out.append(
            BenignFile(
                _pickle_to(dest / f"stdlib_p{protocol}.pkl", data, protocol),
                f"builtins and stdlib data (protocol {protocol})",
                "pickle",
            )
        )
        out.append(
            BenignFile(
                _pickle_to(dest / f"stdlib_namedtuple_p{protocol}.pkl", [Point(1, 2)], protocol),
                f"namedtuple defined in a test module (protocol {protocol})",
                "pickle",
                (_qualname(Point),),
            )
        )
    return out


BUILDERS: dict[str, Callable[[Path], list[BenignFile]]] = {
    "stdlib": build_stdlib,
    "numpy": build_numpy,
    "torch": build_torch,
    "sklearn": build_sklearn,
    "pandas": build_pandas,
    "scipy": build_scipy,
    "boosters": build_boosters,
    "transformers": build_transformers,
    "dill_cloudpickle": build_dill_cloudpickle,
}


def build_all(dest: Path, only: tuple[str, ...] = ()) -> list[BenignFile]:
    """Build every sample whose library is installed; returns them in a stable order."""
    dest.mkdir(parents=True, exist_ok=True)
    files: list[BenignFile] = []
    for name, builder in BUILDERS.items():
        if only and name not in only:
            continue
        sub = dest / name
        sub.mkdir(exist_ok=True)
        try:
            files.extend(builder(sub))
        except ImportError:
            continue
    return files


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "benign_corpus")
    for f in build_all(target, tuple(sys.argv[2:])):
        print(f"{f.loader:12} {f.path}  # {f.label}")
