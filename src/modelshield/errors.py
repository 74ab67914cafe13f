"""The errors modelshield raises at its seams; each carries a message meant for the user."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelshield.engine.findings import Finding
    from modelshield.engine.result import ScanResult


class ModelShieldError(Exception):
    """Base class: the CLI catches this and prints its message."""


class UsageError(ModelShieldError):
    """The caller asked for something that cannot be done (missing path, bad option)."""


class PolicyError(ModelShieldError):
    """A policy file or value is invalid."""


class UnsafeModelError(ModelShieldError):
    """A model was refused before loading: its scan failed the policy. The message lists why."""

    def __init__(self, message: str, result: ScanResult) -> None:
        super().__init__(message)
        self.result = result

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.result.findings
