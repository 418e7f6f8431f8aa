"""Hermetic build steps: their changes become a layer (with whiteouts, real owners); they have no
network; a failing step shows its output and leaves no image; `imagelock check` catches a step
that writes the date or random bytes and names the file and the variation."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from helpers import oci_layers, run

pytestmark = [pytest.mark.network,  # the image's .debs come from the Debian mirror
              pytest.mark.tools]  # steps run in bubblewrap

HEAD = """\
version: 1
image: {{name: steps/test}}
source_date_epoch: 1767225600
sources:
  bookworm: {{kind: debian, suites: [bookworm]}}
contents:
  debian:
    packages: [dash, coreutils]
steps:
{steps}"""


def _project(tmp: Path, steps: str) -> Path:
    d = tmp / "proj"
    d.mkdir(exist_ok=True)
    (d / "imagelock.yaml").write_text(HEAD.format(steps=steps))
    return d


@pytest.mark.slow
def test_step_changes_become_a_layer_with_whiteouts_and_owners(tmp_path: Path, shared_store: Path) -> None:
    env = {"IMAGELOCK_STORE": str(shared_store)}
    d = _project(tmp_path, "  - name: setup\n    shell: >-\n      echo hi > /greeting &&\n"
                 "      mkdir -p /srv/data && chown 1234:5678 /srv/data &&\n"
                 "      rm /usr/share/doc/dash/copyright && ln -s /greeting /usr/greeting\n")
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 0, r.stderr
    r = run(["build", str(d), "-o", str(tmp_path / "out")], env=env)
    assert r.returncode == 0, r.stderr
    layers = oci_layers(tmp_path / "out")
    assert len(layers) == 2
    with tarfile.open(layers[-1]) as tf:
        members = {m.name.rstrip("/"): m for m in tf.getmembers()}
        greeting = tf.extractfile("greeting")
        assert greeting is not None and greeting.read() == b"hi\n"
    assert (members["srv/data"].uid, members["srv/data"].gid) == (1234, 5678)
    assert "usr/share/doc/dash/.wh.copyright" in members
    assert members["usr/greeting"].issym() and members["usr/greeting"].linkname == "/greeting"
    assert {m.mtime for m in members.values()} == {1767225600}
    # and it rebuilds bit for bit in the verifier's sandbox
    r = run(["rebuild", str(d), "--image", f"oci:{tmp_path / 'out'}", "--json"], env=env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["verdict"] == "reproduced" and rep["sandbox"].startswith("network namespace")


@pytest.mark.slow
def test_a_step_has_no_network(tmp_path: Path, shared_store: Path) -> None:
    """The step succeeds only if it can see a network interface besides loopback; in the
    sandbox there is none (the host's interfaces, and so its listeners, are out of reach)."""
    env = {"IMAGELOCK_STORE": str(shared_store)}
    d = _project(tmp_path, "  - name: net\n    shell: >-\n"
                 "      grep -v ' lo:' /proc/net/dev | grep -q ':' && exit 0; exit 7\n")
    r = run(["lock", str(d)], env=env)
    assert r.returncode == 2, r.stderr
    assert "step 'net'" in r.stderr and "exited with 7" in r.stderr
    assert not (d / "imagelock.lock").exists()
    # The same probe on the host does see an interface besides loopback: the test can fail.
    host = Path("/proc/net/dev").read_text().splitlines()[2:]
    assert any(":" in line and not line.strip().startswith("lo:") for line in host)


@pytest.mark.slow
def test_a_failing_step_shows_its_output_and_leaves_no_image(tmp_path: Path, shared_store: Path) -> None:
    env = {"IMAGELOCK_STORE": str(shared_store)}
    d = _project(tmp_path, "  - name: ok\n    shell: echo fine > /ok\n")
    assert run(["lock", str(d)], env=env).returncode == 0
    spec = d / "imagelock.yaml"
    spec.write_text(spec.read_text().replace(
        "shell: echo fine > /ok",
        "shell: \"echo compiling widgets; echo 'widget.c:3: error' >&2; exit 3\""))
    r = run(["lock", str(d), "-o", str(tmp_path / "new.lock")], env=env)
    assert r.returncode == 2
    assert "compiling widgets" in r.stderr and "widget.c:3: error" in r.stderr
    assert "exited with 3" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "new.lock").exists()
    assert list(tmp_path.glob(".new.lock*")) == []


@pytest.mark.slow
def test_check_names_the_file_and_the_variation(tmp_path: Path, shared_store: Path) -> None:
    env = {"IMAGELOCK_STORE": str(shared_store)}
    d = _project(tmp_path, "  - name: stamp\n    shell: >-\n"
                 "      date +%F > /build-date && head -c 16 /dev/urandom > /random.bin &&\n"
                 "      echo stable > /stable\n")
    assert run(["lock", str(d)], env=env).returncode == 0
    r = run(["check", str(d), "--variation", "wall-clock", "--variation", "timezone", "--json"],
            env=env)
    assert r.returncode == 1, r.stderr
    res = json.loads(r.stdout)
    assert not res["reproducible"]
    by = {f["variation"]: {d["path"] for d in f["differences"]} for f in res["findings"]}
    assert by == {"every-build": {"/random.bin"}, "wall-clock": {"/build-date"}}


@pytest.mark.slow
def test_check_passes_a_deterministic_step(tmp_path: Path, shared_store: Path) -> None:
    env = {"IMAGELOCK_STORE": str(shared_store)}
    d = _project(tmp_path, "  - name: stable\n    shell: echo stable > /stable && date -d @$SOURCE_DATE_EPOCH +%F > /date\n")
    assert run(["lock", str(d)], env=env).returncode == 0
    r = run(["check", str(d), "--json"], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["reproducible"]
