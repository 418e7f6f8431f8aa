"""Debian packages split across layers: each group's files in its own layer, the package
database (covering every package) in the contents' layer on top."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from helpers import layer_index, oci_layers, run

pytestmark = pytest.mark.network

SPEC = """\
version: 1
image: {name: layers/test}
source_date_epoch: 1767225600
sources:
  bookworm: {kind: debian, suites: [bookworm]}
contents:
  debian:
    packages: [dash]
    groups:
      - {layer: libc, packages: [libc6, libgcc-s1, gcc-12-base]}
"""


@pytest.mark.slow
def test_groups_get_their_own_layer_and_the_database_stays_whole(tmp_path: Path, shared_store: Path) -> None:
    env = {"IMAGELOCK_STORE": str(shared_store)}
    d = tmp_path / "p"
    d.mkdir()
    (d / "imagelock.yaml").write_text(SPEC)
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    r = run(["build", str(d), "-o", str(tmp_path / "out")], env=env)
    assert r.returncode == 0, r.stderr
    libc, top = oci_layers(tmp_path / "out")
    a, b = layer_index(libc), layer_index(top)
    assert "usr/lib/x86_64-linux-gnu/libc.so.6" in a and "usr/lib/x86_64-linux-gnu/libc.so.6" not in b
    assert "usr/bin/dash" in b and "usr/bin/dash" not in a
    assert not any(p.startswith("var/lib/dpkg/") for p in a)
    with tarfile.open(top) as tf:
        f = tf.extractfile("var/lib/dpkg/status")
        assert f is not None
        status = f.read().decode()
    packages = {line.split(": ", 1)[1] for line in status.splitlines() if line.startswith("Package: ")}
    assert {"libc6", "libgcc-s1", "gcc-12-base", "dash"} <= packages
    assert "var/lib/dpkg/info/libc6:amd64.list" in b


def test_a_group_layer_above_the_database_is_refused(tmp_path: Path, shared_store: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    (d / "imagelock.yaml").write_text(SPEC.replace("image: {name: layers/test}",
                                                   "image: {name: layers/test, layers: [debian, libc]}"))
    r = run(["lock", str(d)], env={"IMAGELOCK_STORE": str(shared_store)})
    assert r.returncode == 2 and "comes after the package database" in r.stderr
