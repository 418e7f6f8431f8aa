"""An image carries what it takes to rebuild it (issue 11), told with a small signed Debian
archive made at test time (tests/tiny_archive.py) and a real loopback registry: the vendor
publishes the recipe and the input bundle beside the image; the vendor vanishes; a stranger with
nothing but the image reference, the vendor's public key and the archive's keyring rebuilds it,
signs a VSA, and a consumer's `verify` passes. Then everything a hostile or broken world can do
to that rebuild: unsigned packages, doctored indexes, bad signatures, replaced recipes, damaged
bundles, lying snapshot mirrors.

python-base from the real archive runs the same drill in test_team_vanishes.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, copy_example, run
from registry_fixture import Registry, start_registry
from tiny_archive import DATE, TinyArchive, nothing, serve, serve_dir, tiny_archive

from imagelock.build.expected import record_expected
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock, write_lock

pytestmark = pytest.mark.tools  # bubblewrap and docker-registry

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


@dataclass
class World:
    tmp: Path
    archive: TinyArchive
    mirror: str  # the archive, served on loopback
    gone: str  # a mirror that answers 404 for everything
    reg: Registry
    keyring: Path  # the stranger's own copy of the archive keyring

    def vendor_env(self) -> dict[str, str]:
        return {"IMAGELOCK_STORE": str(self.tmp / "vendor-store"),
                "IMAGELOCK_MIRROR_TINY": self.mirror + "/debian", "IMAGELOCK_HTTP_BACKOFF": "0.01"}

    def stranger_env(self, name: str) -> dict[str, str]:
        """A machine that never saw the vendor's files: its own empty store."""
        store = self.tmp / f"stranger-store-{name}"
        shutil.rmtree(store, ignore_errors=True)
        return {"IMAGELOCK_STORE": str(store), "IMAGELOCK_HTTP_BACKOFF": "0.01"}

    def stranger_args(self) -> list[str]:
        return ["--vendor-key", str(self.tmp / "vendor.key.pub"),
                "--keyring", f"tiny={self.keyring}", "--mirror", f"tiny={self.gone}/debian"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("recipe")
    names = [f"tiny-{i:02d}" for i in range(50)] + ["tiny-app", "tiny-other", "tiny-base"]
    with (tiny_archive(names) as archive,
          serve(serve_dir(archive.root, "/debian")) as (mirror, _),
          serve(nothing) as (gone, _),
          start_registry(tmp / "registry", access_log=True) as reg):
        for who in ("vendor", "stranger"):
            r = run(["keygen", "-o", str(tmp / f"{who}.key"), "--no-passphrase"])
            assert r.returncode == 0, r.stderr
        keyring = tmp / "archive-keyring.gpg"
        shutil.copyfile(archive.keyring, keyring)
        (tmp / "policy.yaml").write_text(POLICY)
        yield World(tmp, archive, mirror, gone, reg, keyring)


def spec_text(world: World, packages: list[str], tag: str) -> str:
    return (f"version: 1\nimage: {{name: imagelock/tiny, tag: \"{tag}\"}}\n"
            "source_date_epoch: 1767225600\n"
            f"sources:\n  tiny:\n    kind: debian\n    suites: [tiny]\n    keyring: {world.archive.keyring}\n"
            f"contents:\n  debian:\n    packages: [{', '.join(packages)}]\n"
            "  files:\n    - {src: motd, dest: /etc/motd}\n")


def vendor_lock(world: World, name: str, packages: list[str]) -> Path:
    d = world.tmp / f"vendor-{name}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    (d / "imagelock.yaml").write_text(spec_text(world, packages, name))
    (d / "motd").write_text(f"built by the vendor for {name}\n")
    r = run(["lock", str(d)], env=world.vendor_env())
    assert r.returncode == 0, r.stderr
    return d


def rewrite_lock(world: World, d: Path, edit: Any) -> None:
    """What a hostile vendor's own tools could write: the lock edited, its expected digests
    recomputed so that the build matches it and gets signed."""
    path = d / "imagelock.lock"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2) + "\n")
    lock = record_expected(read_lock(path), context=d, store=Store(world.tmp / "vendor-store"))
    write_lock(lock, path)


def vendor_publish(world: World, d: Path, repo: str, *, recipe: bool = True,
                   inputs: bool = True, recipe_from: Path | None = None) -> str:
    """Build, sign, push, attach: the image reference by digest the vendor announces."""
    env = world.vendor_env()
    out = d / "out" / "image"
    r = run(["build", str(d), "-o", str(out), "--sign", str(world.tmp / "vendor.key")], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(["push", str(out), f"{world.reg.host}/{repo}:{d.name}", "--json"], env=env)
    assert r.returncode == 0, r.stderr
    ref = f"{world.reg.host}/{repo}@{json.loads(r.stdout)['digest']}"
    args = ["attach", ref, str(out) + ".intoto.jsonl"]
    if recipe:
        args += ["--recipe", str(recipe_from or d)] + (["--inputs"] if inputs else [])
    r = run([*args, "--json"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return ref


def stranger_rebuild(world: World, ref: str, name: str, *extra: str) -> Any:
    return run(["rebuild", ref, *world.stranger_args(), *extra, "--json"],
               env=world.stranger_env(name))


# --- the team-vanishes drill -----------------------------------------------------------------


@pytest.mark.slow
def test_the_vendor_vanishes_and_a_stranger_rebuilds_from_the_reference_alone(world: World) -> None:
    d = vendor_lock(world, "drill", ["tiny-app", "tiny-base"])
    ref = vendor_publish(world, d, "acme/drill")
    shutil.rmtree(d)  # the vendor's directory, its lock, its context and its build are gone
    r = run(["rebuild", ref, *world.stranger_args(), "--sign", str(world.tmp / "stranger.key"),
             "--attestation-out", str(world.tmp / "stranger.intoto.jsonl"),
             "--push-attestation", "--verifier-id", "https://rebuilders.example/stranger",
             "--json"], env=world.stranger_env("drill"))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["verdict"] == "reproduced"
    about = res["reference"]
    # Every .deb and index file came from the bundle: the mirror had nothing, the store was empty.
    assert about["inputs"] == {"input bundle (" + ref.split("@")[0] + ")": 4}
    assert "signed by" in about["trust"] and "NOT" not in about["trust"]
    [index] = about["debian_indexes"]
    assert index["date"] == DATE and index["pins"] == 2 and index["keyring"] == str(world.keyring)
    assert index["signatures"] and len(index["signatures"][0]["primary"]) == 40
    assert res["referrer"].startswith("sha256:")
    # A consumer trusting the vendor and this rebuilder deploys it.
    r = run(["verify", ref, "--policy", str(world.tmp / "policy.yaml"), "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    verdict = json.loads(r.stdout)
    assert verdict["passed"]
    assert sorted(s for a in verdict["attestations"] if a["counted"] for s in a["signers"]) == [
        "stranger", "vendor"]


@pytest.mark.slow
def test_the_same_drill_without_a_bundle_takes_the_packages_from_a_snapshot_archive(
        world: World) -> None:
    d = vendor_lock(world, "snap", ["tiny-app", "tiny-other"])
    ref = vendor_publish(world, d, "acme/snap", inputs=False)
    shutil.rmtree(d)
    snapshot = world.archive.snapshot_paths("/archive/debian")
    with serve(snapshot.get) as (base, srv):
        r = stranger_rebuild(world, ref, "snap", "--snapshot", f"tiny={base}/archive/debian")
        assert r.returncode == 0, r.stdout + r.stderr
        res = json.loads(r.stdout)
        assert res["verdict"] == "reproduced"
        assert res["reference"]["inputs"] == {"snapshot archive": 4}
        ts = "20260711T101637Z"  # the index's Date, as a snapshot timestamp
        assert f"/archive/debian/{ts}/dists/tiny/InRelease" in srv.hits
        assert any(h.startswith(f"/archive/debian/{ts}/pool/main/t/tiny-app/") for h in srv.hits)


@pytest.mark.slow
def test_a_pulled_image_with_its_inputs_rebuilds_offline(world: World, tmp_path: Path) -> None:
    d = vendor_lock(world, "offline", ["tiny-app"])
    with start_registry(tmp_path / "reg") as reg:
        env = world.vendor_env()
        out = d / "out" / "image"
        assert run(["build", str(d), "-o", str(out), "--sign", str(world.tmp / "vendor.key")],
                   env=env).returncode == 0
        r = run(["push", str(out), f"{reg.host}/acme/offline:1", "--json"], env=env)
        ref = f"{reg.host}/acme/offline@{json.loads(r.stdout)['digest']}"
        r = run(["attach", ref, str(out) + ".intoto.jsonl", "--recipe", str(d), "--inputs"], env=env)
        assert r.returncode == 0, r.stderr
        r = run(["pull", ref, "-o", str(tmp_path / "pulled"), "--with-inputs", "--json"])
        assert r.returncode == 0, r.stderr
        kinds = sorted(a["artifact_type"] for a in json.loads(r.stdout)["referrers"]["artifacts"])
        assert kinds == ["application/vnd.imagelock.inputs.v1",
                         "application/vnd.imagelock.recipe.v1", "application/vnd.in-toto+json"]
    # The registry is gone; the pulled directory holds everything.
    r = run(["rebuild", f"oci:{tmp_path / 'pulled'}", "--offline", *world.stranger_args(),
             "--json"], env=world.stranger_env("offline"))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["verdict"] == "reproduced"
    assert list(res["reference"]["inputs"]) == [f"input bundle (referrers kept in "
                                                f"{tmp_path / 'pulled.referrers'})"]


# --- a rebuild refuses what the archive never signed -----------------------------------------


def test_a_lock_pinning_a_deb_absent_from_its_signed_index_is_refused(world: World) -> None:
    d = vendor_lock(world, "unsigned", ["tiny-app", "tiny-base"])
    evil = world.archive.add("tiny-base", data=b"not what Debian signed\n", listed=False)
    blob = evil.read_bytes()
    Store(world.tmp / "vendor-store").add_file(evil)
    world.archive.add("tiny-base")  # the pool keeps the signed one

    def swap(lock: dict[str, Any]) -> None:
        for p in lock["debian"]["linux/amd64"]["packages"]:
            if p["name"] == "tiny-base":
                p["sha256"], p["size"] = hashlib.sha256(blob).hexdigest(), len(blob)

    rewrite_lock(world, d, swap)
    ref = vendor_publish(world, d, "acme/unsigned", inputs=False)
    r = stranger_rebuild(world, ref, "unsigned", "--mirror", f"tiny={world.mirror}/debian")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "package tiny-base 1.0-1" in r.stderr and hashlib.sha256(blob).hexdigest() in r.stderr
    assert "signed index of tiny/tiny" in r.stderr and "Traceback" not in r.stderr


def test_a_packages_file_that_does_not_match_its_inrelease_is_refused(world: World) -> None:
    d = vendor_lock(world, "packages", ["tiny-app"])

    def doctor(lock: dict[str, Any]) -> None:
        lock["debian"]["linux/amd64"]["indexes"][0]["packages_sha256"] = "ab" * 32

    rewrite_lock(world, d, doctor)
    ref = vendor_publish(world, d, "acme/packages", inputs=False)
    r = stranger_rebuild(world, ref, "packages", "--mirror", f"tiny={world.mirror}/debian")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "does not match its InRelease" in r.stderr and "tiny/tiny main/binary-amd64" in r.stderr


def test_an_inrelease_with_a_bad_signature_is_refused(world: World, tmp_path: Path) -> None:
    d = vendor_lock(world, "badsig", ["tiny-app"])
    tampered = world.archive.inrelease.read_bytes().replace(b"Label: imagelock-test",
                                                           b"Label: imagelock-TEST")
    assert tampered != world.archive.inrelease.read_bytes()
    (tmp_path / "dists/tiny").mkdir(parents=True)
    (tmp_path / "dists/tiny/InRelease").write_bytes(tampered)

    def point(lock: dict[str, Any]) -> None:
        lock["debian"]["linux/amd64"]["indexes"][0]["inrelease_sha256"] = hashlib.sha256(
            tampered).hexdigest()

    rewrite_lock(world, d, point)
    ref = vendor_publish(world, d, "acme/badsig", inputs=False)
    with serve(serve_dir(tmp_path, "/debian")) as (liar, _):
        r = stranger_rebuild(world, ref, "badsig", "--mirror", f"tiny={liar}/debian")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "InRelease of tiny" in r.stderr and "BAD signature" in r.stderr


def test_a_recipe_whose_lock_is_not_the_provenance_lock_is_refused(world: World) -> None:
    d = vendor_lock(world, "other", ["tiny-app"])
    other = world.tmp / "vendor-other-copy"
    shutil.rmtree(other, ignore_errors=True)
    shutil.copytree(d, other)
    data = json.loads((other / "imagelock.lock").read_text())
    data["tool"]["version"] = "0.0.0-elsewhere"  # another lock for the same image
    (other / "imagelock.lock").write_text(json.dumps(data, indent=2) + "\n")
    ref = vendor_publish(world, d, "acme/other", recipe_from=other)
    r = stranger_rebuild(world, ref, "other")
    assert r.returncode == 1, r.stdout + r.stderr
    want = hashlib.sha256((d / "imagelock.lock").read_bytes()).hexdigest()
    assert "is not the lock the vendor's provenance names" in r.stderr and want in r.stderr


def test_without_the_vendor_key_the_report_says_the_provenance_was_not_checked(
        world: World) -> None:
    d = vendor_lock(world, "unkeyed", ["tiny-app"])
    ref = vendor_publish(world, d, "acme/unkeyed")
    r = run(["rebuild", ref, "--keyring", f"tiny={world.keyring}", "--json"],
            env=world.stranger_env("unkeyed"))
    assert r.returncode == 0, r.stderr
    assert "NOT signature-checked" in json.loads(r.stdout)["reference"]["trust"]
    # The vendor keys of a consumer's policy do as well as --vendor-key.
    r = run(["rebuild", ref, "--keyring", f"tiny={world.keyring}", "--policy",
             str(world.tmp / "policy.yaml"), "--json"], env=world.stranger_env("unkeyed"))
    assert r.returncode == 0, r.stderr
    assert "signed by the vendors of" in json.loads(r.stdout)["reference"]["trust"]
    # A key that did not sign it finds no provenance at all.
    r = run(["rebuild", ref, "--keyring", f"tiny={world.keyring}", "--vendor-key",
             str(world.tmp / "stranger.key.pub")], env=world.stranger_env("unkeyed"))
    assert r.returncode == 1 and "no provenance" in r.stderr


def test_a_spec_keyring_outside_the_system_keyrings_needs_the_rebuilders_own(
        world: World) -> None:
    d = vendor_lock(world, "keyring", ["tiny-app"])
    ref = vendor_publish(world, d, "acme/keyring")
    r = run(["rebuild", ref, "--vendor-key", str(world.tmp / "vendor.key.pub")],
            env=world.stranger_env("keyring"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "is not a system keyring" in r.stderr and "--keyring tiny=PATH" in r.stderr


# --- bad input -------------------------------------------------------------------------------


def _hello_published(world: World, repo: str) -> tuple[Path, str]:
    d = copy_example("hello", world.tmp / f"hello-{repo.replace('/', '-')}")
    env = world.vendor_env()
    out = d / "out"
    assert run(["build", str(d), "-o", str(out), "--sign", str(world.tmp / "vendor.key")],
               env=env).returncode == 0
    r = run(["push", str(out), f"{world.reg.host}/{repo}:1", "--json"], env=env)
    ref = f"{world.reg.host}/{repo}@{json.loads(r.stdout)['digest']}"
    assert run(["attach", ref, str(out) + ".intoto.jsonl"], env=env).returncode == 0
    return d, ref


def _push_recipe(ref: str, d: Path, change: Any) -> None:
    from imagelock.formats.recipe import LOCK_SHA256, RECIPE_ARTIFACT_TYPE
    from imagelock.oci.registry.referrers import push_artifact
    from imagelock.rebuild.recipe import recipe_blobs

    blobs, notes = recipe_blobs(d / "imagelock.lock")
    push_artifact(ref, RECIPE_ARTIFACT_TYPE, change(blobs), annotations={LOCK_SHA256: notes[LOCK_SHA256]})


def test_a_recipe_missing_a_pinned_file_is_exit_3_naming_it(world: World) -> None:
    d, ref = _hello_published(world, "acme/missing")
    _push_recipe(ref, d, lambda blobs: [b for b in blobs if b.annotations.get(
        "org.opencontainers.image.title") != "hello"])
    r = run(["rebuild", ref, "--vendor-key", str(world.tmp / "vendor.key.pub")],
            env=world.stranger_env("missing"))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "lacks hello (sha256" in r.stderr


def test_a_recipe_with_an_extra_file_is_refused_naming_it(world: World) -> None:
    import io

    from imagelock.oci.registry.referrers import ArtifactBlob

    d, ref = _hello_published(world, "acme/extra")
    data = b"#!/bin/sh\necho surprise\n"
    extra = ArtifactBlob("application/vnd.imagelock.context-file.v1",
                         "sha256:" + hashlib.sha256(data).hexdigest(), len(data),
                         lambda: io.BytesIO(data), {"org.opencontainers.image.title": "run-me.sh"})
    _push_recipe(ref, d, lambda blobs: [*blobs, extra])
    r = run(["rebuild", ref, "--vendor-key", str(world.tmp / "vendor.key.pub")],
            env=world.stranger_env("extra"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "carries files its lock does not pin: run-me.sh" in r.stderr


@pytest.mark.slow
def test_a_damaged_bundle_blob_is_named_and_the_next_place_is_tried(world: World) -> None:
    d = vendor_lock(world, "damaged", ["tiny-app", "tiny-other"])
    ref = vendor_publish(world, d, "acme/damaged")
    lock = read_lock(d / "imagelock.lock")
    app = next(p for p in lock.debian["linux/amd64"].packages if p.name == "tiny-app")
    blob = world.reg.blob_file("sha256:" + app.sha256)
    good = blob.read_bytes()
    blob.write_bytes(good[:-1] + b"X")  # the registry now serves other bytes
    try:
        r = stranger_rebuild(world, ref, "damaged-alone")
        assert r.returncode == 3, r.stdout + r.stderr
        assert "package tiny-app 1.0-1" in r.stderr and "input bundle" in r.stderr
        snapshot = world.archive.snapshot_paths("/archive/debian")
        with serve(snapshot.get) as (base, _):
            r = stranger_rebuild(world, ref, "damaged-snap", "--snapshot",
                                 f"tiny={base}/archive/debian")
    finally:
        blob.write_bytes(good)  # the registry's storage is shared by the module's tests
    assert r.returncode == 0, r.stdout + r.stderr
    about = json.loads(r.stdout)["reference"]
    assert about["inputs"]["snapshot archive"] == 1
    assert any("tiny-app" in w and "input bundle" in w for w in about["warnings"])


@pytest.mark.slow
def test_a_snapshot_mirror_serving_another_file_is_named_and_the_next_is_tried(
        world: World) -> None:
    d = vendor_lock(world, "liar", ["tiny-app"])
    ref = vendor_publish(world, d, "acme/liar", inputs=False)
    good = world.archive.snapshot_paths("/archive/debian")
    other = world.archive.packages["tiny-00"]
    lies = {k: (other if "/pool/" in k else v) for k, v in good.items()}
    with serve(lies.get) as (liar, _), serve(good.get) as (honest, _):
        r = stranger_rebuild(world, ref, "liar-alone", "--snapshot", f"tiny={liar}/archive/debian")
        assert r.returncode == 3, r.stdout + r.stderr
        assert liar in r.stderr and "other bytes" in r.stderr
        r = stranger_rebuild(world, ref, "liar-then-honest", "--snapshot",
                             f"tiny={liar}/archive/debian", "--snapshot",
                             f"tiny={honest}/archive/debian")
        assert r.returncode == 0, r.stdout + r.stderr
        warnings = json.loads(r.stdout)["reference"]["warnings"]
        assert any(liar in w for w in warnings)


# --- the registry is a shared store of inputs -------------------------------------------------


@pytest.mark.slow
def test_two_images_sharing_fifty_packages_upload_each_shared_blob_once(world: World) -> None:
    shared = [f"tiny-{i:02d}" for i in range(50)]
    a = vendor_lock(world, "share-a", [*shared, "tiny-app"])
    b = vendor_lock(world, "share-b", [*shared, "tiny-other"])
    repo = "acme/shared"
    # The registry's own access log: every completed blob upload is a PUT naming its digest.
    done = re.compile(rf'"PUT /v2/{repo}/blobs/uploads/[^ ]*digest=sha256%3A([0-9a-f]{{64}}) '
                      r'HTTP/1.1" 201 ')

    def uploaded() -> list[str]:
        return done.findall(world.reg.log.read_text())

    vendor_publish(world, a, repo)
    first = uploaded()
    vendor_publish(world, b, repo)
    second = uploaded()[len(first):]
    debs_a = {p.sha256 for p in read_lock(a / "imagelock.lock").debian["linux/amd64"].packages}
    lock_b = read_lock(b / "imagelock.lock")
    debs_b = {p.sha256 for p in lock_b.debian["linux/amd64"].packages}
    indexes = {i.inrelease_sha256 for i in lock_b.debian["linux/amd64"].indexes}
    both = debs_a & debs_b
    assert len(both) == 50
    assert all(first.count(sha) == 1 for sha in debs_a | indexes)  # each once, with image A
    assert not (both | indexes) & set(second)  # image B sent none of them again
    assert (debs_b - debs_a) <= set(second)  # only its own package, and its own image
    assert len(second) == len(set(second)) <= 8, second


# --- the rot monitor --------------------------------------------------------------------------


def test_inputs_check_says_where_each_input_lives_and_fails_when_one_survives_nowhere(
        world: World) -> None:
    d = vendor_lock(world, "rot", ["tiny-app"])
    ref = vendor_publish(world, d, "acme/rot", inputs=False)
    env = {**world.vendor_env(), "IMAGELOCK_MIRROR_TINY": ""}
    ring = ["--keyring", f"tiny={world.keyring}"]
    r = run(["inputs", "check", str(d), "--mirror", f"tiny={world.mirror}/debian", *ring,
             "--json"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    kinds = sorted(i["kind"] for i in rep["inputs"])
    assert kinds == ["deb", "inrelease", "packages"]
    assert all(i["survives"] for i in rep["inputs"])
    # The mirror lost everything and no bundle is attached: the store alone has them.
    r = run(["inputs", "check", ref, "--mirror", f"tiny={world.gone}/debian", *ring], env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "LOCAL" in r.stdout and "tiny:pool/main/t/tiny-app/tiny-app_1.0-1_amd64.deb" in r.stdout
    assert "survive only in the local store or nowhere" in r.stdout
    # With the bundle attached, everything survives there.
    r = run(["attach", ref, "--recipe", str(d), "--inputs"], env=world.vendor_env())
    assert r.returncode == 0, r.stderr
    r = run(["inputs", "check", ref, "--mirror", f"tiny={world.gone}/debian", *ring, "--json"],
            env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    assert {i["kind"] for i in rep["inputs"]} == {"deb", "inrelease", "packages", "context"}
    for i in rep["inputs"]:
        assert [p["place"] for p in i["places"] if p["available"]] in (
            [f"input bundle ({ref.split('@')[0]})"], ["recipe"]), i


def test_the_docs_name_the_artifact_types_the_code_writes() -> None:
    from imagelock.formats import recipe

    spec = (REPO / "spec" / "README.md").read_text()
    for name in ("RECIPE_ARTIFACT_TYPE", "INPUTS_ARTIFACT_TYPE", "MT_SPEC", "MT_LOCK",
                 "MT_CONTEXT_FILE", "MT_DEB", "MT_WHEEL", "MT_DOWNLOAD", "MT_INRELEASE",
                 "MT_PACKAGES"):
        assert f"`{getattr(recipe, name)}`" in spec, name
