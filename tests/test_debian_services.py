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


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, shared_store: Path,
           fresh_example: Callable[[str], FreshExample]) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("services")
    podman = podman_cmd(tmp / "podman")
    env = {"IMAGELOCK_STORE": str(shared_store)}
    examples = {}
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
    return {"podman": podman, "examples": examples, "env": env}


def _run(images: dict[str, object], name: str, script: str) -> subprocess.CompletedProcess[str]:
    podman = images["podman"]
    assert isinstance(podman, list)
    return subprocess.run([*podman, "run", "--rm", "--network", "none", *PODMAN_RUN_LIMITS,
                           "--entrypoint", "sh", EXAMPLES[name], "-c", script],
                          capture_output=True, text=True, timeout=300)


def test_nginx_serves_its_default_page_on_loopback(images: dict[str, object]) -> None:
    r = _run(images, "nginx", "nginx -t && nginx && curl -sS http://127.0.0.1/")
    assert r.returncode == 0, r.stderr
    assert "<title>Welcome to nginx!</title>" in r.stdout
    assert "syntax is ok" in r.stderr  # nginx -t, run as root with www-data from base-passwd
    # the postinst's effects, from the lock: the default site enabled, the log directory root:adm
    r = _run(images, "nginx", "readlink /etc/nginx/sites-enabled/default; stat -c '%U:%G' /var/log/nginx")
    assert r.stdout.split() == ["/etc/nginx/sites-available/default", "root:adm"], r.stderr


def test_apache_serves_a_wsgi_app_with_its_configuration_checked(images: dict[str, object]) -> None:
    r = _run(images, "apache-wsgi",
             "apache2ctl -t && apache2ctl start && sleep 1 && curl -sS http://127.0.0.1/hello/x")
    assert r.returncode == 0, r.stderr
    assert "Syntax OK" in r.stderr
    assert r.stdout.startswith("hello from WSGI on Python 3.11 at /x")
    # a2enmod's work and py3compile's: the MPM, wsgi and the default site enabled, bytecode there
    r = _run(images, "apache-wsgi", "ls /etc/apache2/mods-enabled /etc/apache2/sites-enabled; "
             "ls /usr/lib/python3.11/__pycache__ | wc -l")
    assert {"mpm_event.load", "wsgi.load", "000-default.conf"} <= set(r.stdout.split())
    assert int(r.stdout.split()[-1]) > 100


def test_ssh_runs_and_ssh_agent_keeps_its_statoverride(images: dict[str, object]) -> None:
    r = _run(images, "openssh-client", "ssh -V && stat -c '%a %U:%G' /usr/bin/ssh-agent")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("OpenSSH_")
    assert r.stdout.strip() == "2755 root:_ssh"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_awk_works_where_mawk_is_installed(images: dict[str, object], name: str) -> None:
    r = _run(images, name, "awk 'BEGIN { print 1 }'; readlink -f /usr/bin/awk")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "/usr/bin/mawk"]


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
