"""The one ordered tuple of format handlers: most specific first, generic containers and pickle last."""

from __future__ import annotations

from modelshield.formats import compressed, mlflow, numpy, zip
from modelshield.formats.base import FormatHandler

HANDLERS: tuple[FormatHandler, ...] = (
    numpy,
    mlflow,
    zip,
    *compressed.HANDLERS,
)
