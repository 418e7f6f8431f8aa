"""The committed example locks, tested as long as the archive serves their pins, and re-locked
copies once it does not.

Debian removes superseded .debs from its pool at a point release and replaces security updates
with newer ones; a committed lock then names files nobody serves, and a test building it would
fail for a reason that is not a defect of imagelock. So a test that builds a committed example
asks for it through the `fresh_example` fixture: every pin of the lock is looked up on the
mirrors (a HEAD request per URL that imagelock's own fetch code would try, never a download).
When all are served, the test gets a private copy of the example as committed. When some are
not, it gets a copy re-locked with `imagelock lock --upgrade-all` (the same spec, today's
archive) and a warning in pytest's summary names the rotted pins and the command that refreshes
the committed lock. The tests keep asserting what they assert, against the copy's own lock.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import REPO, run
from imagelock.fetch.http import local_path, session
from imagelock.fetch.python_index import Indexes, indexes_for, wheel_urls
from imagelock.inputs.fetching import sources_of
from imagelock.formats.debian import DebianSource
from imagelock.formats.files import read_lock
from imagelock.fetch.debian import package_urls

__all__ = ["ExampleLockRotted", "FreshExample", "fresh_copy", "fresh_example", "unserved_pins"]

# Enough to hide the latency of ~130 small requests, few enough to be polite to a mirror.
_WORKERS = 8
_TIMEOUT = 30.0


class ExampleLockRotted(UserWarning):
    """A committed lock pins inputs the mirrors no longer serve: refresh it."""


@dataclass(frozen=True)
class FreshExample:
    """A private copy of an example whose every pin is served (re-locked if it had to be)."""

    name: str
    path: Path
    rotted: tuple[str, ...]  # the committed lock's pins that are no longer served

    @property
    def lock(self) -> dict[str, Any]:
        return json.loads((self.path / "imagelock.lock").read_text())  # type: ignore[no-any-return]

    @property
    def expected(self) -> dict[str, Any]:
        """The digests the copy's lock expects for linux/amd64."""
        return self.lock["expected"]["linux/amd64"]  # type: ignore[no-any-return]

    def checkout(self, dest: Path) -> Path:
        """Another checkout of the same example (a rebuilder's, a second host's)."""
        shutil.copytree(self.path, dest, symlinks=True)
        return dest


class _Unanswered(Exception):
    """A mirror could not be asked (network error, server error): not evidence of rot."""


def _served(urls: list[str], size: int) -> bool:
    """True when one of `urls` serves a file of `size` bytes; False when all say it is gone."""
    problems: list[str] = []
    for url in urls:
        local = local_path(url)
        if local is not None:
            if local.is_file() and local.stat().st_size == size:
                return True
            continue
        if urllib.parse.urlparse(url).scheme not in ("http", "https"):
            continue
        try:
            r = session().head(url, allow_redirects=True, timeout=_TIMEOUT)
        except requests.RequestException as e:
            problems.append(f"{url}: {type(e).__name__}: {e}")
            continue
        length = r.headers.get("Content-Length")
        if r.status_code == 200 and (length is None or int(length) == size):
            return True
        if r.status_code not in (200, 403, 404, 410):
            problems.append(f"{url}: HTTP {r.status_code}")
    if problems:
        raise _Unanswered("; ".join(problems))
    return False


def unserved_pins(example: Path) -> list[str]:
    """The pins of `example`'s lock that no configured mirror or index serves any more.

    Mirrors come from the spec beside the lock, the environment and the machine's apt and pip
    configuration, exactly as `imagelock fetch` finds them. Raises AssertionError when a mirror
    cannot be asked: a network failure is not rot and must not trigger a re-lock.
    """
    lock_path = example / "imagelock.lock"
    lock = read_lock(lock_path)
    sources = sources_of(lock_path, lock)
    checks: list[tuple[str, Callable[[], bool]]] = []
    for platform in lock.debian.values():
        for deb in platform.packages:
            deb_sources = {k: v for k, v in sources.items() if isinstance(v, DebianSource)}
            # A lock travelling without its spec: the pin's suite on the machine's mirrors.
            deb_sources.setdefault(deb.location.partition(":")[0],
                                   DebianSource(kind="debian", suites=[deb.suite]))
            urls = package_urls(deb, deb_sources)
            checks.append((f"{deb.name} {deb.version} ({deb.location})",
                           lambda urls=urls, size=deb.size: _served(urls, size)))  # type: ignore[misc]
    indexes: dict[str, Indexes] = {}
    for wheels in lock.python.values():
        for w in wheels:
            if w.source not in indexes:
                indexes[w.source] = indexes_for(w.source, sources)
            idx = indexes[w.source]

            def wheel(w: Any = w, idx: Indexes = idx) -> bool:
                urls = wheel_urls(w, idx)
                if not urls and idx.problems:
                    raise _Unanswered("; ".join(idx.problems[-3:]))
                return _served(urls, w.size)

            checks.append((f"{w.filename} ({w.location})", wheel))
    with ThreadPoolExecutor(_WORKERS) as pool:
        futures = [(what, pool.submit(check)) for what, check in checks]
        rotted = []
        for what, fut in futures:
            try:
                if not fut.result():
                    rotted.append(what)
            except _Unanswered as e:
                raise AssertionError(f"could not ask the mirrors whether {what} is still served "
                                     f"(a network problem, not a rotted lock): {e}") from None
    return rotted


def fresh_copy(src: Path, dest: Path, *, shown_as: str, store: Path) -> FreshExample:
    """Copy the example at `src` to `dest`; re-lock the copy if any pin is no longer served.

    `shown_as` is how the warning names the example (`examples/python-base`): the refresh
    command in it is meant to be run from the repository's top.
    """
    shutil.copytree(src, dest, symlinks=True)
    rotted = unserved_pins(dest)
    if rotted:
        r = run(["lock", str(dest), "--upgrade-all"], env={"IMAGELOCK_STORE": str(store)})
        assert r.returncode == 0, (
            f"{shown_as}: {len(rotted)} pins are no longer served and re-locking a copy failed:\n"
            + r.stderr)
        listed = "; ".join(rotted[:8]) + (f"; and {len(rotted) - 8} more" if len(rotted) > 8 else "")
        warnings.warn(ExampleLockRotted(
            f"{shown_as}/imagelock.lock pins {len(rotted)} input(s) the mirrors no longer serve: "
            f"{listed}. These tests ran against a copy re-locked with --upgrade-all. Refresh the "
            f"committed lock: imagelock lock {shown_as} --upgrade-all"), stacklevel=2)
    return FreshExample(name=src.name, path=dest, rotted=tuple(rotted))


@pytest.fixture(scope="session")
def fresh_example(tmp_path_factory: pytest.TempPathFactory,
                  shared_store: Path) -> Iterator[Callable[[str], FreshExample]]:
    """`fresh_example("python-base")`: a served copy of examples/NAME, checked once a session."""
    made: dict[str, FreshExample] = {}

    def get(name: str) -> FreshExample:
        if name not in made:
            dest = tmp_path_factory.mktemp(f"fresh-{name}") / name
            made[name] = fresh_copy(REPO / "examples" / name, dest, shown_as=f"examples/{name}",
                                    store=shared_store)
        return made[name]

    yield get
