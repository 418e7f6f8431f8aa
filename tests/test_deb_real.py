"""Real bookworm packages, fetched with `apt-get download` from the machine's mirrors.

apt runs in a private root updated at the start of the run (conftest_debian.private_apt), so it
downloads what the archive serves today even if the machine's own lists predate a point release.

Checks extraction against dpkg-deb's own view of each package, the merged-/usr rule, and the
generated database against the machine's /var/lib/dpkg for packages installed here at the same
version (a Debian 12 machine has most of them).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest_debian import private_apt
from deb_factory import pin_for
from helpers import need
from imagelock.inputs.debian.deb import MERGED_USR_DIRS, StagedFile, merge_usr_path, read_deb
from imagelock.inputs.debian.root import DebianRoot, debian_entries
from imagelock.tar.entry import Entry
from imagelock.formats.debian import DEFAULT_KEYRING
from imagelock.fetch.apt_sources import machine_mirrors
from imagelock.fetch.store import Store

pytestmark = pytest.mark.network

SUITES = ["bookworm", "bookworm-updates", "bookworm-security"]
PACKAGES = ["base-passwd", "ca-certificates", "libc6", "libc-bin", "tzdata", "passwd"]
EPOCH = 1700000000


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    need("dpkg-deb")
    sources = [f"deb [signed-by={DEFAULT_KEYRING}] {mirror} {suite} main"
               for suite in SUITES for mirror in machine_mirrors(suite)[:1]]
    assert sources, "no apt source on this machine lists bookworm"
    env = private_apt(tmp_path_factory.mktemp("aptroot"), sources)
    d = tmp_path_factory.mktemp("debs")
    r = subprocess.run(["apt-get", "download", *PACKAGES], cwd=d, env=env, capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, f"apt-get download failed: {r.stderr.strip()[-300:]}"
    got = sorted(d.glob("*.deb"))
    assert len(got) == len(PACKAGES), got
    return got


@pytest.fixture(scope="module")
def root(debs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> DebianRoot:
    tmp = tmp_path_factory.mktemp("root")
    store = Store(tmp / "store")
    pins = []
    for deb in debs:
        info = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture"],
                              check=True, capture_output=True, text=True).stdout
        f = dict(line.split(": ", 1) for line in info.splitlines())
        pins.append(pin_for(store, deb, f["Package"], f["Version"], f["Architecture"]))
    return debian_entries(pins, store, tmp / "staging", source_date_epoch=EPOCH)


def _read(e: Entry) -> bytes:
    assert e.content is not None
    with e.content.open() as f:
        return f.read()


def test_files_match_dpkg_deb_and_nothing_lands_outside_usr(debs: list[Path], tmp_path: Path) -> None:
    for deb in debs:
        pkg = read_deb(deb, tmp_path / "stage")
        ours = {e.path: e for e in pkg.entries}
        assert not [p for p in ours if p.split("/")[0] in MERGED_USR_DIRS], deb.name
        tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                             capture_output=True).stdout
        (tmp_path / "fs.tar").write_bytes(tar)
        n = 0
        with tarfile.open(tmp_path / "fs.tar") as tf:
            for m in tf:
                path = merge_usr_path(os.path.normpath(m.name))
                if path == ".":
                    continue
                e = ours[path]
                if m.isreg():
                    src = tf.extractfile(m)
                    assert src is not None
                    assert isinstance(e.content, StagedFile)
                    assert e.content.sha256 == hashlib.sha256(src.read()).hexdigest(), path
                    assert e.mode == m.mode & 0o7777
                    n += 1
                elif m.issym() and not m.linkname.startswith("/"):
                    assert e.type == "symlink"
        assert n > 0, deb.name


def test_libc6_ships_its_loader_under_usr(root: DebianRoot) -> None:
    libc = {e.path: e for e in root.packages["libc6"]}
    ld = libc["usr/lib64/ld-linux-x86-64.so.2"]
    assert ld.type == "symlink" and ld.linkname.startswith("/usr/lib/x86_64-linux-gnu/")
    links = {e.path: e.linkname for e in root.system if e.type == "symlink" and "/" not in e.path}
    assert links == {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}


def test_database_matches_this_machines_dpkg_for_the_same_versions(root: DebianRoot) -> None:
    sys = {e.path: e for e in root.system}
    status = _read(sys["var/lib/dpkg/status"]).decode()
    host = Path("/var/lib/dpkg/status").read_text() if Path("/var/lib/dpkg/status").exists() else ""
    compared = 0
    for stanza in status.strip("\n").split("\n\n"):
        name = re.match(r"Package: (\S+)", stanza)
        assert name is not None
        theirs = [s for s in host.split("\n\n") if s.startswith(f"Package: {name.group(1)}\n")]
        if not theirs or "install ok installed" not in theirs[0]:
            continue
        version = re.search(r"^Version: (.*)$", stanza, re.MULTILINE)
        if version is None or f"\nVersion: {version.group(1)}\n" not in theirs[0] + "\n":
            continue
        assert stanza.strip() == theirs[0].strip()
        for p, e in sys.items():
            db = re.escape(name.group(1))
            if re.match(rf"var/lib/dpkg/info/{db}(:[a-z0-9]+)?\.", p) and Path("/" + p).is_file():
                assert _read(e) == Path("/" + p).read_bytes(), p
        compared += 1
    if compared == 0:
        pytest.skip("none of the packages is installed here at the downloaded version")


@pytest.mark.tools  # ldconfig runs in bubblewrap
def test_ld_so_cache_is_made_and_lists_libc(root: DebianRoot, tmp_path: Path) -> None:
    sys = {e.path: e for e in root.system}
    assert "etc/ld.so.cache" in sys, root.notes
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/ld.so.cache").write_bytes(_read(sys["etc/ld.so.cache"]))
    out = subprocess.run(["ldconfig", "-r", str(tmp_path), "-p"], capture_output=True,
                         text=True, check=False)
    assert "libc.so.6" in out.stdout


def test_ca_links_match_update_ca_certificates_on_the_real_certificates(
    root: DebianRoot, tmp_path: Path
) -> None:
    if shutil.which("update-ca-certificates") is None:
        pytest.skip("update-ca-certificates not installed")
    certsdir = tmp_path / "usr/share/ca-certificates"
    for e in root.packages["ca-certificates"]:
        if e.type == "file" and e.path.startswith("usr/share/ca-certificates/"):
            dest = tmp_path / e.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(_read(e))
    sys = {e.path: e for e in root.system}
    (tmp_path / "ca.conf").write_bytes(_read(sys["etc/ca-certificates.conf"]))
    etc = tmp_path / "etc/ssl/certs"
    etc.mkdir(parents=True)
    subprocess.run(["update-ca-certificates", "--certsconf", str(tmp_path / "ca.conf"),
                    "--certsdir", str(certsdir), "--localcertsdir", str(tmp_path / "none"),
                    "--etccertsdir", str(etc), "--hooksdir", ""],
                   check=True, capture_output=True, env={**os.environ, "LC_ALL": "C"})
    theirs = {n: os.readlink(etc / n).replace(str(certsdir), "/usr/share/ca-certificates")
              for n in os.listdir(etc) if (etc / n).is_symlink()}
    ours = {p.split("/")[-1]: e.linkname for p, e in sys.items()
            if p.startswith("etc/ssl/certs/") and e.type == "symlink"}
    assert len(ours) > 200 and ours == theirs
    assert _read(sys["etc/ssl/certs/ca-certificates.crt"]) == (etc / "ca-certificates.crt").read_bytes()
