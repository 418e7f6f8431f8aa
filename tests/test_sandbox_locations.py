"""Wherever a person puts the project, the build sandbox keeps its /tmp empty and private, and the
sandboxed build still reproduces the lock: a clone (its source and its .venv), the store and the
build context under /tmp, /var/tmp, /home or a path with a space, built with the real bwrap.

The interpreter that runs each case is the copied .venv's, importing the copied source, so the
sandbox binds the copy (sys.prefix, the editable source) from that location.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import IMAGELOCK, REPO, copy_example, need
from imagelock.sandbox import bwrap as sb

# Run by the copied venv's python: argv[1] is the location. Prints one JSON document.
DRIVER = r"""
import json, os, sys
from pathlib import Path
from imagelock.rebuild.sandboxed import build_in_sandbox
from imagelock.sandbox import bwrap as sb

base = Path(sys.argv[1])
probe = '''
import json, os
before = sorted(os.listdir("/tmp"))
open("/tmp/written-inside", "w").write("x")
print(json.dumps(before))
'''
seen = {}
for mode, tmp in (("tmpfs", None), ("disk", base / "fresh-tmp")):
    box = sb.build_sandbox(inputs=[base / "store", base / "hello"], outputs=[base / "probe-out"],
                           tmp=tmp)
    r = box.run([sb.inside_path(sys.executable), "-I", "-B", "-c", probe])
    assert r.returncode == 0, r.stderr.decode()
    seen[mode] = json.loads(r.stdout)
res = build_in_sandbox(base / "hello" / "imagelock.lock", None, base / "store", base / "out",
                          "oci")
print(json.dumps({"tmp": seen, "build": res, "imagelock": __import__("imagelock").__file__,
                  "prefix": sys.prefix}))
"""


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system: a real copy
        shutil.copy2(src, dst)


def _clone_into(base: Path) -> Path:
    """The package source and a copy of this run's venv under `base/repo`; the copy's python.

    The venv's files are hard links where the file system allows (read only here); its editable
    install's `.pth`, which names the source directory, is replaced to name the copied source.
    """
    repo = base / "repo"
    shutil.copytree(REPO / "verifier" / "imagelock", repo / "verifier" / "imagelock",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = repo / ".venv"
    shutil.copytree(sys.prefix, venv, symlinks=True, copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for pth in venv.glob("lib/python*/site-packages/__editable__*imagelock*.pth"):
        pth.unlink()  # a hard link to the original venv's file: never write through it
        pth.write_text(f"{repo / 'verifier'}\n")
    return venv / "bin" / Path(sys.executable).name


def _unique_dir(parent: str, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


LOCATIONS = {
    "tmp": ("/tmp", "imagelock-loc-"),
    "var-tmp": ("/var/tmp", "imagelock-loc-"),
    "home": ("/home", "imagelock-loc-"),
    "space": ("/tmp", "imagelock loc with space "),
}


@pytest.fixture(params=sorted(LOCATIONS))
def location(request: pytest.FixtureRequest) -> Iterator[Path]:
    parent, prefix = LOCATIONS[request.param]
    yield from _unique_dir(parent, prefix)


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/hello plus a pinned file:// download, locked once: `hello/` and `store/`.

    The lock names its context relative to itself and the download is in the store, so a
    copy of both builds anywhere without fetching.
    """
    need("bwrap")
    assert sb.available(), sb._probe(False)
    base = tmp_path_factory.mktemp("locked")
    ctx = copy_example("hello", base / "hello")
    (ctx / "imagelock.lock").unlink()
    served = base / "served-blob"  # a pinned download: the store is not empty
    served.write_bytes(b"pinned download\n" * 100)
    spec = ctx / "imagelock.yaml"
    spec.write_text(spec.read_text().replace(
        "contents:\n", f"contents:\n  downloads:\n    - {{url: 'file://{served}', "
        "dest: /usr/share/hello/blob}\n", 1))
    r = subprocess.run([IMAGELOCK, "lock", str(ctx), "--store", str(base / "store")],
                       check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert len(list((base / "store" / "sha256").iterdir())) == 1
    served.unlink()  # the build must take it from the store
    return base


@pytest.mark.tools
def test_sandbox_tmp_is_empty_and_the_build_works_wherever_the_project_lives(
    location: Path, locked: Path
) -> None:
    python = _clone_into(location)
    ctx = shutil.copytree(locked / "hello", location / "hello")
    shutil.copytree(locked / "store", location / "store")
    (location / "probe-out").mkdir()
    (location / "fresh-tmp").mkdir()

    r = subprocess.run([str(python), "-B", "-c", DRIVER, str(location)], check=False,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/",
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # The copy is what ran: its venv, and the source beside it.
    assert out["prefix"] == str(location / "repo" / ".venv")
    assert out["imagelock"] == str(location / "repo" / "verifier" / "imagelock" / "__init__.py")
    # /tmp inside was empty both ways, and what was written there stayed private.
    assert out["tmp"] == {"tmpfs": [], "disk": []}
    assert os.listdir(location / "fresh-tmp") == ["written-inside"]
    assert not Path("/tmp/written-inside").exists()
    # The sandboxed build reproduced the lock, and reports host paths.
    expected = json.loads((ctx / "imagelock.lock").read_text())["expected"]["linux/amd64"]
    assert out["build"]["verdict"] == "reproduced"
    assert out["build"]["output"] == str(location / "out")
    assert out["build"]["platforms"]["linux/amd64"]["manifest_digest"] == \
        expected["manifest_digest"]
    index = json.loads((location / "out" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == expected["manifest_digest"]


@pytest.mark.parametrize("host", ["/tmp", "/tmp/x y/.venv", "/proc/self", "/dev/shm/store"])
def test_paths_under_the_sandboxs_own_mounts_are_bound_elsewhere(host: str) -> None:
    inside = sb.inside_path(host)
    assert inside == sb.HOST_PREFIX + host
    assert not any(inside == m or inside.startswith(m + "/") for m in ("/tmp", "/proc", "/dev"))


@pytest.mark.parametrize("host", ["/var/tmp/x", "/home/u/repo", "/root/.pyenv", "/usr",
                                  "/tmpfoo/x", "/srv/a b/c"])
def test_other_paths_are_bound_at_their_own_path(host: str) -> None:
    assert sb.inside_path(host) == host
