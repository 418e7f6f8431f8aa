"""Fixtures for the Debian lock tests: one shared store of downloads, the real archive, apt, and
a signed archive generated for the run (tests/deb_archive.py) for inputs that cannot move.

Load from tests/conftest.py with `pytest_plugins = ["conftest_debian"]` (or run pytest with
`-p conftest_debian` and tests/ on PYTHONPATH).
The store lives at $IMAGELOCK_TEST_STORE (default /tmp/imagelock-test-store) and is shared by
every test and every run, so indexes are downloaded and parsed once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from imagelock.fetch.apt_sources import machine_mirrors
from imagelock.fetch.store import Store
from imagelock.formats.debian import DEFAULT_KEYRING
from security_ahead import CveDay, find_live, generated_archive

__all__ = ["apt_oracle", "debian_mirror", "debian_store", "generated_cve_day", "live_cve_day",
           "private_apt", "security_mirror"]


class SecuritySuiteNotAhead(UserWarning):
    """The live security suite has no package to stage a CVE day with (not a defect)."""


@pytest.fixture(scope="session")
def debian_store() -> Store:
    """The store of downloads shared by all tests (and kept between runs)."""
    return Store(os.environ.get("IMAGELOCK_TEST_STORE", "/tmp/imagelock-test-store"))


def _mirror(suite: str) -> str:
    mirrors = machine_mirrors(suite)
    if not mirrors:
        pytest.skip(f"no apt source on this machine lists {suite}")
    return mirrors[0]


@pytest.fixture(scope="session")
def debian_mirror() -> str:
    """Base URL of the machine's mirror for bookworm (from its apt sources)."""
    return _mirror("bookworm")


@pytest.fixture(scope="session")
def security_mirror() -> str:
    """Base URL of the machine's mirror for bookworm-security."""
    return _mirror("bookworm-security")


AptOracle = Callable[[Sequence[str]], dict[str, str]]


def private_apt(root: Path, sources: Sequence[str]) -> dict[str, str]:
    """Environment for apt in a private root with an empty dpkg status, updated just now.

    `sources` are one-line `deb` entries. Updating here, not relying on the machine's lists,
    means apt sees what the archive serves today, whenever the machine last ran apt-get update.
    """
    if shutil.which("apt-get") is None:
        raise AssertionError("apt-get is not installed: these tests need a Debian machine")
    for d in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d",
              "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").write_text("")
    (root / "sources.list").write_text("".join(line + "\n" for line in sources))
    conf = root / "apt.conf"
    conf.write_text("\n".join([
        f'Dir "{root}/";',
        f'Dir::State::status "{root}/var/lib/dpkg/status";',
        f'Dir::Etc::sourcelist "{root}/sources.list";',
        f'Dir::Etc::sourceparts "{root}/etc/apt/sources.list.d";',
        f'Dir::Etc::parts "{root}/etc/apt/apt.conf.d";',
        f'Dir::Etc::preferencesparts "{root}/etc/apt/preferences.d";',
        'APT::Architecture "amd64";',
        'APT::Architectures { "amd64"; };',
        'APT::Install-Recommends "false";',
        'APT::Install-Suggests "false";',
        'Acquire::Check-Valid-Until "false";',
        'Acquire::Languages "none";',
        'Debug::NoLocking "true";',
    ]) + "\n")
    env = {**os.environ, "APT_CONFIG": str(conf), "LANG": "C"}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
    return env


@pytest.fixture(scope="session")
def apt_oracle(tmp_path_factory: pytest.TempPathFactory, debian_mirror: str) -> Iterator[AptOracle]:
    """apt itself, in a private root with an empty dpkg status, resolving bookworm main.

    Returns a function: package names -> {name: version} that `apt-get install -s` would
    install (no Recommends, one architecture).
    """
    env = private_apt(tmp_path_factory.mktemp("aptroot"),
                      [f"deb [signed-by={DEFAULT_KEYRING}] {debian_mirror} bookworm main"])

    def oracle(names: Sequence[str]) -> dict[str, str]:
        proc = subprocess.run(["apt-get", "install", "-s", "-q", *names], env=env,
                              capture_output=True, text=True, check=True)
        out: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            if line.startswith("Inst "):
                # Inst NAME (VERSION SUITE [ARCH]) ...
                words = line.split()
                out[words[1]] = words[2].lstrip("(")
        return out

    yield oracle


@pytest.fixture(scope="session")
def generated_cve_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CveDay]:
    """A signed main + security archive served on 127.0.0.1, the security suite ahead."""
    with generated_archive(tmp_path_factory.mktemp("cve-archive")) as day:
        yield day


@pytest.fixture(scope="session")
def live_cve_day(debian_store: Store, generated_cve_day: CveDay) -> CveDay:
    """A CVE day on the machine's archive, found at run time (tests/security_ahead.py).

    When the live security suite has no suitable package, the generated archive stands in,
    with a warning: an empty security suite is the archive's state, not imagelock's defect.
    """
    day = find_live(debian_store)
    if day is None:
        warnings.warn(SecuritySuiteNotAhead(
            "bookworm-security has no package ahead of bookworm that can be upgraded alone; the "
            "live CVE-day tests ran on the generated archive instead"), stacklevel=2)
        return generated_cve_day
    return day
