"""Bytes independent of the rebuilder's toolchain (issue 11, item 6).

The story: a vendor locks and builds an image of Debian's python3 plus wheels with imagelock
installed under one Python; a rebuilder a year later has imagelock installed under another. Both
get the same bytes, because the bytecode is compiled by the image's own Python in the sandbox and
nothing else of the host's interpreter reaches the image.

The two interpreters are this machine's: the one running the tests (the setup's) and Debian's
/usr/bin/python3 (3.11.2), in a venv made here with an editable install of this checkout (cached
under ~/.cache/imagelock-tests, keyed by pyproject.toml, so a rerun takes seconds).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from helpers import REPO, run
from imagelock.fetch.store import Store

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.tools]

DEBIAN_PYTHON = Path("/usr/bin/python3")

SPEC = """\
version: 1
image:
  name: test/two-pythons
source_date_epoch: 1767225600
sources:
  bookworm:
    kind: debian
    suites: [bookworm]
contents:
  debian:
    packages: [python3]
  python:
    requirements: ["click", "six"]
"""


def _venv_python() -> Path:
    """Debian's Python with this checkout installed (editable), made once per pyproject.toml."""
    key = hashlib.sha256(REPO.joinpath("pyproject.toml").read_bytes() + str(REPO).encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "imagelock-tests"
    venv = cache / f"debian-python-{key.hexdigest()[:16]}"
    python = venv / "bin" / "python"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # parallel runs build it once
        if python.exists():
            return python
        stage = Path(tempfile.mkdtemp(dir=cache, prefix=".venv-"))
        try:
            r = subprocess.run([str(DEBIAN_PYTHON), "-m", "venv", str(stage)], capture_output=True,
                               text=True, timeout=300)
            assert r.returncode == 0, f"apt-get install python3-venv? {r.stderr}"
            os.rename(stage, venv)  # pip's editable install records the venv's final path
            r = subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(REPO)],
                               capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, r.stdout + r.stderr
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            shutil.rmtree(venv, ignore_errors=True)
            raise
    return python


def _pyc(python: str, src: Path, out: Path) -> bytes:
    """`src` compiled directly by `python`, as imagelock used to on the host."""
    code = ("import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], "
            "dfile='/m.py', doraise=True, invalidation_mode="
            "py_compile.PycInvalidationMode.CHECKED_HASH)")
    subprocess.run([python, "-S", "-s", "-B", "-c", code, str(src), str(out)], check=True,
                   env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"})
    return out.read_bytes()


@pytest.mark.skipif(not DEBIAN_PYTHON.is_file(), reason="needs Debian's /usr/bin/python3")
def test_the_same_lock_built_under_two_pythons_gives_identical_bytes(
        tmp_path: Path, shared_store: Path) -> None:
    other = _venv_python()
    versions = [subprocess.run([p, "-c", "import sys; print(sys.version.split()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip()
                for p in (sys.executable, str(other))]
    assert versions[0] != versions[1], versions  # two different interpreters, really

    spec_dir = tmp_path / "app"
    spec_dir.mkdir()
    (spec_dir / "imagelock.yaml").write_text(SPEC)
    env = {"IMAGELOCK_STORE": str(shared_store)}
    r = run(["lock", str(spec_dir)], env=env, timeout=900)
    assert r.returncode == 0, r.stderr
    lock = json.loads((spec_dir / "imagelock.lock").read_text())
    assert any(p["name"] == "python3.11" for p in lock["debian"]["linux/amd64"]["packages"])

    # The two interpreters disagree on bytecode when they compile it themselves: the old way,
    # compiling on the host, gave a MISMATCH here.
    click = next(w for w in lock["python"]["linux/amd64"] if w["name"] == "click")
    src = tmp_path / "utils.py"
    with zipfile.ZipFile(Store(shared_store).path_for(click["sha256"])) as zf:
        src.write_bytes(zf.read("click/utils.py"))
    assert _pyc(sys.executable, src, tmp_path / "a.pyc") != _pyc(str(other), src, tmp_path / "b.pyc")
    py_compile.compile(str(src), cfile=str(tmp_path / "c.pyc"), doraise=True)  # it is valid code

    outs = {}
    for name, imagelock in (("setup", Path(sys.executable).parent / "imagelock"),
                            ("debian", other.parent / "imagelock")):
        out = tmp_path / f"out-{name}"
        r = subprocess.run([str(imagelock), "build", str(spec_dir), "-o", str(out), "--offline",
                            "--json"], capture_output=True, text=True, timeout=900,
                           env={**os.environ, **env}, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        assert result["verdict"] == "reproduced", result
        outs[name] = out
    files = {name: {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in sorted(out.rglob("*")) if p.is_file()} for name, out in outs.items()}
    assert files["setup"] == files["debian"]
    index = json.loads((outs["debian"] / "index.json").read_text())
    assert index["manifests"][0]["digest"] == lock["expected"]["linux/amd64"]["manifest_digest"]
