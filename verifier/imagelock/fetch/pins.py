"""The fetch phase: make sure every pinned input of a lock is in the store, hash-checked.

Network is used only here (and in `lock`); with `offline=True` nothing is downloaded and a
missing or corrupt object is an error (exit 3) that says which input and what to run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from imagelock.core.errors import FetchError, IntegrityError
from imagelock.fetch.debian import package_urls
from imagelock.fetch.downloads import urls_for
from imagelock.fetch.http import fetch_to_store
from imagelock.fetch.python_index import Indexes, indexes_for, wheel_sources
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianPackagePin, DebianSource
from imagelock.formats.files import load_spec
from imagelock.formats.lock import Lock
from imagelock.formats.python import WheelPin
from imagelock.formats.spec import HttpSource


@dataclass
class FetchReport:
    present: int = 0
    downloaded: int = 0
    bytes_downloaded: int = 0


def sources_of(lock_path: Path, lock: Lock) -> dict[str, object]:
    """The spec's sources (for their mirrors), or none when the lock travels alone."""

    spec_path = lock_path.parent / lock.spec
    if not spec_path.is_file():
        return {}
    return dict(load_spec(spec_path).sources)


def _fetch_one(store: Store, report: FetchReport, *, sha256: str, size: int, what: str,
               urls: Callable[[], list[str]], offline: bool) -> None:
    if store.has(sha256):
        try:
            store.verify(sha256, size, what)
            report.present += 1
            return
        except IntegrityError:
            if offline:
                raise
            # The corrupt copy is deleted: online, fetch it again now, not on the next run.
    if offline:
        raise FetchError(
            f"{what} (sha256 {sha256}) is not in the store and --offline was given",
            hint="run `imagelock fetch` with network access first",
        )
    fetch_to_store(store, urls(), sha256=sha256, size=size, what=what)
    report.downloaded += 1
    report.bytes_downloaded += size


def fetch_lock(
    lock: Lock,
    lock_path: Path,
    store: Store,
    *,
    cli_mirrors: Mapping[str, list[str]],
    offline: bool,
) -> FetchReport:
    """Fetch every input of the lock at `lock_path`, with mirrors from the spec beside it."""
    return fetch_pins(lock, sources_of(lock_path, lock), store, cli_mirrors=cli_mirrors,
                      offline=offline)


def fetch_pins(
    lock: Lock,
    sources: Mapping[str, object],
    store: Store,
    *,
    cli_mirrors: Mapping[str, list[str]],
    offline: bool,
) -> FetchReport:
    """Make every pinned input of `lock` present and intact in the store."""
    report = FetchReport()
    http = {k: v for k, v in sources.items() if isinstance(v, HttpSource)}
    for pin in lock.downloads:
        _fetch_one(store, report, sha256=pin.sha256, size=pin.size,
                   what=f"download {pin.location}", offline=offline,
                   urls=lambda pin=pin: urls_for(pin.location, http, cli_mirrors))  # type: ignore[misc]
    debs = {}
    for platform_pins in lock.debian.values():
        for deb in platform_pins.packages:
            debs[deb.sha256] = deb
    wheels = {}
    for platform_wheels in lock.python.values():
        for w in platform_wheels:
            wheels[w.sha256] = w
    if wheels:

        indexes: dict[str, Indexes] = {}

        def wheel_urls(w: WheelPin) -> list[str]:
            if w.source not in indexes:  # pip's configuration is read once per source
                indexes[w.source] = indexes_for(w.source, sources, cli_mirrors)
            return wheel_sources(w, indexes[w.source])

        for w in wheels.values():
            _fetch_one(store, report, sha256=w.sha256, size=w.size, what=f"wheel {w.filename}",
                       offline=offline, urls=lambda w=w: wheel_urls(w))  # type: ignore[misc]
    for deb in debs.values():
        _fetch_one(store, report, sha256=deb.sha256, size=deb.size,
                   what=f"package {deb.name} {deb.version} ({deb.architecture})", offline=offline,
                   urls=lambda deb=deb: package_urls(deb, _debian_sources(sources, deb), cli_mirrors))  # type: ignore[misc]
    return report


def _debian_sources(sources: Mapping[str, object], pin: DebianPackagePin) -> dict[str, DebianSource]:
    """The spec's Debian sources; without the spec, the pin's suite on the machine's mirrors."""
    out = {k: v for k, v in sources.items() if isinstance(v, DebianSource)}
    name = pin.location.partition(":")[0]
    out.setdefault(name, DebianSource(kind="debian", suites=[pin.suite]))
    return out
