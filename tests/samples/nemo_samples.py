"""NeMo checkpoints and Hydra configs built in code: a realistic benign .nemo and hostile variants."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import torch

BENIGN_CONFIG = """\
sample_rate: 16000
labels: [' ', a, b, c]
target: nemo.collections.asr.models.ctc_models.EncDecCTCModel
nemo_version: 1.23.0
train_ds:
  manifest_filepath: null
  sample_rate: 16000
  batch_size: 32
  shuffle: true
preprocessor:
  _target_: nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor
  sample_rate: 16000
  normalize: per_feature
  window_size: 0.025
  features: 64
encoder:
  _target_: nemo.collections.asr.modules.ConvASREncoder
  feat_in: 64
  activation: relu
  jasper:
  - filters: 32
    repeat: 1
    kernel: [11]
    stride: [1]
    dilation: [1]
    dropout: 0.0
    residual: false
decoder:
  _target_: nemo.collections.asr.modules.ConvASRDecoder
  feat_in: 32
  num_classes: 4
optim:
  name: adam
  lr: 0.001
  sched:
    name: CosineAnnealing
    warmup_steps: 100
loss:
  _target_: torch.nn.CTCLoss
  blank: 0
"""


def checkpoint_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(4, 2).state_dict(), buffer)
    return buffer.getvalue()


def nemo_bytes(config: str, extra: tuple[tarfile.TarInfo, ...] = (), gz: bool = False) -> bytes:
    """A .nemo as NeMo writes it: ./model_config.yaml and ./model_weights.ckpt in a tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w:") as archive:
        for member, data in (
            ("./model_config.yaml", config.encode()),
            ("./model_weights.ckpt", checkpoint_bytes()),
        ):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra:
            archive.addfile(info)
    return buffer.getvalue()


def write_nemo(directory: Path, config: str, name: str = "model.nemo", **kwargs: object) -> Path:
    path = directory / name
    path.write_bytes(nemo_bytes(config, **kwargs))  # type: ignore[arg-type]
    return path


OS_SYSTEM_CONFIG = BENIGN_CONFIG.replace(
    "loss:\n  _target_: torch.nn.CTCLoss\n  blank: 0\n",
    "loss:\n  _target_: os.system\n  command: touch /tmp/pwned\n",
)
EXEC_ARGS_CONFIG = (
    BENIGN_CONFIG + "hook:\n  _target_: builtins.exec\n  _args_:\n  - import os; os.system('id')\n"
)
DEEP_CONFIG = (
    BENIGN_CONFIG + "a:\n  b:\n    c:\n      d:\n        _target_: subprocess.Popen\n        args: [id]\n"
)
LIST_CONFIG = BENIGN_CONFIG + "callbacks:\n- name: ok\n- _target_: mylab.hooks.Setup\n  level: 3\n"
UNKNOWN_CONFIG = BENIGN_CONFIG.replace("torch.nn.CTCLoss", "mylab.losses.FancyLoss")

HYDRA_YAML = (
    "model:\n  _target_: mylab.models.Net\n  hidden: 8\nrunner:\n  _target_: os.system\n  _args_: [id]\n"
)
