"""The MLflow webhook receiver: signatures, replays and sizes refused; and against a real `mlflow server`,
registering a malicious version triggers an inventory sync that tags it, with no manual sync."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from tests.connectors.mlflow_server import malicious_files, running_mlflow_server

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


def test_a_new_version_registered_in_mlflow_is_scanned_and_tagged_without_a_manual_sync(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from mlflow.entities.webhook import WebhookEvent

    from modelshield.inventory.schema import Source
    from modelshield.inventory.store import Inventory, utcnow
    from modelshield.inventory.sync import SyncOptions, sync_inventory

    work = tmp_path_factory.mktemp("webhook")
    private_webhooks = {
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    }
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-webhook"), private_webhooks) as server:
        source = f"mlflow+{server.url}"
        inventory = Inventory.open(f"sqlite:///{work / 'inventory.db'}")
        with inventory.session() as session:
            session.add(Source(kind="models", address=source, added_at=utcnow()))
            session.commit()
        synced = threading.Event()
        outcomes: list[tuple[str, str, str | None]] = []

        def sync_source(event: ModelVersionCreated) -> None:
            report = sync_inventory(inventory, SyncOptions(sources=(source,)))
            outcomes.extend(
                (o.model, o.version, o.verdict) for o in report.outcomes if o.model == event.model
            )
            synced.set()

        receiver = WebhookReceiver(SECRET, sync_source).start()
        try:
            server.client().create_webhook(
                "modelshield", receiver.url, events=[WebhookEvent("model_version", "created")], secret=SECRET
            )
            version = server.register("fraud", malicious_files(work)).version
            assert synced.wait(120), f"no delivery arrived; receiver errors: {receiver.errors}"
        finally:
            receiver.stop()
            inventory.close()
        assert receiver.errors == []
        assert outcomes == [("fraud", version, "malicious")]
        tags = server.client().get_model_version("fraud", version).tags
        assert (tags["modelshield.verdict"], tags["modelshield.gate"]) == ("malicious", "fail")
