"""The CVE day: a lock made from a main suite alone, then the security suite added and one
package upgraded. The lock, `imagelock diff` and the image change in exactly that package, what
it newly needs, and the package database; packages the security suite also updated stay put.

Which package moves is never written here (the archive changes it with every update): on the
machine's archive it is found at run time from the suites' indexes (tests/security_ahead.py); on
a signed archive generated for the run and served on loopback the security suite is ahead by
construction. The generated one also stands in for the live one if the live security suite has
nothing to offer, since an empty security suite is not imagelock's defect."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from helpers import layer_index, oci_layers, run
from imagelock.fetch.store import Store
from security_ahead import CveDay, find_ahead

SPEC = """\
version: 1
image: {name: cve/day}
source_date_epoch: 1767225600
sources:
  bookworm: {kind: debian, suites: [bookworm]}
contents:
  debian:
    packages: [python3, ca-certificates, openssl]
"""


@pytest.fixture(params=[pytest.param("live", marks=[pytest.mark.network, pytest.mark.slow]), "generated"])
def cve_day(request: pytest.FixtureRequest) -> CveDay:
    day: CveDay = request.getfixturevalue(f"{request.param}_cve_day")
    return day


def _pins(lock: Path) -> dict[str, dict[str, str]]:
    return {p["name"]: p for p in json.loads(lock.read_text())["debian"]["linux/amd64"]["packages"]}


def _dpkg_info(layer: Path, name: str) -> tuple[set[str], set[str]]:
    """(paths the package's .list names, its own files under var/lib/dpkg/info) in a layer."""
    info = {p for p in layer_index(layer)
            if p.startswith(("var/lib/dpkg/info/" + name + ".", f"var/lib/dpkg/info/{name}:"))}
    listed: set[str] = set()
    with tarfile.open(layer) as tf:
        for path in info:
            if path.endswith(".list"):
                f = tf.extractfile(path)
                assert f is not None
                listed |= {line.strip().lstrip("/") for line in f.read().decode().splitlines()}
    # Merged /usr: the package lists name /lib/..., the image holds usr/lib/...
    listed |= {"usr/" + p for p in listed if p.split("/")[0] in ("lib", "bin", "sbin", "lib64")}
    return listed, info


def test_upgrading_one_package_moves_only_that_package(
    cve_day: CveDay, tmp_path: Path, shared_store: Path,
) -> None:
    where = cve_day.where
    target = cve_day.target
    store = shared_store if where == "the live archive" else tmp_path / "store"
    env = {"IMAGELOCK_STORE": str(store)}
    d = tmp_path / "img"
    d.mkdir()
    spec = d / "imagelock.yaml"
    lock = d / "imagelock.lock"
    spec.write_text(cve_day.spec(with_security=False))
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    old_lock = tmp_path / "old.lock"
    old_lock.write_bytes(lock.read_bytes())
    old = _pins(old_lock)
    assert {p["source"] for p in old.values()} == {"debian"}
    assert {target, *cve_day.bystanders} <= set(old), where
    r = run(["build", str(d), "-o", str(tmp_path / "old-image")], env=env)
    assert r.returncode == 0, r.stderr

    # The security suite is added: the lock is stale until re-locked ...
    spec.write_text(cve_day.spec(with_security=True))
    r = run(["build", str(d), "-o", str(tmp_path / "x")], env=env)
    assert r.returncode == 2 and "stale" in r.stderr and "sources" in r.stderr
    # ... and re-locking keeps every pin: nothing moves that was not asked for ...
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    assert _pins(lock) == old
    # ... although afresh, the security suite would move the target and the bystanders.
    r = run(["lock", str(d), "--upgrade-all", "-o", str(tmp_path / "fresh.lock")], env=env)
    assert r.returncode == 0, r.stderr
    fresh = _pins(tmp_path / "fresh.lock")
    assert {n: fresh[n]["source"] for n in (target, *cve_day.bystanders)} == {
        n: "security" for n in (target, *cve_day.bystanders)}, where

    # The CVE day: move the target only.
    r = run(["lock", str(d), "--upgrade", target], env=env)
    assert r.returncode == 0, r.stderr
    new = _pins(lock)
    assert new[target]["source"] == "security" and new[target]["version"] == fresh[target]["version"]
    for name in cve_day.bystanders:
        assert new[name] == old[name], (where, name)
    # `imagelock diff` says exactly that, in a form made for review.
    r = run(["diff", str(old_lock), str(lock), "--json"], env=env)
    assert r.returncode == 1, r.stderr
    dd = json.loads(r.stdout)
    deb = dd["debian"]["linux/amd64"]
    assert [c["name"] for c in deb["upgraded"]] == [target], where
    assert [p["name"] for p in deb["added"]] == list(cve_day.adds), where
    assert not deb["downgraded"] and not deb["removed"] and not deb["hash_changed"]
    assert {n: p for n, p in new.items() if n != target and n not in cve_day.adds} == {
        n: p for n, p in old.items() if n != target}
    # Besides the packages: the newly read index of the added suite, the spec's changed
    # sources, and the expected digests. Nothing else.
    suite = cve_day.security.suites[0]
    assert dd["inputs"] == [f"+ index security/{suite}/main/binary-amd64/Packages.xz "
                            "(linux/amd64)"]
    assert dd["config"] == ["~ spec changed: sources"] and len(dd["expected"]) == 1
    human = run(["diff", str(old_lock), str(lock)], env=env).stdout
    assert f"upgraded  {target}" in human and "-> " + new[target]["version"] in human

    # The new image differs from the old one only in the target's files, those of what it
    # newly needs, and the package database.
    r = run(["build", str(d), "-o", str(tmp_path / "new-image")], env=env)
    assert r.returncode == 0, r.stderr
    (old_layer,) = oci_layers(tmp_path / "old-image")
    (new_layer,) = oci_layers(tmp_path / "new-image")
    a, b = layer_index(old_layer), layer_index(new_layer)
    differing = {p for p in a.keys() | b.keys() if a.get(p) != b.get(p)}
    assert differing
    allowed = {"var/lib/dpkg/status"}
    for layer, names in ((old_layer, [target]), (new_layer, [target, *cve_day.adds])):
        for name in names:
            listed, info = _dpkg_info(layer, name)
            assert listed, (where, name, "has no file list in the image")
            allowed |= listed | info
    unexpected = sorted(p for p in differing if p not in allowed)
    assert unexpected == [], unexpected


def test_the_run_time_pick_takes_the_packages_that_can_move_alone(
    generated_cve_day: CveDay, tmp_path: Path,
) -> None:
    """Of the four packages newer in the generated security suite, libcve1 newly needs a
    package and cve-tool needs the new libcve1: neither can move alone, the other two can."""
    day = generated_cve_day
    found = find_ahead(Store(tmp_path / "store"), day.main, day.security, "generated")
    assert found is not None
    assert {found.target, *found.bystanders} == set(found.packages) == {"libfixed1", "libother1"}
    assert found.adds == ()


def test_the_run_time_pick_finds_nothing_when_the_security_suite_is_behind(
    generated_cve_day: CveDay, tmp_path: Path,
) -> None:
    """The suites swapped: nothing is newer in "security", so there is no CVE day to stage (the
    live fixture then runs the CVE day on the generated archive rather than fail or skip)."""
    day = generated_cve_day
    assert find_ahead(Store(tmp_path / "store"), day.security, day.main, "swapped") is None


@pytest.mark.network
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
    (d / "imagelock.yaml").write_text(SPEC)
    r = run(["lock", str(d), "--offline"], env={"IMAGELOCK_STORE": str(tmp_path / "s")})
    assert r.returncode == 2 and "--offline cannot lock Debian" in r.stderr
