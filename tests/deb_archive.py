"""A small signed Debian archive made at test time and served on 127.0.0.1.

Inputs that cannot move: the tests choose every package and version, so a point release or a
security update of the real archive changes nothing here. It is a real archive all the same:
.debs from deb_factory, Packages indexes written by dpkg-scanpackages (Debian's own tool), a
Release listing their sha256, clearsigned by gpg with a key generated for the run, and served
over HTTP by a loopback server, so imagelock reads it exactly as it reads a mirror (InRelease
verified with gpgv against the source's `keyring:`, indexes checked against the Release).

Layout, like Debian's: one archive root per mirror (`debian/`, `debian-security/`), each with
`dists/SUITE/InRelease`, `dists/SUITE/main/binary-amd64/Packages(.xz)` and `pool/`.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import lzma
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deb_factory import M, make_deb

__all__ = ["ArchiveKey", "Pkg", "make_key", "serve", "write_suite"]

RELEASE_DATE = "Thu, 01 Jan 2026 00:00:00 UTC"


@dataclass(frozen=True)
class ArchiveKey:
    """A signing key made for one test run: its gpg home, public keyring and fingerprint."""

    home: Path
    keyring: Path
    fingerprint: str


def _gpg(home: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    gpg = shutil.which("gpg")
    if gpg is None:
        raise AssertionError("gpg is not installed: run ./scripts/setup (it installs it)")
    return subprocess.run([gpg, "--homedir", str(home), "--batch", "--no-tty",
                           "--pinentry-mode", "loopback", "--passphrase", "", *args],
                          check=True, capture_output=True, env={**os.environ, "LANG": "C"})


def make_key(home: Path) -> ArchiveKey:
    """A fresh Ed25519 signing key in `home` (mode 0700), exported as a binary keyring.

    Stop its agent with `stop_agent(key)` once everything is signed.
    """
    home.mkdir(mode=0o700, parents=True)
    _gpg(home, "--quick-generate-key", "imagelock test archive <archive@test.invalid>",
         "ed25519", "sign", "never")
    out = _gpg(home, "--with-colons", "--list-keys").stdout.decode()
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
    keyring = home.parent / "archive-keyring.gpg"
    keyring.write_bytes(_gpg(home, "--export", fpr).stdout)
    return ArchiveKey(home, keyring, fpr)


def stop_agent(key: ArchiveKey) -> None:
    """Stop the gpg-agent that signing started for this key's home (and only that one)."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf is not None:
        subprocess.run([gpgconf, "--homedir", str(key.home), "--kill", "gpg-agent"],
                       check=False, capture_output=True)


@dataclass(frozen=True)
class Pkg:
    """One binary package: its files (path -> bytes, under /usr) and control fields."""

    name: str
    version: str
    files: dict[str, bytes]
    arch: str = "amd64"
    source: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def members(self) -> list[M]:
        """data.tar members: every parent directory, then the files (mode 0644)."""
        dirs: set[str] = set()
        for path in self.files:
            parts = path.strip("/").split("/")[:-1]
            dirs |= {"/".join(parts[:i]) for i in range(1, len(parts) + 1)}
        return [M("./", "dir", mode=0o755),
                *(M(f"./{d}/", "dir", mode=0o755) for d in sorted(dirs)),
                *(M("./" + p.strip("/"), data=data) for p, data in sorted(self.files.items()))]


def write_suite(archive: Path, suite: str, packages: list[Pkg], key: ArchiveKey) -> None:
    """Write the packages into `archive`'s pool and publish them as signed suite `suite`."""
    for p in packages:
        src = p.source or p.name
        prefix = src[:4] if src.startswith("lib") else src[0]
        pool = archive / "pool/main" / prefix / src
        pool.mkdir(parents=True, exist_ok=True)
        version = p.version.split(":")[-1]
        fields = {"Priority": "optional", "Section": "misc", **p.fields}
        if p.source:
            fields["Source"] = p.source
        make_deb(pool / f"{p.name}_{version}_{p.arch}.deb", p.members(), package=p.name,
                 version=p.version, arch=p.arch, fields=fields)
    index_dir = archive / "dists" / suite / "main/binary-amd64"
    index_dir.mkdir(parents=True, exist_ok=True)
    scan = subprocess.run(["dpkg-scanpackages", "--multiversion", "pool"], cwd=archive,
                          check=True, capture_output=True)
    # Only this suite's packages: the pool may be shared with another suite of the archive.
    wanted = {(p.name, p.version) for p in packages}
    stanzas = [s for s in scan.stdout.decode().strip().split("\n\n") if _stanza_key(s) in wanted]
    assert len(stanzas) == len(wanted), scan.stderr.decode()
    plain = ("\n\n".join(stanzas) + "\n").encode()
    (index_dir / "Packages").write_bytes(plain)
    (index_dir / "Packages.xz").write_bytes(lzma.compress(plain))
    lines = ["Origin: imagelock-test", "Label: imagelock-test", f"Suite: {suite}",
             f"Codename: {suite}", f"Date: {RELEASE_DATE}", "Architectures: amd64",
             "Components: main", "Description: made by the imagelock tests", "SHA256:"]
    for name in ("Packages", "Packages.xz"):
        data = (index_dir / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):>16} main/binary-amd64/{name}")
    release = archive / "dists" / suite / "Release"
    release.write_text("\n".join(lines) + "\n")
    _gpg(key.home, "--local-user", key.fingerprint, "--digest-algo", "SHA512", "--clearsign",
         "--output", str(release.with_name("InRelease")), str(release))


def _stanza_key(stanza: str) -> tuple[str, str]:
    f = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line
             and not line.startswith(" "))
    return f.get("Package", ""), f.get("Version", "")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a: object) -> None:
        pass


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve `root` read-only over HTTP on 127.0.0.1 (GET and HEAD); yields the base URL."""
    handler = functools.partial(_Quiet, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
