"""Connectors to where models live. `connector_for(address)` picks one by the address's scheme and imports
it (and its client library) only then."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from modelshield.connectors.base import (
    Connector,
    DownloadBudget,
    DownloadTooLarge,
    RemoteFile,
    SourceError,
    VersionRef,
)

__all__ = [
    "Connector",
    "ConnectorSettings",
    "DownloadBudget",
    "DownloadTooLarge",
    "RemoteFile",
    "SourceError",
    "VersionRef",
    "connector_for",
    "is_remote_address",
]

# scheme (the part of an address before "://" or ":/", and before any "+") -> module implementing it.
_MODULES = {
    "hf": "modelshield.connectors.huggingface",
    "models": "modelshield.connectors.mlflow",
    "mlflow": "modelshield.connectors.mlflow",
    "s3": "modelshield.connectors.s3",
    "file": "modelshield.connectors.local",
}
_REMOTE_SCHEMES = frozenset({"hf", "models", "mlflow", "s3"})


@dataclass(frozen=True)
class ConnectorSettings:
    """Where the registries are and how to reach them; unset values fall back to each client's own
    environment variables (HF_ENDPOINT, HF_TOKEN, MLFLOW_TRACKING_URI, AWS_ENDPOINT_URL, ...)."""

    mlflow_tracking_uri: str | None = None
    hf_endpoint: str | None = None
    hf_token: str | None = None
    s3_endpoint_url: str | None = None

    @classmethod
    def from_environment(cls, **overrides: str | None) -> ConnectorSettings:
        values = {
            "mlflow_tracking_uri": os.environ.get("MLFLOW_TRACKING_URI"),
            "hf_endpoint": os.environ.get("HF_ENDPOINT"),
            "hf_token": os.environ.get("HF_TOKEN"),
            "s3_endpoint_url": os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def address_scheme(address: str) -> str | None:
    """`hf` for `hf://org/name`, `models` for `models:/name/1`, `mlflow` for `mlflow+http://host`;
    None for a plain path."""
    head, sep, _ = address.partition(":")
    if not sep or not head or "/" in head or "\\" in head or len(head) == 1:  # "C:" is a drive
        return None
    return head.split("+", 1)[0].lower()


def is_remote_address(address: str) -> bool:
    """True when `modelshield scan` must fetch the address through a connector first."""
    return address_scheme(address) in _REMOTE_SCHEMES


def connector_for(address: str, settings: ConnectorSettings | None = None) -> Connector:
    """The connector that reads `address` (a version address such as `hf://org/name@rev`, or a source
    address such as `mlflow+http://host:5000`, `s3://bucket/prefix` or a local folder)."""
    scheme = address_scheme(address) or "file"
    module_name = _MODULES.get(scheme)
    if module_name is None:
        known = ", ".join(sorted(_MODULES))
        raise SourceError(f"unknown source scheme {scheme!r} in {address!r}; known: {known}")
    module = importlib.import_module(module_name)
    connector: Connector = module.connector_for(address, settings or ConnectorSettings.from_environment())
    return connector
