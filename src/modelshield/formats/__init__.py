"""The one ordered tuple of format handlers: most specific first, generic containers and pickle last.

Each is imported on first use, and offered a blob only when its prefilter lets the content through
(`formats/registry.py`): a scan imports the parsers its files need and no others.
"""

from __future__ import annotations

from modelshield.formats import signatures as sig
from modelshield.formats.registry import LazyHandler, check_unique_names

_M = "modelshield.formats."

HANDLERS: tuple[LazyHandler, ...] = check_unique_names(
    (
        LazyHandler("placeholder", _M + "placeholder", could_be=sig.magic(*sig.PLACEHOLDER_PREFIXES)),
        LazyHandler("numpy", _M + "numpy", could_be=sig.magic(sig.NUMPY_MAGIC)),
        LazyHandler("mlflow", _M + "mlflow", could_be=sig.mlflow_text),
        LazyHandler("nemo", _M + "nemo", could_be=sig.tar_header),
        LazyHandler("hydra-config", _M + "nemo", "HYDRA_CONFIG", could_be=sig.hydra_text),
        LazyHandler("hf-config", _M + "hf_config", could_be=sig.json_object),
        LazyHandler("hf-remote-code", _M + "hf_config", "REMOTE_CODE_SOURCE", could_be=sig.remote_code_text),
        LazyHandler("torchserve", _M + "torchserve", could_be=sig.zip_like),
        LazyHandler("skops", _M + "skops", could_be=sig.zip_like),
        LazyHandler("torchscript", _M + "torchscript", could_be=sig.zip_like),
        LazyHandler("pytorch", _M + "pytorch_zip", could_be=sig.zip_like),
        LazyHandler("pytorch-legacy", _M + "pytorch_legacy", could_be=sig.pickle_start),
        LazyHandler("keras", _M + "keras", could_be=sig.zip_like),
        LazyHandler("zip", _M + "zip", could_be=sig.zip_like),
        LazyHandler("tar", _M + "tar", could_be=sig.tar_header),
        LazyHandler("7z", _M + "sevenzip", could_be=sig.magic(sig.SEVENZIP_MAGIC)),
        # compressed.HANDLERS, in its order: unambiguous magics first, the heuristic checks last
        LazyHandler("gzip", _M + "compressed", "GZIP", could_be=sig.magic(sig.GZIP_MAGIC)),
        LazyHandler("bzip2", _M + "compressed", "BZIP2", could_be=sig.magic(sig.BZIP2_MAGIC)),
        LazyHandler("xz", _M + "compressed", "XZ", could_be=sig.magic(sig.XZ_MAGIC)),
        LazyHandler("zstd", _M + "compressed", "ZSTD", could_be=sig.magic(sig.ZSTD_MAGIC)),
        LazyHandler("joblib-zfile", _M + "compressed", "JOBLIB_ZFILE", could_be=sig.magic(sig.ZFILE_PREFIX)),
        LazyHandler("lzma", _M + "compressed", "LZMA_ALONE", could_be=sig.lzma_alone_header),
        LazyHandler("zlib", _M + "compressed", "ZLIB", could_be=sig.zlib_stream),
        LazyHandler("safetensors", _M + "safetensors", could_be=sig.safetensors_header),
        LazyHandler("gguf", _M + "gguf", could_be=sig.magic(*sig.GGUF_MAGICS)),
        LazyHandler("onnx", _M + "onnx", could_be=sig.onnx_model_start),
        LazyHandler("tensorflow", _M + "tensorflow", could_be=sig.magic(b"\x08", b"\x0a")),
        LazyHandler("keras-metadata", _M + "keras_metadata", could_be=sig.tf_keras_metadata),
        LazyHandler("tflite", _M + "tflite", could_be=sig.magic(sig.TFLITE_IDENTIFIER, at=4)),
        LazyHandler("hdf5", _M + "hdf5", could_be=sig.hdf5_superblock),
        LazyHandler("flax-msgpack", _M + "flax_msgpack", could_be=sig.first_byte_in(sig.MSGPACK_MAPS)),
        LazyHandler("xml-model", _M + "xml_models", could_be=sig.markup),
        LazyHandler("executable", _M + "executable", could_be=sig.magic(*sig.EXECUTABLE_MAGICS)),
        LazyHandler("pickle", _M + "pickle"),
    )
)
