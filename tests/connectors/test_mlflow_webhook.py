"""The MLflow webhook receiver: signatures, replays and sizes refused; and against a real `mlflow server`,
registering a malicious version triggers an inventory sync that tags it, with no manual sync."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from tests.connectors.mlflow_server import (
    MlflowServer,
    benign_files,
    free_port,
    malicious_files,
    running_mlflow_server,
)

from modelshield.cli import EXIT_OK, cli
from modelshield.connectors.mlflow_webhook import (
    MAX_BODY_BYTES,
    ModelVersionCreated,
    WebhookReceiver,
    WebhookRejected,
    verify_delivery,
)

SECRET = "s3cret-for-tests"
CREATED = {"entity": "model_version", "action": "created", "data": {"name": "fraud", "version": "4"}}


def signed(
    body: bytes, secret: str = SECRET, timestamp: int | None = None, delivery: str = "d-1"
) -> dict[str, str]:
    """Headers the way MLflow signs a delivery."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
    }


def test_a_signed_fresh_delivery_names_the_new_version() -> None:
    body = json.dumps(CREATED).encode()
    assert verify_delivery(SECRET, signed(body), body) == ModelVersionCreated("fraud", "4", "d-1")
    lowercase = {name.lower(): value for name, value in signed(body).items()}
    assert verify_delivery(SECRET, lowercase, body) == ModelVersionCreated("fraud", "4", "d-1")


def test_other_registry_events_are_ignored() -> None:
    body = json.dumps({"entity": "model_version_tag", "action": "set", "data": {}}).encode()
    assert verify_delivery(SECRET, signed(body), body) is None


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (signed(b"{}", secret="wrong"), "signature does not match"),
        (signed(b"{}", timestamp=int(time.time()) - 3600), "too old"),
        ({"X-MLflow-Timestamp": "1", "X-MLflow-Signature": "v1,AAAA"}, "malformed"),
    ],
)
def test_forged_or_replayed_deliveries_are_refused(headers: dict[str, str], message: str) -> None:
    with pytest.raises(WebhookRejected, match=message):
        verify_delivery(SECRET, headers, b"{}")


def test_a_tampered_body_is_refused() -> None:
    body = json.dumps(CREATED).encode()
    with pytest.raises(WebhookRejected, match="signature does not match"):
        verify_delivery(SECRET, signed(body), body.replace(b'"4"', b'"5"'))


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.fixture
def receiver() -> Iterator[tuple[WebhookReceiver, list[ModelVersionCreated], threading.Event]]:
    seen: list[ModelVersionCreated] = []
    arrived = threading.Event()

    def record(event: ModelVersionCreated) -> None:
        seen.append(event)
        arrived.set()

    running = WebhookReceiver(SECRET, record).start()
    try:
        yield running, seen, arrived
    finally:
        running.stop()


def test_the_receiver_answers_each_kind_of_delivery(
    receiver: tuple[WebhookReceiver, list[ModelVersionCreated], threading.Event],
) -> None:
    running, seen, arrived = receiver
    body = json.dumps(CREATED).encode()
    assert post(running.url, body, signed(body, secret="wrong")) == 401
    assert post(running.url, b"x" * (MAX_BODY_BYTES + 1), signed(b"")) == 413
    other = json.dumps({"entity": "registered_model", "action": "created", "data": {}}).encode()
    assert post(running.url, other, signed(other)) == 204
    assert post(running.url, body, signed(body)) == 202
    assert arrived.wait(10)
    assert seen == [ModelVersionCreated("fraud", "4", "d-1")]


def _await_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline() if ready else ""


def _tagged(
    server: MlflowServer, name: str, versions: list[str], timeout: float
) -> dict[str, dict[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        tags = {v: server.client().get_model_version(name, v).tags for v in versions}
        if all("modelshield.verdict" in t for t in tags.values()) or time.monotonic() > deadline:
            return tags
        time.sleep(1)


def test_the_webhook_command_scans_and_tags_each_new_version_as_it_is_registered(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`modelshield mlflow-webhook` in its own process; MLflow delivers to it; no one runs `sync`."""
    from mlflow.entities.webhook import WebhookEvent

    work = tmp_path_factory.mktemp("webhook")
    private_webhooks = {
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    }
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-webhook"), private_webhooks) as server:
        db, source = f"sqlite:///{work / 'inventory.db'}", f"mlflow+{server.url}"
        assert CliRunner().invoke(cli, ["inventory", "--db", db, "add", source]).exit_code == EXIT_OK
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MODELSHIELD_WEBHOOK_SECRET"] = SECRET
        command = [sys.executable, "-m", "modelshield", "mlflow-webhook", source]
        command += ["--listen", f"127.0.0.1:{port}", "--db", db]
        listener = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        try:
            expected = (
                f"listening on http://127.0.0.1:{port}/ for model_version.created deliveries from {source}"
            )
            assert _await_line(listener, 60) == expected + "\n"
            events = [WebhookEvent("model_version", "created")]
            server.client().create_webhook(
                "modelshield", f"http://127.0.0.1:{port}/", events=events, secret=SECRET
            )
            malicious = server.register("fraud", malicious_files(work)).version
            benign = server.register("fraud", benign_files(work)).version
            tags = _tagged(server, "fraud", [malicious, benign], timeout=120)
        finally:
            listener.send_signal(signal.SIGTERM)
            out, err = listener.communicate(timeout=60)
    assert listener.returncode == EXIT_OK, err
    assert {v: (t.get("modelshield.verdict"), t.get("modelshield.gate")) for v, t in tags.items()} == {
        malicious: ("malicious", "fail"),
        benign: ("clean", "pass"),
    }
    assert sorted(out.splitlines()) == [
        f"fraud {malicious}: scanned, verdict malicious",
        f"fraud {benign}: scanned, verdict clean",
    ]
