"""A small signed Debian archive made at test time, served on loopback: real .debs (deb_factory),
a real Packages index and a Release clearsigned by gpg with a key made for the test. With it the
recipe, the input bundle and the checks of signed indexes run end to end without the network,
including archives no honest mirror would serve (unlisted packages, tampered signatures).

Also the servers a rebuild meets in the wild: one that answers 404 for everything (a mirror that
dropped every pin), and one that serves a fixed map of paths (a snapshot archive's layout, made
from the files of an archive or of the store).
"""

from __future__ import annotations

import hashlib
import http.server
import lzma
import os
import shutil
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deb_factory import M, make_deb
from imagelock.fetch.snapshot import timestamp

DATE = "Sat, 11 Jul 2026 10:16:37 UTC"
SUITE = "tiny"


@dataclass
class TinyArchive:
    """An archive at `root` (`dists/`, `pool/`), signed by the key whose public keyring is
    `keyring`."""

    root: Path
    keyring: Path
    gnupghome: Path
    date: str = DATE
    packages: dict[str, Path] = field(default_factory=dict)  # name -> .deb in the pool
    listed: set[str] = field(default_factory=set)  # names the Packages index lists
    fields: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> extra index fields

    def add(self, name: str, *, version: str = "1.0-1", data: bytes | None = None,
            listed: bool = True, depends: str | None = None) -> Path:
        pool = self.root / "pool/main/t" / name
        pool.mkdir(parents=True, exist_ok=True)
        deb = pool / f"{name}_{version}_amd64.deb"
        fields = {"Depends": depends} if depends else {}
        make_deb(deb, [M("./usr/", "dir", mode=0o755), M("./usr/share/", "dir", mode=0o755),
                       M(f"./usr/share/{name}/", "dir", mode=0o755),
                       M(f"./usr/share/{name}/README", data=data or f"{name} {version}\n".encode())],
                 package=name, version=version, arch="amd64", fields=fields)
        self.packages[name] = deb
        if listed:
            self.listed.add(name)
        return deb

    def add_deb(self, name: str, deb: Path, *, version: str = "1.0-1",
                fields: dict[str, str] | None = None) -> Path:
        """A .deb made elsewhere (with scripts, say), listed with `fields` (Depends, Essential)."""
        pool = self.root / "pool/main/t" / name
        pool.mkdir(parents=True, exist_ok=True)
        dest = pool / f"{name}_{version}_amd64.deb"
        shutil.copyfile(deb, dest)
        self.packages[name] = dest
        self.listed.add(name)
        self.fields[name] = dict(fields or {})
        return dest

    def packages_text(self) -> bytes:
        out = []
        for name in sorted(self.listed):
            deb = self.packages[name]
            data = deb.read_bytes()
            version = deb.name.split("_")[1]
            out.append(f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n"
                       f"Maintainer: Test <test@example.org>\nInstalled-Size: 1\n"
                       f"Filename: {deb.relative_to(self.root)}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
                       + "".join(f"{k}: {v}\n" for k, v in self.fields.get(name, {}).items())
                       + "Description: test package\n")
        return "\n".join(out).encode()

    def publish(self) -> None:
        """Write the Packages index and the Release, and clearsign it as InRelease."""
        dists = self.root / "dists" / SUITE
        binary = dists / "main/binary-amd64"
        binary.mkdir(parents=True, exist_ok=True)
        text = self.packages_text()
        (binary / "Packages").write_bytes(text)
        (binary / "Packages.xz").write_bytes(lzma.compress(text))
        lines = [f"Origin: imagelock-test\nLabel: imagelock-test\nSuite: {SUITE}\n"
                 f"Codename: {SUITE}\nDate: {self.date}\nArchitectures: amd64\n"
                 "Components: main\nSHA256:\n"]
        for rel in ("main/binary-amd64/Packages", "main/binary-amd64/Packages.xz"):
            data = (dists / rel).read_bytes()
            lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {rel}\n")
        (dists / "Release").write_text("".join(lines))
        (dists / "InRelease").unlink(missing_ok=True)
        subprocess.run(["gpg", "--homedir", str(self.gnupghome), "--batch", "--yes",
                        "--pinentry-mode", "loopback", "--passphrase", "", "--clearsign",
                        "--output", str(dists / "InRelease"), str(dists / "Release")],
                       check=True, capture_output=True)

    @property
    def inrelease(self) -> Path:
        return self.root / "dists" / SUITE / "InRelease"

    def snapshot_paths(self, prefix: str = "/archive/debian") -> dict[str, Path]:
        """Every file of the archive under the snapshot layout at the archive's date."""
        ts = timestamp(self.date)
        out = {}
        for dirpath, _, files in os.walk(self.root):
            for f in files:
                p = Path(dirpath) / f
                out[f"{prefix}/{ts}/{p.relative_to(self.root)}"] = p
        return out


@contextmanager
def tiny_archive(names: list[str], *, date: str = DATE) -> Iterator[TinyArchive]:
    """An archive listing `names` (one small package each), signed by a fresh key."""
    # gpg's agent socket lives in its home: keep that path short.
    home = Path(tempfile.mkdtemp(prefix="ilg-", dir="/tmp"))
    root = Path(tempfile.mkdtemp(prefix="il-archive-"))
    try:
        os.chmod(home, 0o700)
        subprocess.run(["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback",
                        "--passphrase", "", "--quick-gen-key",
                        "imagelock test archive <archive@example.org>", "ed25519", "sign",
                        "never"], check=True, capture_output=True)
        keyring = root.parent / (root.name + ".keyring.gpg")
        keyring.write_bytes(subprocess.run(["gpg", "--homedir", str(home), "--export"],
                                           check=True, capture_output=True).stdout)
        archive = TinyArchive(root, keyring, home, date)
        for name in names:
            archive.add(name)
        archive.publish()
        yield archive
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        (root.parent / (root.name + ".keyring.gpg")).unlink(missing_ok=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *a: object) -> None:
        pass

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        self.server.hits.append(path)
        found = self.server.lookup(path)
        if found is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = found.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    lookup: Callable[[str], Path | None]
    hits: list[str]


@contextmanager
def serve(lookup: Callable[[str], Path | None]) -> Iterator[tuple[str, _Server]]:
    """Serve on 127.0.0.1 whatever `lookup(path)` names (a file), 404 for None."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.lookup = lookup
    srv.hits = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    finally:
        srv.shutdown()
        srv.server_close()


def serve_dir(root: Path, prefix: str = "") -> Callable[[str], Path | None]:
    """`prefix/REL` -> root/REL, only inside root."""
    def lookup(path: str) -> Path | None:
        if not path.startswith(prefix + "/"):
            return None
        p = (root / path[len(prefix) + 1:]).resolve()
        return p if p.is_file() and p.is_relative_to(root.resolve()) else None
    return lookup


def nothing(path: str) -> Path | None:
    """A mirror that lost every file."""
    return None
