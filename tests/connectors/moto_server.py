"""An S3-compatible moto server on loopback for connector tests, with fake credentials set only while it
runs and a fresh bucket per test module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class S3Store:
    """A running moto server: its endpoint, one bucket made for the caller, and a client to fill it."""

    endpoint_url: str
    bucket: str
    client: Any

    def put(self, key: str, body: bytes) -> str:
        """Store an object and return its ETag (quotes stripped) as the listing reports it."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return str(self.client.head_object(Bucket=self.bucket, Key=key)["ETag"]).strip('"')


@pytest.fixture(scope="module")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    import boto3
    from moto.server import ThreadedMotoServer

    config_dir = tmp_path_factory.mktemp("aws-config")
    with pytest.MonkeyPatch.context() as env:
        # Fake credentials, and no profile or config file of the machine's user, only while moto runs.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", str(config_dir / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config_dir / "credentials"))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            client = boto3.session.Session().client("s3", endpoint_url=endpoint)
            bucket = f"models-{uuid.uuid4().hex[:12]}"
            client.create_bucket(Bucket=bucket)
            yield S3Store(endpoint, bucket, client)
        finally:
            server.stop()
