"""The `modelshield mlflow-webhook` command: listen for MLflow's model-version-created webhooks and run the
inventory sync of that registry on each, so every new version is scanned and tagged as it is registered."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import click

SECRET_VARIABLE = "MODELSHIELD_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret


def _listen_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.UsageError(f"--listen expects HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


@click.command("mlflow-webhook")
@click.argument("source", metavar="mlflow+URI")
@click.option(
    "--listen", default="127.0.0.1:8765", show_default=True, help="Receive deliveries on HOST:PORT."
)
@click.option("--db", "db_url", default=None, metavar="URL", help="Inventory database URL.")
@click.option("--max-bytes", type=click.IntRange(min=1), default=None, help="Download budget per version.")
def mlflow_webhook_command(source: str, listen: str, db_url: str | None, max_bytes: int | None) -> None:
    """Sync the inventory source mlflow+URI each time MLflow delivers a model_version.created webhook.

    Create the webhook in MLflow (events: model_version.created) with a secret, and give the same secret
    in MODELSHIELD_WEBHOOK_SECRET: deliveries that are not signed with it, or are older than five
    minutes, are refused. Runs until interrupted (Ctrl-C or SIGTERM)."""
    from modelshield.connectors import DownloadBudget
    from modelshield.connectors.mlflow_webhook import ModelVersionCreated, WebhookReceiver
    from modelshield.inventory.store import Inventory, find_source
    from modelshield.inventory.sync import SyncOptions, sync_inventory

    secret = os.environ.get(SECRET_VARIABLE, "")
    if not secret:
        raise click.UsageError(
            f"set {SECRET_VARIABLE} to the secret the MLflow webhook signs deliveries with"
        )
    host, port = _listen_address(listen)
    inventory = Inventory.open(db_url)
    with inventory.session() as session:
        if find_source(session, source) is None:
            inventory.close()
            raise click.UsageError(
                f"{source} is not in the inventory; run `modelshield inventory add {source}`"
            )
    budget = DownloadBudget(max_bytes=max_bytes) if max_bytes else DownloadBudget()
    options = SyncOptions(budget=budget, sources=(source,))

    def sync_on_delivery(event: ModelVersionCreated) -> None:
        report = sync_inventory(inventory, options)
        for outcome in report.outcomes:
            if outcome.status != "unchanged":
                click.echo(f"{outcome.model} {outcome.version}: {outcome.status}, verdict {outcome.verdict}")
        for problem in (*report.source_errors, *report.warnings):
            click.echo(f"modelshield: warning: {problem}", err=True)

    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous: dict[int, Any] = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    receiver = WebhookReceiver(secret, sync_on_delivery, host, port).start()
    try:
        click.echo(f"listening on {receiver.url} for model_version.created deliveries from {source}")
        while not stopping.wait(1.0):
            pass
    finally:
        receiver.stop()
        inventory.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for failure in receiver.errors:
        click.echo(f"modelshield: error: {failure}", err=True)
