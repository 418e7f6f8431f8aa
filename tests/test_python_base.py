"""examples/python-base: a Debian bookworm image with Python, rebuilt from its committed lock,
run with podman, inspected with dpkg, and rebuilt again under varied hosts.

The example comes through `fresh_example` (tests/example_locks.py): the committed lock while
the archive serves its pins, else a re-locked copy and a warning saying how to refresh it."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from example_locks import FreshExample
from helpers import (
    PODMAN_RUN_LIMITS,
    VARIED_ENV,
    layer_index,
    need,
    oci_layers,
    podman_cmd,
    run,
    varied_host_prefix,
)

pytestmark = [pytest.mark.network,  # the .debs come from the machine's Debian mirror
              pytest.mark.tools,  # podman runs the image
              pytest.mark.slow]  # every test needs the module's build of python-base
TAG = "imagelock/python-base:3.11-bookworm"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_store: Path,
          fresh_example: Callable[[str], FreshExample]) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("pybase")
    example = fresh_example("python-base")
    ex = example.checkout(tmp / "python-base")
    expected = example.expected
    env = {"IMAGELOCK_STORE": str(shared_store)}
    r = run(["fetch", str(ex)], env=env)
    assert r.returncode == 0, r.stderr
    for args in (["-o", str(tmp / "oci")], ["-o", str(tmp / "img.tar"), "--format", "docker-archive"]):
        r = run(["build", str(ex), *args, "--offline", "--json"], env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["platforms"]["linux/amd64"]["manifest_digest"] == expected["manifest_digest"]
    podman = podman_cmd(tmp / "podman")
    load = subprocess.run([*podman, "load", "-i", str(tmp / "img.tar")], capture_output=True, text=True)
    assert load.returncode == 0, load.stderr
    return {"ex": ex, "oci": tmp / "oci", "tmp": tmp, "store": shared_store, "podman": podman,
            "example": example, "lock": example.lock, "expected": expected}


def _podman_run(built: dict, *argv: str) -> str:  # type: ignore[type-arg]
    r = subprocess.run([*built["podman"], "run", "--rm", "--network", "none", *PODMAN_RUN_LIMITS,
                        TAG, *argv], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_python_runs_with_ssl_sqlite_json(built: dict) -> None:  # type: ignore[type-arg]
    out = _podman_run(built, "python3", "-c",
                      "import ssl, sqlite3, json; print(ssl.OPENSSL_VERSION)")
    ssl_pin = next(p for p in built["lock"]["debian"]["linux/amd64"]["packages"] if p["name"] == "libssl3")
    assert out.startswith("OpenSSL " + ssl_pin["version"].split("-")[0])


def test_dpkg_lists_every_locked_package_at_its_locked_version(built: dict) -> None:  # type: ignore[type-arg]
    out = _podman_run(built, "dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n")
    got = sorted(tuple(line.split()) for line in out.splitlines())
    want = sorted((p["name"], p["version"], "ii") for p in built["lock"]["debian"]["linux/amd64"]["packages"])
    assert got == want
    # dpkg -S finds the owner of a file: the per-package file lists are there.
    assert _podman_run(built, "dpkg", "-S", "/usr/bin/python3.11").startswith("python3.11-minimal:")


def test_accounts_and_merged_usr(built: dict) -> None:  # type: ignore[type-arg]
    layers = [layer_index(b) for b in oci_layers(built["oci"])]
    debian = layers[0]
    assert debian["bin"][0] == b"2" and debian["bin"][4] == "usr/bin"  # bin -> usr/bin
    assert not any(p.startswith("bin/") for p in debian)
    passwd = _podman_run(built, "python3", "-c", "print(open('/etc/passwd').read())")
    assert re.search(r"^app:[!x*]:1000:1000::/home/app:/usr/sbin/nologin$", passwd, re.MULTILINE)
    assert _podman_run(built, "python3", "-c", "import os; print(os.getuid())").strip() == "1000"


def test_two_builds_under_varied_hosts_give_the_locked_digest(built: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    need("faketime")
    other = built["example"].checkout(tmp_path / "another" / "checkout")
    env = {**VARIED_ENV, "HOME": str(tmp_path), "IMAGELOCK_STORE": str(built["store"])}
    r = run(["build", str(other), "-o", str(tmp_path / "out"), "--offline", "--json"],
            cwd=tmp_path, env=env, prefix=varied_host_prefix())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["platforms"]["linux/amd64"]["manifest_digest"] == built["expected"]["manifest_digest"]


def test_rebuild_is_reproduced_against_layout_archive_and_loopback_registry(
    built: dict, registry: object, tmp_path: Path  # type: ignore[type-arg]
) -> None:
    env = {"IMAGELOCK_STORE": str(built["store"])}
    host = registry.host  # type: ignore[attr-defined]
    r = run(["push", str(built["oci"]), f"{host}/imagelock/python-base:3.11", "--json"], env=env)
    assert r.returncode == 0, r.stderr
    pushed = json.loads(r.stdout)["digest"]
    assert pushed == built["expected"]["manifest_digest"]
    refs = [f"oci:{built['oci']}", f"docker-archive:{built['tmp'] / 'img.tar'}",
            f"{host}/imagelock/python-base@{pushed}", f"{host}/imagelock/python-base:3.11"]
    for ref in refs:
        r = run(["rebuild", str(built["ex"]), "--image", ref, "--offline", "--json"], env=env)
        assert r.returncode == 0, (ref, r.stderr)
        rep = json.loads(r.stdout)
        # A docker-archive stores layers uncompressed: its content identity is what must match.
        want = "reproduced-content" if ref.startswith("docker-archive:") else "reproduced"
        assert (rep["verdict"], rep["sandbox"]) == (want, "bubblewrap"), ref
    # pull gives back the same bytes
    r = run(["pull", f"{host}/imagelock/python-base:3.11", "-o", str(tmp_path / "pulled"), "--json"], env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["manifest_digest"] == built["expected"]["manifest_digest"]
