"""Rules about containers: archives and compressed streams (filled in by the archive handlers)."""

from __future__ import annotations

from modelshield.engine.rules import Rule

RULES: tuple[Rule, ...] = ()
