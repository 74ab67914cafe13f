"""Rules about NumPy .npy and .npz files."""

from __future__ import annotations

from modelshield.engine.rules import Rule

RULES: tuple[Rule, ...] = ()
