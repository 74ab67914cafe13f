"""A small Hugging-Face-Hub-compatible HTTP server for tests: model info, file trees, commits, models by
author and `resolve` downloads (with the headers `hf_hub_download` reads), for repositories built in code."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

# Loading this would run `os.system("true")`; the scanner must flag it without loading it.
MALICIOUS_PICKLE = b"cos\nsystem\n(S'true'\ntR."
CONFIG_JSON = b'{"model_type": "demo", "hidden_size": 2}\n'


def tiny_safetensors() -> bytes:
    """One float32 tensor of two values, laid out as the safetensors writer lays it out."""
    header = json.dumps({"weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + struct.pack("<2f", 0.5, -1.5)


@dataclass(frozen=True)
class HubFile:
    """A file of one commit. `served` replaces what the server sends (a lying or tampered server) while
    the listing still describes `content`."""

    path: str
    content: bytes
    lfs: bool = False
    served: bytes | None = None

    @property
    def body(self) -> bytes:
        return self.content if self.served is None else self.served

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        spec = "version https://git-lfs.github.com/spec/v1"
        return f"{spec}\noid sha256:{self.sha256}\nsize {len(self.content)}\n".encode()

    @property
    def blob_id(self) -> str:
        stored = self.pointer if self.lfs else self.content
        return hashlib.sha1(b"blob %d\0" % len(stored) + stored).hexdigest()  # noqa: S324 - git's object id

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self.blob_id,
            "size": len(self.content),
            "path": self.path,
        }
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.content), "pointerSize": len(self.pointer)}
        return entry


@dataclass(frozen=True)
class HubCommit:
    title: str
    files: tuple[HubFile, ...]
    date: str
    sha: str


@dataclass
class HubRepo:
    """A model repository: commits oldest first (`main` is the last), and tags naming commits."""

    repo_id: str
    commits: list[HubCommit] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def commit(self, title: str, *files: HubFile, tag: str | None = None) -> HubCommit:
        digest = hashlib.sha1(f"{self.repo_id}\n{title}\n{len(self.commits)}".encode())  # noqa: S324
        for file in files:
            digest.update(file.path.encode() + b"\0" + file.content)
        made = HubCommit(
            title, files, f"2026-01-{len(self.commits) + 1:02d}T12:00:00.000Z", digest.hexdigest()
        )
        self.commits.append(made)
        if tag is not None:
            self.tags[tag] = made.sha
        return made

    def at(self, revision: str) -> HubCommit | None:
        if revision == "main":
            return self.commits[-1] if self.commits else None
        sha = self.tags.get(revision, revision)
        return next((c for c in self.commits if c.sha == sha), None)


def standard_repos() -> dict[str, HubRepo]:
    """acme/benign (safetensors + config), acme/evil (a pickle that calls os.system), acme/evolving (a
    benign first commit tagged v1, then a malicious one), acme/climber (a path with `..`), acme/liar
    (serves far more bytes than it lists), acme/tampered (LFS content differs from its sha256) and
    acme/swapped (a regular file's content differs from its git object id)."""
    repos = {
        name: HubRepo(name)
        for name in (
            "acme/benign",
            "acme/evil",
            "acme/evolving",
            "acme/climber",
            "acme/liar",
            "acme/tampered",
            "acme/swapped",
        )
    }
    weights = tiny_safetensors()
    repos["acme/benign"].commit(
        "add model", HubFile("config.json", CONFIG_JSON), HubFile("model.safetensors", weights, lfs=True)
    )
    repos["acme/evil"].commit(
        "add model",
        HubFile("config.json", CONFIG_JSON),
        HubFile("weights/model.pkl", MALICIOUS_PICKLE, lfs=True),
    )
    evolving = repos["acme/evolving"]
    evolving.commit("first", HubFile("config.json", CONFIG_JSON), tag="v1")
    evolving.commit(
        "second", HubFile("config.json", CONFIG_JSON), HubFile("model.pkl", MALICIOUS_PICKLE, lfs=True)
    )
    repos["acme/climber"].commit(
        "climb", HubFile("config.json", CONFIG_JSON), HubFile("../outside.pkl", MALICIOUS_PICKLE, lfs=True)
    )
    repos["acme/liar"].commit(
        "lie", HubFile("big.bin", b"0123456789", lfs=True, served=b"\0" * (1024 * 1024))
    )
    repos["acme/tampered"].commit(
        "tamper", HubFile("model.safetensors", weights, lfs=True, served=weights[:-1] + b"\x01")
    )
    repos["acme/swapped"].commit(
        "swap", HubFile("config.json", CONFIG_JSON, served=CONFIG_JSON.replace(b"2", b"9"))
    )
    return repos


class HubServer:
    """The running server: its base URL and every request it answered, as (method, path). LFS content is
    served from a second port, as the hub serves it from a storage host, so that clients meet the same
    cross-origin redirect."""

    def __init__(self, repos: dict[str, HubRepo]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        self.authorization: dict[str, str | None] = {}
        """The Authorization header last sent for each path."""
        handler = _handler_for(self)
        self._servers = (
            ThreadingHTTPServer(("127.0.0.1", 0), handler),
            ThreadingHTTPServer(("127.0.0.1", 0), handler),
        )
        self.url, self.storage_url = (
            f"http://127.0.0.1:{httpd.server_address[1]}" for httpd in self._servers
        )
        self._threads = [
            threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True) for httpd in self._servers
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for httpd in self._servers:
            httpd.shutdown()
            httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def downloads(self) -> list[str]:
        """Paths of the file contents served (resolve GETs and LFS object GETs)."""
        return [path for method, path in self.requests if method == "GET" and "/api/" not in path]


@contextmanager
def running_hub(repos: dict[str, HubRepo] | None = None) -> Iterator[HubServer]:
    server = HubServer(standard_repos() if repos is None else repos)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def use_hub(monkeypatch: pytest.MonkeyPatch, server: HubServer, home: Path) -> None:
    """Point huggingface_hub (and modelshield's settings) at the server, online, without telemetry or a
    token from the user's home. Some constants are read at import, so they are patched as well."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, [""])[0].lower() in ("true", "1")


def _handler_for(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class HubHandler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass

        def do_GET(self) -> None:
            self._route(send_body=True)

        def do_HEAD(self) -> None:
            self._route(send_body=False)

        def _route(self, *, send_body: bool) -> None:
            url = urlsplit(self.path)
            server.requests.append((self.command, url.path))
            server.authorization[url.path] = self.headers.get("Authorization")
            segments = [unquote(part) for part in url.path.strip("/").split("/")]
            query = parse_qs(url.query)
            if segments[:2] == ["api", "models"]:
                self._api(segments[2:], query)
            elif segments[:1] == ["lfs-objects"] and len(segments) >= 5:
                self._lfs_object(segments[1:], send_body)
            elif len(segments) >= 5 and segments[2] == "resolve":
                self._resolve("/".join(segments[:2]), segments[3], "/".join(segments[4:]), send_body)
            else:
                self._error(404, "EntryNotFound", "no such route")

        def _api(self, rest: list[str], query: dict[str, list[str]]) -> None:
            if not rest:
                author = query.get("author", [""])[0]
                found = [r for name, r in sorted(server.repos.items()) if name.split("/")[0] == author]
                self._json([self._info(r, r.commits[-1], blobs=False) for r in found if r.commits])
                return
            repo = server.repos.get("/".join(rest[:2]))
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return
            action, args = (rest[2], rest[3:]) if len(rest) > 2 else ("revision", ["main"])
            commit = repo.at(args[0]) if args else None
            if commit is None:
                self._error(404, "RevisionNotFound", "Invalid rev id")
            elif action == "revision":
                self._json(self._info(repo, commit, blobs=_flag(query, "blobs")))
            elif action == "tree":
                self._json(self._tree(commit, _flag(query, "recursive")))
            elif action == "commits":
                history = repo.commits[: repo.commits.index(commit) + 1]
                self._json([self._commit(c) for c in reversed(history)])
            else:
                self._error(404, "EntryNotFound", "no such route")

        def _info(self, repo: HubRepo, commit: HubCommit, *, blobs: bool) -> dict[str, Any]:
            siblings: list[dict[str, Any]] = []
            for file in commit.files:
                sibling: dict[str, Any] = {"rfilename": file.path}
                if blobs:
                    entry = file.tree_entry()
                    sibling.update(size=entry["size"], blobId=entry["oid"], lfs=entry.get("lfs"))
                siblings.append(sibling)
            return {
                "_id": repo.repo_id,
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.sha,
                "lastModified": commit.date,
                "createdAt": repo.commits[0].date,
                "private": False,
                "disabled": False,
                "gated": False,
                "tags": [],
                "siblings": siblings,
            }

        @staticmethod
        def _tree(commit: HubCommit, recursive: bool) -> list[dict[str, Any]]:
            entries: list[dict[str, Any]] = []
            folders: set[str] = set()
            for file in commit.files:
                parts = file.path.split("/")
                for depth in range(1, len(parts)):
                    folders.add("/".join(parts[:depth]))
                if recursive or len(parts) == 1:
                    entries.append(file.tree_entry())
            shown = sorted(folder for folder in folders if recursive or "/" not in folder)
            return entries + [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in shown]

        @staticmethod
        def _commit(commit: HubCommit) -> dict[str, Any]:
            return {
                "id": commit.sha,
                "authors": [{"user": "acme-bot"}],
                "date": commit.date,
                "title": commit.title,
                "message": "",
            }

        def _resolve(self, repo_id: str, revision: str, path: str, send_body: bool) -> None:
            repo = server.repos.get(repo_id)
            commit = repo.at(revision) if repo is not None else None
            file = next((f for f in commit.files if f.path == path), None) if commit is not None else None
            if repo is None or commit is None or file is None:
                self._error(404, "EntryNotFound" if commit is not None else "RevisionNotFound", "not found")
                return
            headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{file.blob_id}"'}
            if file.lfs:
                # The hub answers LFS files with a redirect to its storage and names the content there.
                target = f"{server.storage_url}/lfs-objects/{quote(repo_id)}/{commit.sha}/{quote(path)}"
                headers.update(
                    {
                        "Location": target,
                        "X-Linked-Etag": f'"{file.sha256}"',
                        "X-Linked-Size": str(len(file.content)),
                        "Content-Length": "0",
                    }
                )
                self._send(302, headers, b"", send_body)
                return
            self._send(200, headers, file.body, send_body)

        def _lfs_object(self, rest: list[str], send_body: bool) -> None:
            repo = server.repos.get("/".join(rest[:2]))
            commit = repo.at(rest[2]) if repo is not None else None
            path = "/".join(rest[3:])
            file = next((f for f in commit.files if f.path == path), None) if commit is not None else None
            if file is None:
                self._error(404, "EntryNotFound", "not found")
                return
            self._send(200, {"ETag": f'"{file.sha256}"'}, file.body, send_body)

        def _send(self, status: int, headers: dict[str, str], body: bytes, send_body: bool) -> None:
            self.send_response(status)
            headers.setdefault("Content-Length", str(len(body)))
            headers.setdefault("Content-Type", "application/octet-stream")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if send_body and body:
                self.wfile.write(body)

        def _json(self, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self._send(200, {"Content-Type": "application/json"}, body, self.command == "GET")

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
            self._send(status, headers, body, self.command == "GET")

    return HubHandler


@pytest.fixture(name="hub")
def hub_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    """`hub`: the standard repositories on a running server, with huggingface_hub pointed at it. Import
    `hub_fixture` into a test module to use it."""
    with running_hub() as server:
        use_hub(monkeypatch, server, tmp_path / "hf-home")
        yield server
