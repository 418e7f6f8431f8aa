"""Test helpers: run imagelock as a user would, find real tools, serve files on loopback."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Real sigstore bundles and trusted roots, with their origin and licence in its README.
SIGSTORE_FIXTURES = REPO / "tests" / "fixtures" / "sigstore"
IMAGELOCK = str(Path(sys.executable).parent / "imagelock")


def run(
    args: list[str],
    *,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    prefix: list[str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run `imagelock ARGS` in a subprocess; never raises on a non-zero exit."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [*(prefix or []), IMAGELOCK, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def run_json(args: list[str], **kw: object) -> dict:  # type: ignore[type-arg]
    r = run([*args, "--json"], **kw)  # type: ignore[arg-type]
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def need(tool: str) -> str:
    """The path of a real tool that scripts/setup installs; its absence is a setup failure."""
    path = shutil.which(tool)
    if path is None:
        raise AssertionError(f"{tool} is not installed: run ./scripts/setup (it installs it)")
    return path


def podman_cmd(root: Path) -> list[str]:
    """podman as it runs on these machines (docs/field-notes.md, "podman")."""
    need("podman")
    # podman refuses a runroot longer than 50 characters.
    runroot = tempfile.mkdtemp(prefix="ilp-", dir="/tmp")
    return [
        "podman", "--root", str(root / "root"), "--runroot", runroot,
        "--runtime", "runc", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
        "--events-backend", "file", "--tmpdir", str(root / "tmp"),
    ]


PODMAN_RUN_LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


def copy_example(name: str, dest: Path) -> Path:
    shutil.copytree(REPO / "examples" / name, dest, symlinks=True)
    return dest


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:
        kind, _, name = self.path.lstrip("/").partition("/")
        self.server.hits.append(self.path)
        f = self.server.root / name
        if not f.is_file():
            self.send_response(404)
            self.end_headers()
            return
        data = f.read_bytes()
        if kind == "flaky":
            n = sum(1 for h in self.server.hits if h == self.path)
            kind = "truncate" if n == 1 else "files"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if kind == "files":
            self.wfile.write(data)
        elif kind == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif kind == "stall":
            self.wfile.write(data[:10])
            self.wfile.flush()
            time.sleep(self.server.stall_seconds)
            self.close_connection = True


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    root: Path
    hits: list[str]
    stall_seconds: float = 5


@contextmanager
def file_server(root: Path) -> Iterator[tuple[str, _Server]]:
    """Serve `root` on 127.0.0.1: /files/X serves X, /truncate/X half of it, /stall/X stalls,
    /flaky/X truncates the first request and serves the rest."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.root = root
    srv.hits = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    finally:
        srv.shutdown()
        srv.server_close()


def varied_host_prefix(hostname: str = "other-builder.example", days: int = 1100) -> list[str]:
    """Run a command in a UTS namespace with another host name, umask 002 and a wall clock
    `days` ahead (libfaketime)."""
    need("unshare")
    need("faketime")
    return ["unshare", "--uts", "sh", "-c",
            f'hostname {hostname} && umask 002 && exec faketime -f +{days}d "$@"', "sh"]


VARIED_ENV = {"TZ": "Pacific/Kiritimati", "LANG": "tr_TR.UTF-8", "LC_ALL": "tr_TR.UTF-8"}


def layer_index(blob: Path) -> dict[str, tuple[object, ...]]:
    """path -> (type, mode, uid, gid, link, sha256) of a gzip or plain layer tar, streamed."""
    import hashlib as _h
    import tarfile as _t

    out: dict[str, tuple[object, ...]] = {}
    with _t.open(blob, "r|*") as tf:
        for m in tf:
            digest = ""
            if m.isreg():
                f = tf.extractfile(m)
                assert f is not None
                h = _h.sha256()
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                digest = h.hexdigest()
            out[m.name.rstrip("/")] = (m.type, m.mode, m.uid, m.gid, m.linkname, digest)
    return out


def oci_layers(layout: Path) -> list[Path]:
    """The layer blob paths of the (single) image in an OCI layout, bottom first."""
    index = json.loads((layout / "index.json").read_text())
    mdig = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((layout / "blobs/sha256" / mdig).read_text())
    return [layout / "blobs/sha256" / layer["digest"].split(":")[1] for layer in manifest["layers"]]
