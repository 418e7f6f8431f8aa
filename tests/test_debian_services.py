"""Service images that work as apt installs them: nginx serves its page, apache2 runs a WSGI
app, ssh runs, awk exists. The maintainer scripts' effects come from each example's lock; no
script runs when the image is built. Each image runs under podman with `--network none`, and
each reproduces under `imagelock check`'s variations.

The examples come through `fresh_example` (tests/example_locks.py): the committed lock while
the archive serves its pins, else a re-locked copy."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from example_locks import FreshExample
from helpers import PODMAN_RUN_LIMITS, podman_cmd, run

pytestmark = [pytest.mark.network,  # the .debs come from the machine's Debian mirror
              pytest.mark.tools,  # podman runs the images
              pytest.mark.slow]
EXAMPLES = {"nginx": "imagelock/nginx:bookworm", "apache-wsgi": "imagelock/apache-wsgi:bookworm",
            "openssh-client": "imagelock/openssh-client:bookworm"}


AWK = "awk 'BEGIN { print 1 }' && readlink -f /usr/bin/awk"
# What each image is asked, section by section, in one container per image (podman's vfs
# storage copies the whole image for every run).
SECTIONS: dict[str, dict[str, str]] = {
    "nginx": {
        "serve": "nginx -t && nginx && curl -sS http://127.0.0.1/",
        "effects": "readlink /etc/nginx/sites-enabled/default && stat -c '%U:%G' /var/log/nginx",
        "awk": AWK},
    "apache-wsgi": {
        "serve": "apache2ctl -t && apache2ctl start && sleep 1 && curl -sS http://127.0.0.1/hello/x",
        "effects": "ls /etc/apache2/mods-enabled /etc/apache2/sites-enabled && "
                   "ls /usr/lib/python3.11/__pycache__ | wc -l",
        "awk": AWK},
    "openssh-client": {
        "ssh": "ssh -V && stat -c '%a %U:%G' /usr/bin/ssh-agent",
        "awk": AWK},
}


def _script(sections: dict[str, str]) -> str:
    """One shell script running each section in a subshell (stderr into stdout), each output
    framed by its name and exit status."""
    return "".join(f"echo '@@ {name}'; ( {cmd} ) 2>&1; echo \"@@ rc $?\"; "
                   for name, cmd in sections.items())


def _sections(out: str) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    name, lines = None, list[str]()
    for line in out.splitlines():
        if line.startswith("@@ rc ") and name is not None:
            found[name] = (int(line[6:]), "\n".join(lines))
            name, lines = None, []
        elif line.startswith("@@ "):
            name, lines = line[3:], []
        else:
            lines.append(line)
    return found


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, shared_store: Path,
           fresh_example: Callable[[str], FreshExample]) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("services")
    podman = podman_cmd(tmp / "podman")
    env = {"IMAGELOCK_STORE": str(shared_store)}
    examples, ran = {}, {}
    for name in EXAMPLES:
        example = fresh_example(name)
        ex = example.checkout(tmp / name)
        r = run(["fetch", str(ex)], env=env)
        assert r.returncode == 0, r.stderr
        archive = tmp / f"{name}.tar"
        r = run(["build", str(ex), "-o", str(archive), "--format", "docker-archive", "--offline",
                 "--json"], env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["platforms"]["linux/amd64"]["config_digest"] == \
            example.expected["config_digest"]
        load = subprocess.run([*podman, "load", "-i", str(archive)], capture_output=True, text=True)
        assert load.returncode == 0, load.stderr
        examples[name] = ex
        r2 = subprocess.run([*podman, "run", "--rm", "--network", "none", *PODMAN_RUN_LIMITS,
                             "--entrypoint", "sh", EXAMPLES[name], "-c", _script(SECTIONS[name])],
                            capture_output=True, text=True, timeout=300)
        assert r2.returncode == 0, r2.stderr
        ran[name] = _sections(r2.stdout)
        assert set(ran[name]) == set(SECTIONS[name]), r2.stdout[-3000:]
    return {"podman": podman, "examples": examples, "env": env, "ran": ran}


def _ran(images: dict[str, object], name: str, section: str) -> str:
    ran = images["ran"]
    assert isinstance(ran, dict)
    rc, out = ran[name][section]
    assert rc == 0, out[-3000:]
    return str(out)


def test_nginx_serves_its_default_page_on_loopback(images: dict[str, object]) -> None:
    out = _ran(images, "nginx", "serve")
    assert "<title>Welcome to nginx!</title>" in out
    assert "syntax is ok" in out  # nginx -t, run as root with www-data from base-passwd
    # the postinst's effects, from the lock: the default site enabled, the log directory root:adm
    out = _ran(images, "nginx", "effects")
    assert out.split() == ["/etc/nginx/sites-available/default", "root:adm"]


def test_apache_serves_a_wsgi_app_with_its_configuration_checked(images: dict[str, object]) -> None:
    out = _ran(images, "apache-wsgi", "serve")
    assert "Syntax OK" in out.splitlines()
    assert out.splitlines()[-1].startswith("hello from WSGI on Python 3.11 at /x")
    # a2enmod's work and py3compile's: the MPM, wsgi and the default site enabled, bytecode there
    out = _ran(images, "apache-wsgi", "effects")
    assert {"mpm_event.load", "wsgi.load", "000-default.conf"} <= set(out.split())
    assert int(out.split()[-1]) > 100


def test_ssh_runs_and_ssh_agent_keeps_its_statoverride(images: dict[str, object]) -> None:
    out = _ran(images, "openssh-client", "ssh").splitlines()
    assert out[0].startswith("OpenSSH_")
    assert out[-1] == "2755 root:_ssh"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_awk_works_where_mawk_is_installed(images: dict[str, object], name: str) -> None:
    assert _ran(images, name, "awk").split() == ["1", "/usr/bin/mawk"]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_image_reproduces_under_check_variations(images: dict[str, object], name: str) -> None:
    examples = images["examples"]
    assert isinstance(examples, dict)
    env = images["env"]
    assert isinstance(env, dict)
    r = run(["check", str(examples[name]), "--json"], env=env, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["reproducible"] is True, report
