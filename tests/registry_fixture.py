"""A real registry (docker-registry 2.8, the CNCF distribution registry) on loopback, for tests.

`start_registry` runs one with its own config, storage and port, optionally behind htpasswd basic
auth or behind bearer tokens from a small token service run here (the registry checks the tokens'
signatures against our certificate, as it would a real token service's); the session-scoped
`registry` fixture shares one anonymous registry with every test that only needs somewhere to
push and pull. The registry speaks plain HTTP, which imagelock allows for loopback hosts only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from token_service import token_service

READY_SECONDS = 10.0


@dataclass(frozen=True)
class Registry:
    """A running registry: where it listens and where it keeps its files."""

    host: str  # "127.0.0.1:PORT", the host part of image references
    storage: Path
    log: Path
    token_requests: list[str] = field(default_factory=list)  # scopes asked of the token service

    def blob_file(self, digest: str) -> Path:
        """The file in the registry's storage holding a blob (to tamper with it in tests)."""
        hex_ = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(storage: Path, port: int, htpasswd: Path | None, token: str,
            access_log: bool = False) -> str:
    text = (
        "version: 0.1\n"
        f"log:\n  level: warn\n  accesslog:\n    disabled: {'false' if access_log else 'true'}\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: imagelock-test\n"
    )
    if htpasswd is not None:
        text += f"auth:\n  htpasswd:\n    realm: imagelock-test\n    path: {htpasswd}\n"
    return text + token


def _wait_ready(url: str, proc: subprocess.Popen[bytes], expect: int) -> bool:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=1).status_code == expect:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.05)
    return False


@contextmanager
def start_registry(
    workdir: Path, *, users: dict[str, str] | None = None, token_users: dict[str, str] | None = None,
    access_log: bool = False,
) -> Iterator[Registry]:
    """Run a registry on 127.0.0.1 with storage under `workdir`. With `users`, behind basic auth
    (an htpasswd file made with `htpasswd -Bbn`); with `token_users`, behind bearer tokens that
    only those users get; with `access_log`, the registry logs every request to `Registry.log`
    (to count what clients really sent). Stops it on exit."""
    if token_users is None:
        yield from _run(workdir, users, "", [], access_log)
        return
    with token_service(workdir, token_users) as svc:
        token = (f"auth:\n  token:\n    realm: {svc.realm}\n    service: {svc.service}\n"
                 f"    issuer: {svc.issuer}\n    rootcertbundle: {svc.cert}\n")
        yield from _run(workdir, None, token, svc.requests)


def _run(
    workdir: Path, users: dict[str, str] | None, token: str, token_requests: list[str],
    access_log: bool = False,
) -> Iterator[Registry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise AssertionError("docker-registry is not installed: run ./scripts/setup (it installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd: Path | None = None
    if users is not None:
        tool = shutil.which("htpasswd")
        if tool is None:
            raise AssertionError("htpasswd is not installed: run ./scripts/setup (apache2-utils)")
        htpasswd = workdir / "htpasswd"
        lines = [
            subprocess.run([tool, "-Bbn", user, pw], check=True, capture_output=True,
                           text=True).stdout.strip()
            for user, pw in users.items()
        ]
        htpasswd.write_text("\n".join(lines) + "\n")
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    log = workdir / "registry.log"
    for _attempt in range(3):  # another process may take the free port before the registry does
        port = _free_port()
        cfg = workdir / "config.yml"
        cfg.write_text(_config(storage, port, htpasswd, token, access_log))
        with open(log, "ab") as logf:
            proc = subprocess.Popen([binary, "serve", str(cfg)], stdout=logf, stderr=logf,
                                    stdin=subprocess.DEVNULL)
        try:
            expect = 401 if users is not None or token else 200
            if _wait_ready(f"http://127.0.0.1:{port}/v2/", proc, expect):
                yield Registry(f"127.0.0.1:{port}", storage, log, token_requests)
                return
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    raise AssertionError(f"docker-registry did not start; see {log}:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """One anonymous registry on loopback for the whole test session."""
    with (tempfile.TemporaryDirectory(prefix="imagelock-registry-") as tmp,
          start_registry(Path(tmp)) as reg):
        yield reg
