"""A real `mlflow server` for connector and end-to-end tests: SQLite backend and proxied artifacts in a
temp dir, started on a free loopback port and stopped (with its worker processes) in teardown; and
helpers that register model versions with real artifacts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.samples import pickles, torch_samples

START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 20.0
EXPERIMENT = "modelshield-tests"


@dataclass(frozen=True)
class MlflowServer:
    """A running tracking server and the directory that holds its database, artifacts and log."""

    url: str
    root: Path

    def client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)

    def register(self, name: str, files: dict[str, bytes], aliases: tuple[str, ...] = ()) -> Any:
        """Log `files` as a run's `model` artifacts and register them as the next version of `name`."""
        client = self.client()
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
        run = client.create_run(experiment_id)
        staging = self.root / "staging" / run.info.run_id
        for path, body in files.items():
            (staging / path).parent.mkdir(parents=True, exist_ok=True)
            (staging / path).write_bytes(body)
        client.log_artifacts(run.info.run_id, str(staging), artifact_path="model")
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        for alias in aliases:
            client.set_registered_model_alias(name, alias, version.version)
        return client.get_model_version(name, version.version)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def running_mlflow_server(root: Path, extra_env: dict[str, str] | None = None) -> Iterator[MlflowServer]:
    """`mlflow server` in its own process group, so teardown stops the uvicorn workers it spawns too."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env.update(extra_env or {})
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    log_path = root / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start:\n{log_path.read_text(errors='replace')[-4000:]}"
                )
            time.sleep(0.5)
        yield MlflowServer(url, root)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            # The group may outlive its leader for a moment; make sure no worker stays behind.
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


def benign_files(work: Path, config: bytes = b'{"model_type": "tiny"}\n') -> dict[str, bytes]:
    """A torch state dict and a config, as a training run would log them."""
    return {"model.pt": torch_samples.state_dict_pt(work).read_bytes(), "config.json": config}


def malicious_files(work: Path) -> dict[str, bytes]:
    """A pickle one folder down whose loading would run a shell command (it only touches a marker)."""
    return {"data/model.pkl": pickles.os_system(str(work / "marker")), "config.json": b"{}\n"}
