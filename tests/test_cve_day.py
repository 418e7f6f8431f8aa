"""The CVE day, against the real archive: a lock made from bookworm's main suite alone, then the
security suite added and only libssl3 upgraded. The lock, `imagelock diff` and the image itself
change in exactly those packages and the package database."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from helpers import layer_index, oci_layers, run

pytestmark = pytest.mark.network

SPEC = """\
version: 1
image: {{name: cve/day}}
source_date_epoch: 1767225600
sources:
  bookworm: {{kind: debian, suites: [bookworm]}}
{security}contents:
  debian:
    packages: [python3, ca-certificates, openssl]
"""
SECURITY = "  security: {kind: debian, suites: [bookworm-security]}\n"


@pytest.mark.slow
def test_upgrading_only_libssl3_moves_only_libssl3(tmp_path: Path, shared_store: Path) -> None:
    env = {"IMAGELOCK_STORE": str(shared_store)}
    d = tmp_path / "img"
    d.mkdir()
    spec = d / "imagelock.yaml"
    spec.write_text(SPEC.format(security=""))
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    old_lock = tmp_path / "old.lock"
    old_lock.write_bytes((d / "imagelock.lock").read_bytes())
    old = json.loads(old_lock.read_text())["debian"]["linux/amd64"]["packages"]
    assert {p["source"] for p in old} == {"bookworm"}
    r = run(["build", str(d), "-o", str(tmp_path / "old-image")], env=env)
    assert r.returncode == 0, r.stderr

    # The security suite is added: the lock is stale until re-locked ...
    spec.write_text(SPEC.format(security=SECURITY))
    r = run(["build", str(d), "-o", str(tmp_path / "x")], env=env)
    assert r.returncode == 2 and "stale" in r.stderr and "sources" in r.stderr
    # ... and re-locking keeps every pin: nothing moves that was not asked for.
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    same = json.loads((d / "imagelock.lock").read_text())["debian"]["linux/amd64"]["packages"]
    assert same == old
    # The CVE day: move libssl3 only.
    r = run(["lock", str(d), "--upgrade", "libssl3"], env=env)
    assert r.returncode == 0, r.stderr
    new = json.loads((d / "imagelock.lock").read_text())["debian"]["linux/amd64"]["packages"]
    changed = {p["name"] for p in new} ^ {p["name"] for p in old} | {
        n["name"] for n in new for o in old if n["name"] == o["name"] and n != o}
    assert "libssl3" in changed
    newly = {n["name"]: n for n in new}
    assert newly["libssl3"]["source"] == "security"
    assert newly["openssl"]["version"] == next(o["version"] for o in old if o["name"] == "openssl")
    # `imagelock diff` says exactly that, in a form made for review.
    r = run(["diff", str(old_lock), str(d / "imagelock.lock"), "--json"], env=env)
    assert r.returncode == 1, r.stderr
    dd = json.loads(r.stdout)
    deb = dd["debian"]["linux/amd64"]
    assert [c["name"] for c in deb["upgraded"]] == ["libssl3"]
    assert not deb["downgraded"] and not deb["removed"] and not deb["hash_changed"]
    # Besides the one package: the newly read index of the added suite, the spec's changed
    # sources, and the expected digests. Nothing else.
    assert dd["inputs"] == ["+ index security/bookworm-security/main/binary-amd64/Packages.xz "
                            "(linux/amd64)"]
    assert dd["config"] == ["~ spec changed: sources"] and len(dd["expected"]) == 1
    human = run(["diff", str(old_lock), str(d / "imagelock.lock")], env=env).stdout
    assert "upgraded  libssl3" in human and "-> " + newly["libssl3"]["version"] in human

    # The new image differs from the old one only in libssl3's files and the package database.
    r = run(["build", str(d), "-o", str(tmp_path / "new-image")], env=env)
    assert r.returncode == 0, r.stderr
    (old_layer,) = oci_layers(tmp_path / "old-image")
    (new_layer,) = oci_layers(tmp_path / "new-image")
    a, b = layer_index(old_layer), layer_index(new_layer)
    differing = {p for p in a.keys() | b.keys() if a.get(p) != b.get(p)}
    assert differing
    ssl_files = set()
    for idx in (a, b):
        for path in idx:
            if path.startswith("var/lib/dpkg/info/libssl3"):
                ssl_files.add(path)
    listed = set()
    for layer in (old_layer, new_layer):
        with tarfile.open(layer) as tf:
            f = tf.extractfile("var/lib/dpkg/info/libssl3:amd64.list")
            assert f is not None
            listed |= {line.strip().lstrip("/") for line in f.read().decode().splitlines()}
    allowed = listed | ssl_files | {"var/lib/dpkg/status"}
    # Merged /usr: the package lists name /lib/..., the image holds usr/lib/...
    allowed |= {"usr/" + p for p in listed if p.split("/")[0] in ("lib", "bin", "sbin", "lib64")}
    unexpected = sorted(p for p in differing if p not in allowed)
    assert unexpected == [], unexpected


def test_unknown_package_is_named_with_near_names(tmp_path: Path, shared_store: Path) -> None:
    d = tmp_path / "img"
    d.mkdir()
    (d / "imagelock.yaml").write_text(
        "version: 1\nimage: {name: t}\nsources:\n  bookworm: {kind: debian, suites: [bookworm]}\n"
        "contents:\n  debian:\n    packages: [pyhton3]\n")
    r = run(["lock", str(d)], env={"IMAGELOCK_STORE": str(shared_store)})
    assert r.returncode == 2, r.stderr
    assert "pyhton3" in r.stderr and "python3" in r.stderr and "Traceback" not in r.stderr
    assert not (d / "imagelock.lock").exists()


def test_lock_offline_refuses_debian_contents_instead_of_using_the_network(tmp_path: Path) -> None:
    d = tmp_path / "img"
    d.mkdir()
    (d / "imagelock.yaml").write_text(SPEC.format(security=""))
    r = run(["lock", str(d), "--offline"], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2 and "--offline cannot lock Debian" in r.stderr
