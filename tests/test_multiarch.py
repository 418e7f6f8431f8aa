"""examples/python-base for linux/amd64 and linux/arm64 from one lock (issue 17): per-platform
pins, one layout listing both manifests, the arm64 image run under qemu-user by podman, pushed as
one index that skopeo resolves per architecture, both platforms reproduced by a sandboxed rebuild,
and a tamper in the arm64 manifest alone named as a mismatch of that platform.

The example is copied and its spec given `platforms: [linux/amd64, linux/arm64]`, then locked
afresh: the committed example stays single-platform.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import PODMAN_RUN_LIMITS, REPO, need, podman_cmd, run
from imagelock.oci.layout_read import read_layout
from imagelock.oci.registry.push_index import push_index
from imagelock.oci.registry.transfer import pull
from imagelock.sandbox import emulation
from registry_fixture import Registry

pytestmark = [pytest.mark.network,  # the .debs of both architectures come from the Debian mirror
              pytest.mark.tools,  # bwrap, podman, skopeo, docker-registry, qemu-user
              pytest.mark.slow]  # locking and building two platforms of python-base
TAG = "imagelock/python-base:3.11-bookworm"
PLATFORMS = ["linux/amd64", "linux/arm64"]


def _multiarch_copy(dest: Path) -> Path:
    """python-base for both platforms, with the two-platform lock made before as the previous
    lock (tests/fixtures/multiarch/README.md): `lock` keeps its pins and maintainer-script
    effects, rather than running the arm64 scripts under qemu for many minutes."""
    shutil.copytree(REPO / "examples" / "python-base", dest)
    shutil.copy(REPO / "tests/fixtures/multiarch/python-base.lock", dest / "imagelock.lock")
    spec = dest / "imagelock.yaml"
    text = spec.read_text()
    assert '  tag: "3.11-bookworm"\n' in text
    spec.write_text(text.replace('  tag: "3.11-bookworm"\n',
                                 '  tag: "3.11-bookworm"\n  platforms: [linux/amd64, linux/arm64]\n'))
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_store: Path) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("multiarch")
    ex = _multiarch_copy(tmp / "python-base")
    env = {"IMAGELOCK_STORE": str(shared_store)}
    r = run(["lock", str(ex)], env=env)
    assert r.returncode == 0, r.stderr
    r = run(["build", str(ex), "-o", str(tmp / "oci"), "--offline", "--json"], env=env)
    assert r.returncode == 0, r.stderr
    lock = json.loads((ex / "imagelock.lock").read_text())
    return {"ex": ex, "tmp": tmp, "env": env, "lock": lock, "oci": tmp / "oci",
            "build": json.loads(r.stdout)}


def test_one_lock_pins_debian_packages_for_each_architecture_and_all_packages_once(
    built: dict[str, Any]
) -> None:
    lock = built["lock"]
    assert lock["platforms"] == PLATFORMS
    # `Architecture: all` packages are pinned once (debian_all: one file in the store, fetched
    # once); each platform lists its own architecture's.
    shared = {d["name"]: d for d in lock["debian_all"]}
    assert {"tzdata", "ca-certificates"} <= set(shared)
    assert {d["architecture"] for d in shared.values()} == {"all"}
    pins = {p: {d["name"]: d for d in lock["debian"][p]["packages"]} for p in PLATFORMS}
    assert set(pins["linux/amd64"]) == set(pins["linux/arm64"])
    for platform, arch in (("linux/amd64", "amd64"), ("linux/arm64", "arm64")):
        assert {d["architecture"] for d in pins[platform].values()} == {arch}
        assert not set(pins[platform]) & set(shared)
        assert {i["architecture"] for i in lock["debian"][platform]["indexes"]} == {arch}
    for name, amd in pins["linux/amd64"].items():
        arm = pins["linux/arm64"][name]
        assert arm["version"] == amd["version"], name
        assert arm["sha256"] != amd["sha256"], name


def test_the_layout_lists_each_platforms_manifest_at_its_locked_digest(built: dict[str, Any]) -> None:
    lock, oci = built["lock"], built["oci"]
    index = json.loads((oci / "index.json").read_text())
    listed = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
              for m in index["manifests"]}
    assert listed == {p: lock["expected"][p]["manifest_digest"] for p in PLATFORMS}
    assert listed["linux/amd64"] != listed["linux/arm64"]
    for p in PLATFORMS:
        config = json.loads((oci / "blobs/sha256" / lock["expected"][p]["config_digest"][7:]).read_bytes())
        assert f"{config['os']}/{config['architecture']}" == p
    assert built["build"]["verdict"] == "reproduced"


def test_a_second_build_gives_the_same_bytes_for_both_platforms(built: dict[str, Any]) -> None:
    out = built["tmp"] / "oci-again"
    r = run(["build", str(built["ex"]), "-o", str(out), "--offline"], env=built["env"])
    assert r.returncode == 0, r.stderr
    assert (out / "index.json").read_bytes() == (built["oci"] / "index.json").read_bytes()


@pytest.fixture(scope="module")
def podman(built: dict[str, Any]) -> list[str]:
    """podman with each platform's docker-archive loaded (arm64 runs under qemu-user)."""
    emulation.ensure_binfmt("aarch64")  # machine-wide, root: what `podman --platform` needs
    cmd = podman_cmd(built["tmp"] / "podman")
    for p in PLATFORMS:
        archive = built["tmp"] / f"{p.replace('/', '-')}.tar"
        r = run(["build", str(built["ex"]), "--format", "docker-archive", "--platform", p,
                 "-o", str(archive), "--offline"], env=built["env"])
        assert r.returncode == 0, r.stderr
        assert f"wrote {p}" in r.stdout + r.stderr
        # Both archives carry one tag: tag each by platform after loading.
        load = subprocess.run([*cmd, "load", "-i", str(archive)], capture_output=True, text=True)
        assert load.returncode == 0, load.stderr
        subprocess.run([*cmd, "tag", TAG, f"localhost/multi:{p.split('/')[1]}"], check=True)
    return cmd


def test_a_docker_archive_of_a_platform_the_lock_lacks_is_refused_and_nothing_written(
    built: dict[str, Any]
) -> None:
    out = built["tmp"] / "s390x.tar"
    r = run(["build", str(built["ex"]), "--format", "docker-archive", "--platform", "linux/s390x",
             "-o", str(out), "--offline"], env=built["env"])
    assert r.returncode == 2, r.stderr
    assert "--platform linux/s390x" in r.stderr and "linux/amd64, linux/arm64" in r.stderr
    assert not out.exists()


def _podman_run(cmd: list[str], platform: str, *argv: str) -> str:
    r = subprocess.run([*cmd, "run", "--rm", "--network", "none", "--platform", platform,
                        *PODMAN_RUN_LIMITS, f"localhost/multi:{platform.split('/')[1]}", *argv],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_arm64_image_runs_under_qemu_and_says_aarch64_native_says_x86_64(podman: list[str]) -> None:
    probe = ["python3", "-c", "import ssl, platform; print(platform.machine(), ssl.OPENSSL_VERSION)"]
    arm = _podman_run(podman, "linux/arm64", *probe).split()
    amd = _podman_run(podman, "linux/amd64", *probe).split()
    assert arm[0] == "aarch64" and amd[0] == "x86_64"
    assert arm[1:3] == amd[1:3] and arm[1] == "OpenSSL"  # one locked libssl3 version


def test_dpkg_in_the_arm64_image_lists_arm64_packages_at_their_locked_versions(
    built: dict[str, Any], podman: list[str]
) -> None:
    out = _podman_run(podman, "linux/arm64", "dpkg-query", "-W", "-f", "${Package} ${Version} ${Architecture}\n")
    listed = {name: (version, arch) for name, version, arch in (ln.split() for ln in out.splitlines())}
    locked = {d["name"]: (d["version"], d["architecture"])
              for d in [*built["lock"]["debian"]["linux/arm64"]["packages"], *built["lock"]["debian_all"]]}
    assert listed == locked
    assert "arm64" in {a for _, a in listed.values()}


def test_pushed_as_one_index_skopeo_resolves_each_architecture_to_its_entry(
    built: dict[str, Any], registry: Registry
) -> None:
    need("skopeo")
    images = [read_layout(built["oci"], platform=p) for p in PLATFORMS]
    ref = f"{registry.host}/python-base:multi"
    digest = push_index(images, ref)
    assert digest == "sha256:" + hashlib.sha256((built["oci"] / "index.json").read_bytes()).hexdigest()
    for p in PLATFORMS:
        arch = ["--override-os", "linux", "--override-arch", p.split("/")[1]]
        seen = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", *arch,
                                          f"docker://{ref}"],
                                         capture_output=True, text=True, check=True).stdout)
        # skopeo's inspect names the tag's own digest (the index) and the chosen image's config;
        # the manifest it chose is what `copy` takes, kept byte for byte in a dir: copy.
        assert seen["Digest"] == digest and seen["Architecture"] == p.split("/")[1]
        dest = built["tmp"] / f"skopeo-{p.split('/')[1]}"
        subprocess.run(["skopeo", "copy", "--src-tls-verify=false", *arch, f"docker://{ref}",
                        f"dir:{dest}"], capture_output=True, check=True)
        chosen = "sha256:" + hashlib.sha256((dest / "manifest.json").read_bytes()).hexdigest()
        assert chosen == built["lock"]["expected"][p]["manifest_digest"]
        # and our own pull follows the index to the same manifest
        pulled = pull(ref, built["tmp"] / f"pulled-{p.split('/')[1]}", platform=p)
        assert pulled.manifest_digest == chosen and pulled.platform == p


def test_both_platforms_are_reproduced_by_a_sandboxed_rebuild(built: dict[str, Any]) -> None:
    r = run(["rebuild", str(built["ex"]), "--platform", "all", "--image", f"oci:{built['oci']}",
             "--json"], env=built["env"])
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert (report["verdict"], report["sandbox"]) == ("reproduced", "bubblewrap")
    assert [(p["platform"], p["verdict"]) for p in report["platforms"]] == [(p, "reproduced") for p in PLATFORMS]
    index_digest = "sha256:" + hashlib.sha256((built["oci"] / "index.json").read_bytes()).hexdigest()
    assert report["index"] == {"verdict": "reproduced", "rebuilt": index_digest, "published": index_digest}


def test_a_tampered_arm64_manifest_alone_is_a_mismatch_naming_linux_arm64(built: dict[str, Any]) -> None:
    tampered = built["tmp"] / "tampered"
    shutil.copytree(built["oci"], tampered)
    blobs = tampered / "blobs/sha256"
    index = json.loads((tampered / "index.json").read_text())
    entry = next(m for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    manifest = json.loads((blobs / entry["digest"][7:]).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_bytes())
    config["config"]["Env"] = [*config["config"]["Env"], "TAMPERED=1"]
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = hashlib.sha256(config_bytes).hexdigest()
    (blobs / config_digest).write_bytes(config_bytes)
    manifest["config"].update(digest=f"sha256:{config_digest}", size=len(config_bytes))
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    manifest_digest = hashlib.sha256(manifest_bytes).hexdigest()
    (blobs / manifest_digest).write_bytes(manifest_bytes)
    entry.update(digest=f"sha256:{manifest_digest}", size=len(manifest_bytes))
    (tampered / "index.json").write_text(json.dumps(index, separators=(",", ":")))

    # one rebuild compares both platforms: only arm64 (and so the index) differs
    both = run(["rebuild", str(built["ex"]), "--platform", "all", "--image", f"oci:{tampered}"],
               env=built["env"])
    assert both.returncode == 1, both.stderr
    assert "MISMATCH" in both.stdout and "(linux/arm64)" in both.stdout
    assert "config.Env added: TAMPERED=1" in both.stdout  # explained down to the field
    verdicts = {ln.split()[0]: ln.split()[1] for ln in both.stdout.splitlines()
                if ln.startswith(("  linux/", "  index"))}
    assert verdicts == {"linux/amd64": "REPRODUCED", "linux/arm64": "MISMATCH", "index": "MISMATCH"}
    report = json.loads(run(["rebuild", str(built["ex"]), "--platform", "linux/arm64", "--image",
                             f"oci:{tampered}", "--json"], env=built["env"]).stdout)
    assert (report["verdict"], report["platform"]) == ("mismatch", "linux/arm64")


STEPS_SPEC = """\
version: 1
image:
  name: test/machine
  platforms: [linux/amd64, linux/arm64]
sources:
  bookworm:
    kind: debian
    suites: [bookworm]
contents:
  debian:
    packages: [libc-bin, zlib1g, dash, coreutils]
steps:
  - name: machine
    run: ["/bin/sh", "-c", "uname -m > /etc/machine"]
"""


def _layer_file(layout: Path, manifest_digest: str, path: str) -> bytes | None:
    blobs = layout / "blobs/sha256"
    found = None
    for layer in json.loads((blobs / manifest_digest[7:]).read_bytes())["layers"]:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress((blobs / layer["digest"][7:]).read_bytes()))) as t:
            try:
                f = t.extractfile(path)
            except KeyError:
                continue
            assert f is not None
            found = f.read()
    return found


def test_arm64_ldconfig_and_build_steps_run_under_qemu_in_the_sandbox_and_the_lock_says_so(
    tmp_path: Path, shared_store: Path
) -> None:
    (tmp_path / "imagelock.yaml").write_text(STEPS_SPEC)
    env = {"IMAGELOCK_STORE": str(shared_store)}
    r = run(["lock", str(tmp_path)], env=env)
    assert r.returncode == 0, r.stderr
    lock = json.loads((tmp_path / "imagelock.lock").read_text())
    emu = emulation.foreign("aarch64")
    assert emu is not None  # this test runs on an x86-64 host
    assert lock["expected"]["linux/arm64"]["emulation"] == emu.label
    assert "emulation" not in lock["expected"]["linux/amd64"]
    # the arm64 packages' maintainer scripts ran too (under qemu, in the sandbox), as on amd64
    ran = {p: lock["debian"][p]["scripts"]["ran"] for p in ("linux/amd64", "linux/arm64")}
    assert "libc-bin postinst configure" in " ".join(ran["linux/arm64"])
    assert [r.replace(":arm64", ":amd64") for r in ran["linux/arm64"]] == ran["linux/amd64"]
    r = run(["build", str(tmp_path), "-o", str(tmp_path / "oci"), "--offline"], env=env)
    assert r.returncode == 0, r.stderr
    for p, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        digest = lock["expected"][p]["manifest_digest"]
        # the step ran the image's own uname (under qemu for arm64)
        assert _layer_file(tmp_path / "oci", digest, "etc/machine") == f"{machine}\n".encode()
        # the image's own ldconfig wrote the cache of its own libraries
        cache = _layer_file(tmp_path / "oci", digest, "etc/ld.so.cache")
        assert cache is not None and f"/lib/{machine}-linux-gnu/libz.so.1".encode() in cache
    r = run(["rebuild", str(tmp_path), "--platform", "linux/arm64", "--json"], env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verdict"] == "reproduced"


def test_a_package_missing_on_one_architecture_is_named_with_it(tmp_path: Path, shared_store: Path) -> None:
    spec = STEPS_SPEC.replace("[libc-bin, zlib1g, dash, coreutils]", "[libc6-i386]")
    spec = spec[:spec.index("steps:")]
    (tmp_path / "imagelock.yaml").write_text(spec)
    r = run(["lock", str(tmp_path)], env={"IMAGELOCK_STORE": str(shared_store)})
    assert r.returncode == 2, r.stderr
    assert "libc6-i386" in r.stderr and "linux/arm64, Debian architecture arm64" in r.stderr
    assert not (tmp_path / "imagelock.lock").exists()



def test_keystone_for_arm64_gets_aarch64_wheels_whose_compiled_parts_load_under_qemu(
    tmp_path: Path, shared_store: Path
) -> None:
    ex = tmp_path / "keystone"
    shutil.copytree(REPO / "examples" / "keystone", ex)
    (ex / "imagelock.lock").unlink()
    spec = ex / "imagelock.yaml"
    doc = yaml.safe_load(spec.read_text())
    doc["image"]["platforms"] = ["linux/amd64", "linux/arm64"]
    # What is proved here is the wheels: pinned for each platform's tags, their compiled parts
    # loading on aarch64. Two things that only cost time under qemu are left out: byte-compiling
    # the ~3800 modules (bytecode under qemu: test_debian_*), and the Debian maintainer scripts
    # (ca-certificates' run a process per certificate; python-base's two-platform test runs them).
    doc["contents"]["python"]["compile"] = False
    doc["contents"]["debian"]["scripts"] = {"apply": False}
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {"IMAGELOCK_STORE": str(shared_store)}
    r = run(["lock", str(ex)], env=env, timeout=1200)
    assert r.returncode == 0, r.stderr
    lock = json.loads((ex / "imagelock.lock").read_text())
    for platform, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        wheels = {w["name"]: w["filename"] for w in lock["python"][platform]}
        for name in ("greenlet", "cryptography", "cffi"):
            assert wheels[name].endswith(f"_{machine}.whl"), wheels[name]
        assert all(f.endswith("-none-any.whl") or machine in f for f in wheels.values())

    archive = tmp_path / "arm64.tar"
    r = run(["build", str(ex), "--format", "docker-archive", "--platform", "linux/arm64",
             "-o", str(archive), "--offline"], env=env)
    assert r.returncode == 0, r.stderr
    emulation.ensure_binfmt("aarch64")
    cmd = podman_cmd(tmp_path / "podman")
    subprocess.run([*cmd, "load", "-i", str(archive)], capture_output=True, check=True)
    probe = ("import platform, greenlet, cryptography.hazmat.bindings._rust as r; "
             "from cryptography.hazmat.primitives import hashes; h = hashes.Hash(hashes.SHA256()); "
             "h.update(b'x'); print(platform.machine(), greenlet.__version__, h.finalize().hex()[:8])")
    out = subprocess.run([*cmd, "run", "--rm", "--network", "none", "--platform", "linux/arm64",
                          *PODMAN_RUN_LIMITS, "--entrypoint", "python3", "imagelock/keystone:bookworm",
                          "-c", probe], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    machine, version, digest = out.stdout.split()
    assert machine == "aarch64" and digest == hashlib.sha256(b"x").hexdigest()[:8]
    assert wheels_version(lock, "greenlet") == version


def wheels_version(lock: dict[str, Any], name: str) -> str:
    return next(w["version"] for w in lock["python"]["linux/arm64"] if w["name"] == name)
