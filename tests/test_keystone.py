"""examples/keystone: OpenStack Keystone from pinned wheels on python-base's Debian packages,
built from its committed lock, run with podman, and rebuilt bit for bit.

The example comes through `fresh_example` (tests/example_locks.py): the committed lock while
the mirrors and indexes serve its pins, else a re-locked copy and a warning saying how to
refresh it."""

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
    podman_cmd,
    run,
    varied_host_prefix,
)

pytestmark = [pytest.mark.network,  # .debs and wheels come from the configured mirrors and indexes
              pytest.mark.tools,  # podman runs the image
              pytest.mark.slow]  # every test needs the module's build of keystone
TAG = "imagelock/keystone:bookworm"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_store: Path,
          fresh_example: Callable[[str], FreshExample]) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("keystone")
    example = fresh_example("keystone")
    ex = example.checkout(tmp / "keystone")
    expected = example.expected
    env = {"IMAGELOCK_STORE": str(shared_store)}
    r = run(["fetch", str(ex)], env=env)
    assert r.returncode == 0, r.stderr
    r = run(["build", str(ex), "-o", str(tmp / "img.tar"), "--format", "docker-archive",
             "--offline", "--json"], env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["platforms"]["linux/amd64"]["manifest_digest"] == expected["manifest_digest"]
    podman = podman_cmd(tmp / "podman")
    load = subprocess.run([*podman, "load", "-i", str(tmp / "img.tar")], capture_output=True, text=True)
    assert load.returncode == 0, load.stderr
    return {"ex": ex, "tmp": tmp, "env": env, "podman": podman, "example": example,
            "lock": example.lock, "expected": expected}


def _run(built: dict, *argv: str, entrypoint: str | None = None) -> str:  # type: ignore[type-arg]
    ep = ["--entrypoint", entrypoint] if entrypoint else []
    r = subprocess.run([*built["podman"], "run", "--rm", "--network", "none", *PODMAN_RUN_LIMITS,
                        *ep, TAG, *argv], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_keystone_manage_reports_the_locked_version(built: dict) -> None:  # type: ignore[type-arg]
    pin = next(p for p in built["lock"]["python"]["linux/amd64"] if p["name"] == "keystone")
    assert _run(built, "--version").strip() == pin["version"]


def test_keystone_imports_and_every_locked_wheel_is_installed_at_its_version(built: dict) -> None:  # type: ignore[type-arg]
    code = ("import keystone, importlib.metadata as m, re\n"
            "for d in m.distributions():\n"
            "    print(re.sub(r'[-_.]+', '-', d.metadata['Name']).lower(), d.version)")
    out = _run(built, "-c", code, entrypoint="python3")
    got = sorted(tuple(line.split()) for line in out.splitlines())
    want = sorted((p["name"], p["version"]) for p in built["lock"]["python"]["linux/amd64"])
    assert got == want
    assert len(want) > 50


def test_bytecode_is_hash_based_with_in_image_paths(built: dict) -> None:  # type: ignore[type-arg]
    code = ("import importlib.util, keystone, marshal, pathlib\n"
            "p = pathlib.Path(importlib.util.cache_from_source(keystone.__file__))\n"
            "data = p.read_bytes(); flags = int.from_bytes(data[4:8], 'little')\n"
            "print(flags, marshal.loads(data[16:]).co_filename)")
    flags, filename = _run(built, "-c", code, entrypoint="python3").split()
    assert flags == "3"  # hash-based, checked
    assert filename == "/usr/local/lib/python3.11/dist-packages/keystone/__init__.py"


def test_varied_host_build_and_rebuild_are_reproduced(built: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    other = built["example"].checkout(tmp_path / "elsewhere" / "keystone")
    env = {**VARIED_ENV, "HOME": str(tmp_path), **built["env"]}
    r = run(["build", str(other), "-o", str(tmp_path / "out"), "--offline", "--json"],
            cwd=tmp_path, env=env, prefix=varied_host_prefix())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["platforms"]["linux/amd64"]["manifest_digest"] == built["expected"]["manifest_digest"]
    r = run(["rebuild", str(built["ex"]), "--image", f"oci:{tmp_path / 'out'}", "--offline",
             "--json"], env=built["env"])
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert (rep["verdict"], rep["sandbox"]) == ("reproduced", "bubblewrap")
    assert re.match(r"^sha256:[0-9a-f]{64}$", rep["rebuilt"]["manifest_digest"])
