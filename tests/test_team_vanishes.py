"""The team-vanishes drill with a real Debian image (examples/python-base, 52 packages from the
archive the machine's apt sources name): a vendor locks, builds, signs and pushes it with its
recipe and input bundle to a loopback registry; the vendor's directory is deleted and every
configured mirror answers 404; a stranger holding only the image reference and the vendor's
public key rebuilds it, gets `reproduced`, signs a VSA, and a consumer's `verify` passes. Then the
same with no bundle, the packages coming from a snapshot archive served on loopback from the
test store. (examples/keystone runs the same drill by hand and in bench/bench_rebuild_ref.py:
its 96 wheels make it too slow for the suite.)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import copy_example, run
from registry_fixture import Registry
from tiny_archive import nothing, serve

from imagelock.fetch.snapshot import timestamp
from imagelock.fetch.store import Store
from imagelock.formats.debian import DEFAULT_KEYRING, DebianPackagePin
from imagelock.formats.files import read_lock
from imagelock.formats.lock import Lock
from imagelock.lock.debian.release import parse_release, verify_inrelease

pytestmark = [pytest.mark.network, pytest.mark.tools, pytest.mark.slow]

POLICY = """\
version: 1
vendors:
  - {name: vendor, key: vendor.key.pub}
rebuilders:
  threshold: 1
  trusted:
    - {name: stranger, key: stranger.key.pub}
required_predicate_types:
  - https://slsa.dev/provenance/v1
  - https://slsa.dev/verification_summary/v1
max_age: 30d
"""
# Where a snapshot archive keeps each of python-base's sources.
ARCHIVES = {"bookworm": "/archive/debian", "security": "/archive/debian-security"}


@dataclass
class Published:
    tmp: Path
    ref: str  # with the recipe and the input bundle
    bare: str  # the same image in another repository, with the recipe only
    lock: Path  # a copy of the lock, for the test's snapshot server only
    gone: str


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, shared_store: Path,
              registry: Registry) -> Iterator[Published]:
    tmp = tmp_path_factory.mktemp("vanish")
    env = {"IMAGELOCK_STORE": str(shared_store)}
    for who in ("vendor", "stranger"):
        assert run(["keygen", "-o", str(tmp / f"{who}.key"), "--no-passphrase"]).returncode == 0
    (tmp / "policy.yaml").write_text(POLICY)
    vendor = copy_example("python-base", tmp / "vendor")
    # The vendor locks today: the indexes it records are the archive's current signed ones.
    r = run(["lock", str(vendor)], env=env)
    assert r.returncode == 0, r.stderr
    out = tmp / "vendor" / "out"
    r = run(["build", str(vendor), "-o", str(out), "--sign", str(tmp / "vendor.key")], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    refs = []
    for repo, extra in (("vanish/python-base", ["--inputs"]), ("vanish/bare", [])):
        r = run(["push", str(out), f"{registry.host}/{repo}:1", "--json"], env=env)
        assert r.returncode == 0, r.stderr
        ref = f"{registry.host}/{repo}@{json.loads(r.stdout)['digest']}"
        r = run(["attach", ref, f"{out}.intoto.jsonl", "--recipe", str(vendor), *extra, "--json"],
                env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        refs.append(ref)
    shutil.copyfile(vendor / "imagelock.lock", tmp / "published.lock")
    shutil.rmtree(vendor)  # the team is gone
    with serve(nothing) as (gone, _):
        yield Published(tmp, refs[0], refs[1], tmp / "published.lock", gone)


def stranger(p: Published, name: str) -> tuple[dict[str, str], list[str]]:
    """A machine with an empty store, whose configured mirrors have lost every pin."""
    env = {"IMAGELOCK_STORE": str(p.tmp / f"store-{name}"), "IMAGELOCK_HTTP_BACKOFF": "0.05"}
    args = ["--vendor-key", str(p.tmp / "vendor.key.pub"),
            "--mirror", f"bookworm={p.gone}/debian", "--mirror", f"security={p.gone}/debian-security"]
    return env, args


def test_the_team_vanishes_and_python_base_is_rebuilt_from_its_reference(p: Published) -> None:
    env, args = stranger(p, "bundle")
    r = run(["rebuild", p.ref, *args, "--sign", str(p.tmp / "stranger.key"), "--push-attestation",
             "--attestation-out", str(p.tmp / "stranger.intoto.jsonl"), "--json"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["verdict"] == "reproduced"
    about = res["reference"]
    lock = read_lock(p.lock)
    debs = len(_debs(lock))
    indexes = lock.debian["linux/amd64"].indexes
    # Every .deb and every index file (an InRelease and a Packages file per suite) came from the
    # bundle: the store was empty and the mirrors answered 404.
    assert about["inputs"] == {f"input bundle ({p.ref.split('@')[0]})": debs + 2 * len(indexes)}
    checked = about["debian_indexes"]
    assert [(i["suite"], i["date"]) for i in checked] == [(i.suite, i.date) for i in indexes]
    assert all(i["keyring"] == DEFAULT_KEYRING and i["signatures"] for i in checked)
    assert sum(i["pins"] for i in checked) == debs  # the Essential set the scripts ran with too
    r = run(["verify", p.ref, "--policy", str(p.tmp / "policy.yaml"), "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["passed"]


def _debs(lock: Lock) -> list[DebianPackagePin]:
    """Every .deb a rebuild of the lock needs: the image's, and the Essential set its
    maintainer scripts ran with at lock time."""
    plat = lock.debian["linux/amd64"]
    return [*plat.packages, *plat.script_tools]


def _snapshot_of(lock_path: Path, store: Store) -> dict[str, Path]:
    """python-base's files laid out as a snapshot archive, from the test store."""
    lock = read_lock(lock_path)
    plat = lock.debian["linux/amd64"]
    out: dict[str, Path] = {}
    dates = {}
    for idx in plat.indexes:
        base = f"{ARCHIVES[idx.source]}/{timestamp(idx.date)}/dists/{idx.suite}"
        dates[(idx.source, idx.suite)] = idx.date
        data = store.path_for(idx.inrelease_sha256).read_bytes()
        out[f"{base}/InRelease"] = store.path_for(idx.inrelease_sha256)
        content, _ = verify_inrelease(data, DEFAULT_KEYRING)
        entry = parse_release(content, idx.suite).files[idx.packages_path]
        out[f"{base}/{idx.packages_path}"] = store.path_for(entry.sha256)
    for pin in [*plat.packages, *plat.script_tools]:
        rel = pin.location.split(":", 1)[1]
        ts = timestamp(dates[(pin.source, pin.suite)])
        out[f"{ARCHIVES[pin.source]}/{ts}/{rel}"] = store.path_for(pin.sha256)
    assert all(p.is_file() for p in out.values())
    return out


def test_without_the_bundle_a_snapshot_archive_serves_the_inputs(p: Published,
                                                                  shared_store: Path) -> None:
    env, args = stranger(p, "snapshot")
    layout = _snapshot_of(p.lock, Store(shared_store))
    with serve(layout.get) as (snap, srv):
        r = run(["rebuild", p.bare, *args, "--snapshot", f"bookworm={snap}/archive/debian",
                 "--snapshot", f"security={snap}/archive/debian-security", "--json"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["verdict"] == "reproduced"
    assert list(res["reference"]["inputs"]) == ["snapshot archive"]
    assert len([h for h in srv.hits if "/pool/" in h]) == len(_debs(read_lock(p.lock)))


def test_inputs_check_names_every_pin_and_where_it_survives(p: Published, tmp_path: Path) -> None:
    env = {"IMAGELOCK_STORE": str(tmp_path / "empty-store"), "IMAGELOCK_HTTP_BACKOFF": "0.05"}
    lock = read_lock(p.lock)
    debs = {pin.location for pin in _debs(lock)}
    # From the image reference alone: the recipe's lock, with the bundle and the real mirrors.
    r = run(["inputs", "check", p.ref, "--json"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    titles = {i["title"] for i in rep["inputs"] if i["kind"] == "deb"}
    assert titles == debs
    for i in rep["inputs"]:
        if i["kind"] == "deb":
            assert {q["kind"] for q in i["places"] if q["available"]} >= {"mirror", "bundle"}, i
    # The mirrors turned off, no bundle: every pin survives nowhere, and each is named.
    r = run(["inputs", "check", p.bare, "--mirror", f"bookworm={p.gone}/debian",
             "--mirror", f"security={p.gone}/debian-security"], env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    lost = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("LOST") and " deb " in ln]
    assert len(lost) == len(debs)
    assert all(any(loc in ln for ln in lost) for loc in debs)


@pytest.fixture
def p(published: Published) -> Published:
    return published
