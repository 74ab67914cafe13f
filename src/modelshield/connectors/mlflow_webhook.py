"""Receiver for MLflow 3 registry webhooks: a `model_version.created` delivery, once its HMAC signature and
timestamp check out, hands the new version to a callback (e.g. an inventory sync of that source)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from modelshield.connectors.base import SourceError

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
MAX_BODY_BYTES = 64 * 1024
MAX_AGE_SECONDS = 300
_MAX_PENDING = 1000
CREATED_EVENT = ("model_version", "created")


class WebhookRejected(SourceError):
    """A delivery that is not signed with the shared secret, is too old, or is not a registry event."""


@dataclass(frozen=True)
class ModelVersionCreated:
    """The event modelshield acts on: a new version of a registered model."""

    model: str
    version: str
    delivery_id: str


def verify_delivery(
    secret: str, headers: dict[str, str], body: bytes, now: float | None = None
) -> ModelVersionCreated | None:
    """Check the signature MLflow computes (HMAC-SHA256 of `<delivery id>.<timestamp>.<body>` with the
    webhook's secret) and the timestamp's age; return the new version, or None for any other event."""
    lowered = {name.lower(): value for name, value in headers.items()}
    delivery_id = lowered.get(DELIVERY_ID_HEADER.lower(), "")
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    version, _, signature = lowered.get(SIGNATURE_HEADER.lower(), "").partition(",")
    if not delivery_id or not timestamp.isdigit() or version != SIGNATURE_VERSION:
        raise WebhookRejected("missing or malformed MLflow webhook headers")
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, signature):
        raise WebhookRejected("the webhook signature does not match the shared secret")
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE_SECONDS:
        raise WebhookRejected("the webhook delivery is too old (or from the future); refusing a replay")
    try:
        event: Any = json.loads(body)
    except ValueError as error:
        raise WebhookRejected(f"the webhook body is not JSON: {error}") from None
    if not isinstance(event, dict) or (event.get("entity"), event.get("action")) != CREATED_EVENT:
        return None
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data.get("version"):
        raise WebhookRejected("a model_version.created delivery without a model name and version")
    return ModelVersionCreated(data["name"], str(data["version"]), delivery_id)


class WebhookReceiver:
    """An HTTP endpoint for MLflow webhooks. Deliveries are answered at once (202) and their events run
    one at a time on a worker thread, so a long scan never makes MLflow time out and retry."""

    def __init__(
        self,
        secret: str,
        on_version: Callable[[ModelVersionCreated], None],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not secret:
            raise ValueError("a webhook receiver needs the webhook's secret")
        self._secret = secret
        self._on_version = on_version
        self._events: queue.Queue[ModelVersionCreated | None] = queue.Queue(maxsize=_MAX_PENDING)
        self.errors: list[str] = []
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="mlflow-webhook-http", daemon=True),
            threading.Thread(target=self._work, name="mlflow-webhook-worker", daemon=True),
        ]

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> WebhookReceiver:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, finish the event in progress and drop nothing already accepted."""
        self._server.shutdown()
        self._server.server_close()
        self._events.put(None)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while (event := self._events.get()) is not None:
            self._handle(event)

    def _handle(self, event: ModelVersionCreated) -> None:
        try:
            self._on_version(event)
        except Exception as error:  # one failed scan must not stop the receiver
            self.errors.append(f"{event.model} {event.version}: {error}")

    def _accept(self, headers: dict[str, str], body: bytes) -> HTTPStatus:
        try:
            event = verify_delivery(self._secret, headers, body)
        except WebhookRejected:
            return HTTPStatus.UNAUTHORIZED
        if event is None:
            return HTTPStatus.NO_CONTENT
        try:
            self._events.put_nowait(event)
        except queue.Full:
            return HTTPStatus.SERVICE_UNAVAILABLE
        return HTTPStatus.ACCEPTED

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
                length = self.headers.get("Content-Length", "")
                if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                    self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                    return
                body = self.rfile.read(int(length))
                self._answer(receiver._accept(dict(self.headers.items()), body))

            def _answer(self, status: HTTPStatus) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's signature
                """Deliveries are not logged to stderr."""

        return Handler
