"""Source builds (issue 15): a project that ships only an sdist is pinned with its build stage,
built into a wheel in the sandbox by the image's own Python, and installed without any of the
build's tools; a build that is not hermetic or not deterministic is stopped with a clear error.

Heavy builds are cached by the digest of their stage in the shared test store
(`derived/python-builds`), so a second run of the suite locks in seconds; the tests that must see
a build happen force it with IMAGELOCK_SOURCE_BUILDS=always."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers import PODMAN_RUN_LIMITS, layer_index, oci_layers, podman_cmd, run

from imagelock.formats.python import PythonContents
from imagelock.inputs.python.source_build import explain_wheels, stage_environment
from imagelock.lock.python_sources import LEGACY_BACKEND, build_system, constraints_for

SDE = 1767225600
BASE = """version: 1
image: {{name: test/{name}, tag: "1"}}
source_date_epoch: {sde}
sources:
  bookworm: {{kind: debian, suites: [bookworm]}}
{extra_sources}contents:
  debian:
    packages: [{debs}]
    scripts: {{apply: false}}
  python:
{python}"""


def _spec(d: Path, name: str, python: str, debs: str = "python3", extra_sources: str = "") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "imagelock.yaml").write_text(BASE.format(name=name, python=python, debs=debs, sde=SDE,
                                                  extra_sources=extra_sources))
    return d


# --- the spec ---------------------------------------------------------------------------------


def test_build_requires_debian_only_for_a_project_the_spec_consents_to_build() -> None:
    with pytest.raises(ValueError, match="does not consent to build"):
        PythonContents(requirements=["x"], build_requires_debian={"libvirt-python": ["gcc"]})
    ok = PythonContents(requirements=["x"], source_builds=["Libvirt_Python"],
                        build_requires_debian={"libvirt-python": ["gcc", "libvirt-dev"]})
    assert ok.may_build("libvirt-python") and not ok.may_build("simplegeneric")
    assert ok.build_debian("LIBVIRT-python") == ["gcc", "libvirt-dev"]
    assert PythonContents(requirements=["x"], source_builds="*").may_build("anything")


def test_a_bad_debian_package_name_in_build_requires_is_refused_at_the_spec() -> None:
    with pytest.raises(ValueError, match="not a Debian package name"):
        PythonContents(requirements=["x"], source_builds="*",
                       build_requires_debian={"p": ["GCC; rm -rf /"]})


def test_build_stage_environment_maps_the_build_path_away_and_writes_no_bytecode() -> None:
    env = stage_environment(SDE)
    assert "-ffile-prefix-map=/build/src=." in env["CFLAGS"]
    assert "-fdebug-prefix-map=/build/src=." in env["CFLAGS"]
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONHASHSEED"] == "0"
    assert env["SOURCE_DATE_EPOCH"] == str(SDE)


# --- pieces of the lock -------------------------------------------------------------------------


def _targz(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def test_an_sdist_without_build_system_gets_setuptools_legacy_backend(tmp_path: Path) -> None:
    sdist = _targz(tmp_path / "old-1.0.tar.gz", {"old-1.0/setup.py": "from setuptools import setup"})
    assert build_system(sdist, sdist.name) == (LEGACY_BACKEND, [], ["setuptools>=40.8.0"])
    new = _targz(tmp_path / "new-1.0.tar.gz", {"new-1.0/pyproject.toml": (
        '[build-system]\nrequires = ["flit_core>=3.2"]\nbuild-backend = "flit_core.buildapi"\n')})
    assert build_system(new, new.name) == ("flit_core.buildapi", [], ["flit_core>=3.2"])


def test_upper_constraints_in_a_requirements_file_choose_the_sdist_version(tmp_path: Path) -> None:
    (tmp_path / "upper-constraints.txt").write_text(
        "ovs===3.5.0;python_version=='3.11'\novs===3.1.0;python_version=='3.12'\nsix===1.17.0\n")
    (tmp_path / "requirements.txt").write_text("nova\n-c upper-constraints.txt\n")
    contents = PythonContents(requirements_file="requirements.txt", python_version="3.11",
                              source_builds="*")
    markers = {"python_version": "3.11"}
    assert str(constraints_for("ovs", contents, tmp_path, markers)) == "===3.5.0"
    assert str(constraints_for("libvirt-python", contents, tmp_path, markers)) == ""


def test_the_specs_constraints_file_chooses_the_sdist_version_too(tmp_path: Path) -> None:
    # `contents.python.constraints` (issue 16) as a set's image names it, with no requirements file
    (tmp_path / "upper-constraints.txt").write_text("pyperclip===1.9.0\nsimplegeneric===0.8.1\n")
    contents = PythonContents(requirements=["glance==30.0.0"], constraints="upper-constraints.txt",
                              python_version="3.11", source_builds=["pyperclip", "simplegeneric"])
    spec = constraints_for("pyperclip", contents, tmp_path, {"python_version": "3.11"})
    assert str(spec) == "===1.9.0" and "1.11.0" not in spec


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), data)
    return path


def test_a_wheel_that_differs_is_explained_by_its_differing_member(tmp_path: Path) -> None:
    a = _wheel(tmp_path / "a.whl", {"pkg/__init__.py": b"", "pkg/stamp.py": b"X = 1\n",
                                    "pkg-1.dist-info/RECORD": b"r"})
    b = _wheel(tmp_path / "b.whl", {"pkg/__init__.py": b"", "pkg/stamp.py": b"X = 22\n",
                                    "pkg-1.dist-info/RECORD": b"r", "pkg/extra.py": b""})
    text = explain_wheels(a, b)
    assert "member pkg/stamp.py: content differs (size 6 -> 7)" in text
    assert "member pkg/extra.py: only in the new wheel" in text
    assert "RECORD" not in text


# --- real builds: a local index of small sdists, and the projects of the issue --------------------

SETUP_NOISY = """import os
from setuptools import setup
os.makedirs("noisy", exist_ok=True)
with open("noisy/__init__.py", "w") as f:
    f.write("STAMP = %r\\n" % os.urandom(8).hex())
setup(name="noisy", version="1.0", packages=["noisy"])
"""
SETUP_ONLINE = """import socket, sys
from setuptools import setup
print("fetching the build's data from the network", file=sys.stderr)
socket.create_connection(("192.0.2.1", 80), timeout=10)
setup(name="online", version="1.0", packages=[])
"""
PYPROJECT_NO_REQUIRES = """[build-system]
requires = []
build-backend = "setuptools.build_meta"
"""


@pytest.fixture(scope="module")
def local_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEP 503 index on disk: three small sdists and the setuptools wheel they build with."""
    root = tmp_path_factory.mktemp("index")
    dl = root / "dl"
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                        ":all:", "-d", str(dl), "setuptools"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    files = [*dl.glob("setuptools-*.whl")]
    for name, extra in (("noisy", {"setup.py": SETUP_NOISY}),
                        ("online", {"setup.py": SETUP_ONLINE}),
                        ("nobackend", {"setup.py": "from setuptools import setup\nsetup()\n",
                                       "pyproject.toml": PYPROJECT_NO_REQUIRES})):
        files.append(_targz(dl / f"{name}-1.0.tar.gz",
                            {f"{name}-1.0/{k}": v for k, v in extra.items()}))
    simple = root / "simple"
    for f in files:
        _publish(simple, f)
    return simple


def _publish(simple: Path, f: Path, sha256: str | None = None) -> None:
    """Put `f` on the index, listed with `sha256` (default: its own)."""
    project = f.name.split("-")[0].lower()
    (simple / project).mkdir(parents=True, exist_ok=True)
    if f.parent != simple / project:
        (simple / project / f.name).write_bytes(f.read_bytes())
    sha = sha256 or hashlib.sha256(f.read_bytes()).hexdigest()
    (simple / project / "index.html").write_text(
        f'<html><body><a href="{f.name}#sha256={sha}">{f.name}</a></body></html>')


def _local_spec(d: Path, index: Path, project: str) -> Path:
    return _spec(d, project, f"    source: local\n    requirements: [{project}]\n"
                 f"    source_builds: [{project}]\n",
                 extra_sources=f"  local: {{kind: python, mirrors: ['{index.as_uri()}']}}\n")


@pytest.mark.network
@pytest.mark.tools
@pytest.mark.slow
def test_a_build_that_needs_the_network_fails_with_its_stderr_and_no_fallback(
        tmp_path: Path, shared_store: Path, local_index: Path) -> None:
    d = _local_spec(tmp_path / "online", local_index, "online")
    r = run(["lock", str(d)], env={"IMAGELOCK_STORE": str(shared_store)})
    assert r.returncode == 2, r.stderr
    assert "building online-1.0.tar.gz failed in the sandbox" in r.stderr
    assert "fetching the build's data from the network" in r.stderr  # the build's own stderr
    assert "Network is unreachable" in r.stderr
    assert not (d / "imagelock.lock").exists()


@pytest.mark.network
@pytest.mark.tools
@pytest.mark.slow
def test_a_build_backend_missing_from_the_pins_is_named(
        tmp_path: Path, shared_store: Path, local_index: Path) -> None:
    d = _local_spec(tmp_path / "nobackend", local_index, "nobackend")
    r = run(["lock", str(d)], env={"IMAGELOCK_STORE": str(shared_store)})
    assert r.returncode == 2, r.stderr
    assert "the build backend 'setuptools.build_meta' of nobackend-1.0.tar.gz cannot be " \
        "imported from the pinned build wheels (none)" in r.stderr
    assert "python_builds (nobackend)" in r.stderr


@pytest.mark.network
@pytest.mark.tools
@pytest.mark.slow
def test_an_sdist_whose_sha256_differs_from_its_index_is_refused(
        tmp_path: Path, shared_store: Path, local_index: Path) -> None:
    index = tmp_path / "simple"
    subprocess.run(["cp", "-r", str(local_index), str(index)], check=True)
    _publish(index, index / "online" / "online-1.0.tar.gz", sha256="0" * 64)
    d = _local_spec(tmp_path / "tampered", index, "online")
    r = run(["lock", str(d)], env={"IMAGELOCK_STORE": str(shared_store)})
    assert r.returncode == 3, r.stderr
    assert "sdist online-1.0.tar.gz" in r.stderr and "sha256" in r.stderr


@pytest.mark.network
@pytest.mark.tools
@pytest.mark.slow
def test_a_wheel_that_builds_differently_the_second_time_names_the_member(
        tmp_path: Path, shared_store: Path, local_index: Path) -> None:
    d = _local_spec(tmp_path / "noisy", local_index, "noisy")
    env = {"IMAGELOCK_STORE": str(shared_store)}
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    r = run(["build", str(d), "-o", str(tmp_path / "out"), "--offline"],
            env={**env, "IMAGELOCK_SOURCE_BUILDS": "always"})
    assert r.returncode == 1, r.stderr
    assert "the wheel built from noisy-1.0.tar.gz is not the lock's" in r.stderr
    assert "member noisy/__init__.py: content differs" in r.stderr
    assert not (tmp_path / "out").exists()  # no half-written image


def _lock(d: Path, store: Path) -> dict[str, Any]:
    r = run(["lock", str(d)], env={"IMAGELOCK_STORE": str(store)}, timeout=1800)
    assert r.returncode == 0, r.stderr
    return json.loads((d / "imagelock.lock").read_text())  # type: ignore[no-any-return]


@pytest.mark.network
@pytest.mark.tools
@pytest.mark.slow
def test_simplegeneric_is_built_from_source_importable_and_rebuilt_reproduced(
        tmp_path: Path, shared_store: Path) -> None:
    d = _spec(tmp_path / "sg", "simplegeneric", "    requirements: [wsme]\n"
              "    source_builds: [simplegeneric]\n")
    lock = _lock(d, shared_store)
    wheels = {w["name"]: w for w in lock["python"]["linux/amd64"]}
    assert wheels["simplegeneric"]["origin"] == "source-build"  # pulled in by WSME
    assert wheels["wsme"].get("origin") is None  # an index's
    (build,) = lock["python_builds"]["linux/amd64"]
    assert build["sdist"]["filename"].startswith("simplegeneric-")
    assert build["wheel_sha256"] == wheels["simplegeneric"]["sha256"]
    assert any(w["name"] == "setuptools" for w in build["build_wheels"])
    assert "setuptools" not in wheels  # a build requirement stays in the build stage
    env = {"IMAGELOCK_STORE": str(shared_store)}
    # `rebuild` builds the wheel again in the sandbox and compares with the lock.
    r = run(["rebuild", str(d), "--json"], env=env, timeout=1800)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verdict"] == "reproduced"
    r = run(["build", str(d), "-o", str(tmp_path / "img.tar"), "--format", "docker-archive"],
            env=env)
    assert r.returncode == 0, r.stderr
    podman = podman_cmd(tmp_path / "podman")
    assert subprocess.run([*podman, "load", "-i", str(tmp_path / "img.tar")],
                          capture_output=True).returncode == 0
    out = subprocess.run([*podman, "run", "--rm", "--network", "none", *PODMAN_RUN_LIMITS,
                          "test/simplegeneric:1", "python3", "-c",
                          "import simplegeneric, wsme; print(simplegeneric.__file__)"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "/usr/local/lib/python3.11/dist-packages/simplegeneric.py"
    # Under `imagelock check`'s variations the wheel is built again, and is the same.
    r = run(["check", str(d), "--json"], env=env, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["reproducible"] is True


@pytest.mark.network
@pytest.mark.tools
@pytest.mark.slow
def test_libvirt_python_builds_against_pinned_libvirt_dev_and_leaves_no_compiler(
        tmp_path: Path, shared_store: Path) -> None:
    d = _spec(tmp_path / "lv", "libvirt-python", "    requirements: [libvirt-python]\n"
              "    source_builds: [libvirt-python]\n    build_requires_debian:\n"
              "      libvirt-python: [gcc, libc6-dev, libvirt-dev, pkg-config, python3-dev]\n",
              debs="python3, libvirt0")
    lock = _lock(d, shared_store)
    (build,) = lock["python_builds"]["linux/amd64"]
    stage = {p["name"] for p in build["build_debian"]}
    image = {p["name"] for p in lock["debian"]["linux/amd64"]["packages"]}
    assert {"gcc", "gcc-12", "libvirt-dev", "python3-dev"} <= stage
    assert not stage & image and "libvirt0" in image  # build-only packages stay out
    env = {"IMAGELOCK_STORE": str(shared_store), "IMAGELOCK_SOURCE_BUILDS": "always"}
    # A second build of the wheel (the lock's was the first) gives the same image.
    r = run(["build", str(d), "-o", str(tmp_path / "oci"), "--offline", "--json"], env=env,
            timeout=1800)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)["platforms"]["linux/amd64"]["manifest_digest"]
    assert got == lock["expected"]["linux/amd64"]["manifest_digest"]
    paths = {p for blob in oci_layers(tmp_path / "oci") for p in layer_index(blob)}
    assert not {p for p in paths if p.startswith(("usr/bin/gcc", "usr/include/libvirt"))}
    assert any(p.endswith("dist-packages/libvirtmod.cpython-311-x86_64-linux-gnu.so")
               for p in paths)
    r = run(["build", str(d), "-o", str(tmp_path / "img.tar"), "--format", "docker-archive",
             "--offline"], env={"IMAGELOCK_STORE": str(shared_store)})
    assert r.returncode == 0, r.stderr
    podman = podman_cmd(tmp_path / "podman")
    assert subprocess.run([*podman, "load", "-i", str(tmp_path / "img.tar")],
                          capture_output=True).returncode == 0
    out = subprocess.run([*podman, "run", "--rm", "--network", "none", *PODMAN_RUN_LIMITS,
                          "test/libvirt-python:1", "python3", "-c",
                          "import libvirt, shutil; print(libvirt.getVersion(), shutil.which('gcc'))"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    version, gcc = out.stdout.split()
    assert int(version) >= 9000000 and gcc == "None"


# --- build-only stages of steps ----------------------------------------------------------------


def test_a_build_stage_step_must_name_its_outputs() -> None:
    from imagelock.formats.spec import Step

    with pytest.raises(ValueError, match="names its `outputs`"):
        Step(name="c", stage="build", shell="true")
    with pytest.raises(ValueError, match="need `stage: build`"):
        Step(name="c", shell="true", outputs=["/x"])
    with pytest.raises(ValueError, match="absolute image path"):
        Step(name="c", stage="build", shell="true", outputs=["../etc"])


def test_a_build_stage_keeps_only_its_outputs_and_the_directories_to_them() -> None:
    from imagelock.formats.spec import Step
    from imagelock.inputs.steps.run import only_outputs
    from imagelock.tar.entry import Entry

    step = Step(name="c", stage="build", shell="true", outputs=["/usr/local/bin/hello"])
    entries = [Entry("usr", "dir", 0o755), Entry("usr/local", "dir", 0o755),
               Entry("usr/local/bin", "dir", 0o755), Entry("usr/local/bin/hello", "file", 0o755),
               Entry("usr/bin/gcc", "file", 0o755), Entry("src/hello.o", "file"),
               Entry("usr/local/bin/.wh.old", "whiteout")]
    changes = [(e.path, "added") for e in entries if e.type != "whiteout"]
    kept, applied = only_outputs(step, entries, changes)
    assert [e.path for e in kept] == ["usr", "usr/local", "usr/local/bin", "usr/local/bin/hello"]
    assert "usr/bin/gcc" not in dict(applied)
    with pytest.raises(Exception, match="output /opt/tool was not produced"):
        only_outputs(step.model_copy(update={"outputs": ["/opt/tool"]}), entries, changes)


@pytest.mark.network
@pytest.mark.tools
@pytest.mark.slow
def test_a_build_stage_step_compiles_with_gcc_and_the_image_has_only_the_binary(
        tmp_path: Path, shared_store: Path) -> None:
    d = tmp_path / "stage"
    d.mkdir()
    (d / "imagelock.yaml").write_text(f"""version: 1
image: {{name: test/build-stage, tag: "1"}}
source_date_epoch: {SDE}
sources:
  bookworm: {{kind: debian, suites: [bookworm]}}
contents:
  debian:
    packages: [libc6]
    scripts: {{apply: false}}
steps:
  - name: hello
    stage: build
    build_requires_debian: [gcc, libc6-dev]
    shell: >-
      mkdir -p /src /usr/local/bin &&
      printf '#include <stdio.h>\\nint main(void){{puts("hello from the build stage");return 0;}}\\n'
      > /src/hello.c && gcc -O2 -o /usr/local/bin/hello /src/hello.c
    outputs: [/usr/local/bin/hello]
config:
  cmd: ["/usr/local/bin/hello"]
""")
    lock = _lock(d, shared_store)
    stage = {p["name"] for p in lock["step_builds"]["linux/amd64"]["hello"]}
    assert {"gcc-12", "libc6-dev", "dash"} <= stage
    r = run(["build", str(d), "-o", str(tmp_path / "oci"), "--offline"],
            env={"IMAGELOCK_STORE": str(shared_store)})
    assert r.returncode == 0, r.stderr
    layers = [layer_index(b) for b in oci_layers(tmp_path / "oci")]
    assert sorted(layers[-1]) == ["usr", "usr/local", "usr/local/bin", "usr/local/bin/hello"]
    assert not [p for layer in layers for p in layer if p.startswith(("usr/bin/gcc", "src"))]
    r = run(["build", str(d), "-o", str(tmp_path / "img.tar"), "--format", "docker-archive",
             "--offline"], env={"IMAGELOCK_STORE": str(shared_store)})
    assert r.returncode == 0, r.stderr
    podman = podman_cmd(tmp_path / "podman")
    assert subprocess.run([*podman, "load", "-i", str(tmp_path / "img.tar")],
                          capture_output=True).returncode == 0
    out = subprocess.run([*podman, "run", "--rm", "--network", "none", *PODMAN_RUN_LIMITS,
                          "test/build-stage:1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello from the build stage"


def test_a_wheel_pin_says_whether_it_came_from_find_links_or_a_source_build(tmp_path: Path) -> None:
    from imagelock.lock.python_sources import _origin

    links = tmp_path / "wheels"
    assert _origin((links / "a-1-py3-none-any.whl").as_uri(), {}, "a-1-py3-none-any.whl",
                   [str(links)]) == "find-links"
    assert _origin((tmp_path / "elsewhere" / "a-1-py3-none-any.whl").as_uri(), {},
                   "a-1-py3-none-any.whl", [str(links)]) is None
