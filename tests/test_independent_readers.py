"""Independent readers agree with what we wrote: skopeo, umoci and podman."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import PODMAN_RUN_LIMITS, REPO, copy_example, need, podman_cmd, run

pytestmark = pytest.mark.tools  # skopeo, umoci, podman

LOCK = json.loads((REPO / "examples/hello/imagelock.lock").read_text())
EXPECTED = LOCK["expected"]["linux/amd64"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("readers")
    ex = copy_example("hello", tmp / "hello")
    env = {"IMAGELOCK_STORE": str(tmp / "store")}
    for args in (["-o", str(tmp / "oci")], ["-o", str(tmp / "img.tar"), "--format", "docker-archive"]):
        r = run(["build", str(ex), *args], env=env)
        assert r.returncode == 0, r.stderr
    return {"oci": tmp / "oci", "archive": tmp / "img.tar", "tmp": tmp}


def test_skopeo_reads_our_manifest_digest(built: dict[str, Path]) -> None:
    need("skopeo")
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{built['oci']}:1.0"],
                         capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == EXPECTED["manifest_digest"]
    cfg = subprocess.run(["skopeo", "inspect", "--config", "--raw", f"oci:{built['oci']}:1.0"],
                         capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(cfg).hexdigest() == EXPECTED["config_digest"]
    # skopeo reads the docker-archive too, and finds the same config (image ID).
    out = subprocess.run(["skopeo", "inspect", "--config", "--raw", f"docker-archive:{built['archive']}"],
                         capture_output=True, check=True).stdout
    assert "sha256:" + hashlib.sha256(out).hexdigest() == EXPECTED["config_digest"]


def test_umoci_unpacks_the_files_modes_owners_and_links_the_spec_asks_for(
    built: dict[str, Path],
) -> None:
    need("umoci")
    bundle = built["tmp"] / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{built['oci']}:1.0", str(bundle)],
                   check=True, capture_output=True)
    root = bundle / "rootfs"

    def info(rel: str) -> tuple[str, int, int, int]:
        st = os.lstat(root / rel)
        kind = "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f"
        return kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

    assert info("usr/local/bin/hello") == ("f", 0o755, 0, 0)
    assert info("etc/passwd") == ("f", 0o644, 0, 0)
    assert info("tmp") == ("d", 0o1777, 0, 0)
    assert info("usr/bin/hello")[0] == "l"
    assert os.readlink(root / "usr/bin/hello") == "../local/bin/hello"
    assert (root / "usr/local/bin/hello").read_bytes() == (REPO / "examples/hello/hello").read_bytes()
    assert (root / "etc/os-release").read_bytes() == (REPO / "examples/hello/rootfs/etc/os-release").read_bytes()
    listed = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert listed == sorted(
        ["etc", "etc/group", "etc/os-release", "etc/passwd", "tmp", "usr", "usr/bin",
         "usr/bin/hello", "usr/local", "usr/local/bin", "usr/local/bin/hello", "usr/share",
         "usr/share/hello", "usr/share/hello/README.txt"]
    )


def test_podman_loads_the_archive_with_our_config_digest_as_id_and_runs_it(
    built: dict[str, Path],
) -> None:
    podman = podman_cmd(built["tmp"] / "podman")
    load = subprocess.run([*podman, "load", "-i", str(built["archive"])], capture_output=True,
                          text=True, timeout=300)
    assert load.returncode == 0, load.stderr
    ids = subprocess.run([*podman, "images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    want = EXPECTED["config_digest"].removeprefix("sha256:")
    assert f"{want} localhost/imagelock/hello:1.0" in [i.removeprefix("sha256:") for i in ids]
    out = subprocess.run([*podman, "run", "--rm", "--network", "none", *PODMAN_RUN_LIMITS,
                          "imagelock/hello:1.0", "from", "podman"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Hello from a reproducible image!\nfrom\npodman\n"
    subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True)
