"""Rules about PyTorch files: zip checkpoints, legacy formats, TorchScript, TorchServe."""

from __future__ import annotations

from modelshield.engine.rules import Rule

RULES: tuple[Rule, ...] = ()
