"""Every input of a lock, and the places its bytes may come from, in the order a rebuild from a
reference alone tries them: the local store, the configured mirrors, the input bundle beside the
image, a snapshot archive.

This module names the inputs (`.deb`s, wheels, downloads and the exact InRelease and Packages
files of every Debian index the lock records) and builds each one's list of places from the
configuration; `fetch.places` walks the list and checks the bytes. The rot monitor
(`rebuild.rot`) asks the same places whether they still have each input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imagelock.core.errors import InputError, UnsafeContentError
from imagelock.fetch.debian import package_urls, source_mirrors
from imagelock.fetch.downloads import urls_for
from imagelock.fetch.mirrors import join, split_location
from imagelock.fetch.places import Fetched, Place, UrlPlace, Wanted, fetch_in_order
from imagelock.fetch.python_index import Indexes, indexes_for, wheel_sources
from imagelock.fetch.snapshot import snapshot_url, snapshots_for
from imagelock.fetch.store import Store
from imagelock.formats.debian import DEFAULT_KEYRING, DebianIndexPin, DebianPackagePin, DebianSource
from imagelock.formats.lock import Lock
from imagelock.formats.python import WheelPin
from imagelock.formats.recipe import MT_DEB, MT_DOWNLOAD, MT_INRELEASE, MT_PACKAGES, MT_WHEEL
from imagelock.formats.spec import HttpSource
from imagelock.lock.debian.release import IndexFile

# Keyrings a rebuild accepts from a spec it did not write: files the system's packages install.
SYSTEM_KEYRING_DIRS = ("/usr/share/keyrings/", "/etc/apt/trusted.gpg.d/", "/etc/apt/keyrings/")


@dataclass(frozen=True)
class Input:
    """One input to fetch: what it is, its pin, and the lock location it is published under."""

    kind: str  # deb, wheel, download, inrelease, packages
    wanted: Wanted
    title: str  # the lock location (`SOURCE:pool/...`) or `SOURCE:dists/SUITE/...`

    @property
    def media_type(self) -> str:
        return {"deb": MT_DEB, "wheel": MT_WHEEL, "download": MT_DOWNLOAD,
                "inrelease": MT_INRELEASE, "packages": MT_PACKAGES}[self.kind]


@dataclass
class PlaceConfig:
    """Where inputs may come from: the spec's sources, `--mirror`, `--snapshot`, the bundle."""

    sources: Mapping[str, object] = field(default_factory=dict)
    cli_mirrors: Mapping[str, list[str]] = field(default_factory=dict)
    cli_snapshots: Mapping[str, list[str]] = field(default_factory=dict)
    bundle: Place | None = None
    _indexes: dict[str, Indexes] = field(default_factory=dict)

    def debian_source(self, name: str, suite: str) -> DebianSource:
        src = self.sources.get(name)
        return src if isinstance(src, DebianSource) else DebianSource(kind="debian", suites=[suite])

    def snapshot_bases(self, name: str) -> list[str]:
        src = self.sources.get(name)
        spec = src.snapshots if isinstance(src, DebianSource) else []
        return snapshots_for(name, cli=self.cli_snapshots, spec=spec)

    def python_indexes(self, source: str) -> Indexes:
        if source not in self._indexes:  # pip's configuration is read once per source
            self._indexes[source] = indexes_for(source, self.sources, self.cli_mirrors)
        return self._indexes[source]


def keyring_for(source: str, config: PlaceConfig, cli: Mapping[str, str]) -> Path:
    """The OpenPGP keyring a rebuild trusts for a Debian source: `--keyring NAME=PATH`, else the
    spec's `keyring` when it is a system keyring (installed by a package, under
    /usr/share/keyrings, /etc/apt/trusted.gpg.d or /etc/apt/keyrings). A recipe's spec comes from
    the vendor: a keyring path elsewhere could name a file anyone may write."""
    if source in cli:
        path = Path(cli[source])
    else:
        src = config.sources.get(source)
        ring = src.keyring if isinstance(src, DebianSource) else DEFAULT_KEYRING
        if not ring.startswith(SYSTEM_KEYRING_DIRS) or ".." in ring.split("/"):
            raise InputError(
                f"the spec's keyring {ring!r} for source {source!r} is not a system keyring",
                field=f"sources.{source}.keyring",
                hint=f"pass --keyring {source}=PATH with the archive keyring you trust")
        path = Path(ring)
    if not path.is_file():
        raise InputError(f"keyring {path} for source {source!r} does not exist",
                         hint="install the archive's keyring package, or pass --keyring NAME=PATH")
    return path


def _index_of(lock: Lock, platform: str, pin: DebianPackagePin) -> DebianIndexPin | None:
    for idx in lock.debian[platform].indexes:
        if idx.source == pin.source and idx.suite == pin.suite:
            return idx
    return None


def lock_inputs(lock: Lock) -> list[Input]:
    """Every fetchable input of the lock, once each: downloads, wheels, .debs (every platform)."""
    out: dict[str, Input] = {}
    for d in lock.downloads:
        out.setdefault(d.sha256, Input("download", Wanted(d.sha256, d.size, f"download {d.location}"),
                                       d.location))
    for w in _wheel_like(lock).values():
        # a source build's sdist is found on the indexes exactly as a wheel is
        what = f"{'sdist' if not w.filename.endswith('.whl') else 'wheel'} {w.filename}"
        out.setdefault(w.sha256, Input("wheel", Wanted(w.sha256, w.size, what), w.location))
    for _, p in _debs(lock).values():
        what = f"package {p.name} {p.version} ({p.architecture})"
        out.setdefault(p.sha256, Input("deb", Wanted(p.sha256, p.size, what), p.location))
    return list(out.values())


def _wheel_like(lock: Lock) -> dict[str, WheelPin]:
    """Wheels to fetch (not those built from source: their sdists and build wheels instead)."""
    out = {w.sha256: w for ws in lock.python.values() for w in ws if w.origin != "source-build"}
    for builds in (lock.python_builds or {}).values():
        for b in builds:
            out.setdefault(b.sdist.sha256, WheelPin.model_construct(
                name=b.name, version=b.version, filename=b.sdist.filename,
                sha256=b.sdist.sha256, size=b.sdist.size, location=b.sdist.location,
                requested=False))
            for w in b.build_wheels:
                out.setdefault(w.sha256, w)
    return out


def _debs(lock: Lock) -> dict[str, tuple[str, DebianPackagePin]]:
    """Every .deb by sha256, with its platform: the image's, the Essential set its maintainer
    scripts ran with at lock time (a build that runs a script again needs it, and `fetch`
    fetches it), then the build stages' own."""
    out = {p.sha256: (platform, p) for platform, plock in lock.debian.items()
           for p in [*plock.packages, *plock.script_tools]}
    for platform, builds in (lock.python_builds or {}).items():
        for b in builds:
            for p in b.build_debian:
                out.setdefault(p.sha256, (platform, p))
    for platform, stages in (lock.step_builds or {}).items():
        for pins in stages.values():
            for p in pins:
                out.setdefault(p.sha256, (platform, p))
    return out


# As when locking (lock.debian.release): a real InRelease is kilobytes.
INRELEASE_LIMIT = 64 << 20


def inrelease_input(pin: DebianIndexPin) -> Input:
    return Input("inrelease", Wanted(pin.inrelease_sha256, None,
                                     f"the InRelease of {pin.suite} ({pin.date})", INRELEASE_LIMIT),
                 f"{pin.source}:dists/{pin.suite}/InRelease")


def packages_input(pin: DebianIndexPin, entry: IndexFile) -> Input:
    return Input("packages", Wanted(entry.sha256, entry.size,
                                    f"{pin.suite} {pin.packages_path} ({pin.date})"),
                 f"{pin.source}:dists/{pin.suite}/{pin.packages_path}")


class InputPlaces:
    """The places of each input of one lock, in order: mirrors, bundle, snapshot."""

    def __init__(self, lock: Lock, config: PlaceConfig) -> None:
        self.lock = lock
        self.config = config
        self.downloads = {d.sha256: d for d in lock.downloads}
        self.wheels = _wheel_like(lock)
        self.debs = _debs(lock)

    def places(self, item: Input, index: DebianIndexPin | None = None) -> list[Place]:
        cfg = self.config
        bundle = [cfg.bundle] if cfg.bundle is not None else []
        if item.kind == "download":
            d = self.downloads[item.wanted.sha256]
            http = {k: v for k, v in cfg.sources.items() if isinstance(v, HttpSource)}
            return [UrlPlace("mirrors", "mirror", lambda w: urls_for(d.location, http,
                                                                     cfg.cli_mirrors)), *bundle]
        if item.kind == "wheel":
            wp = self.wheels[item.wanted.sha256]
            return [UrlPlace("mirrors", "mirror",
                             lambda w: wheel_sources(wp, cfg.python_indexes(wp.source))), *bundle]
        if item.kind == "deb":
            platform, p = self.debs[item.wanted.sha256]
            src = cfg.debian_source(p.source, p.suite)
            idx = _index_of(self.lock, platform, p)
            name, rel = split_location(p.location)
            mirrors = UrlPlace("mirrors", "mirror",
                               lambda w: package_urls(p, {name: src}, cfg.cli_mirrors))
            snaps: list[Place] = []
            if idx is not None:
                snaps.append(UrlPlace("snapshot archive", "snapshot",
                                      lambda w: [snapshot_url(b, idx.date, rel)
                                                 for b in cfg.snapshot_bases(name)]))
            return [mirrors, *bundle, *snaps]
        assert index is not None
        src = cfg.debian_source(index.source, index.suite)
        bases = source_mirrors(index.source, src, index.suite, cfg.cli_mirrors) or []
        if item.kind == "inrelease":
            rel = f"dists/{index.suite}/InRelease"
            paths = [rel]
        else:
            rel = f"dists/{index.suite}/{index.packages_path}"
            by_hash = (f"dists/{index.suite}/{index.packages_path.rsplit('/', 1)[0]}"
                       f"/by-hash/SHA256/{item.wanted.sha256}")
            paths = [by_hash, rel]
        return [
            UrlPlace("mirrors", "mirror", lambda w: [join(b, p) for b in bases for p in paths],
                     replaced_ok=True),
            *bundle,
            UrlPlace("snapshot archive", "snapshot",
                     lambda w: [snapshot_url(b, index.date, p) for b in
                                cfg.snapshot_bases(index.source) for p in paths]),
        ]


def fetch_inputs(lock: Lock, store: Store, config: PlaceConfig, *, offline: bool,
                 log: Fetched | None = None) -> Fetched:
    """Every input of the lock present in the store, from the first place that has it."""
    log = log or Fetched()
    places = InputPlaces(lock, config)
    for item in lock_inputs(lock):
        fetch_in_order(store, item.wanted, places.places(item), offline=offline, log=log)
    return log


class PlacedIndexFiles:
    """The exact index files of a lock, fetched in the same order as every other input."""

    def __init__(self, lock: Lock, store: Store, config: PlaceConfig, *, offline: bool,
                 log: Fetched) -> None:
        self.places = InputPlaces(lock, config)
        self.store = store
        self.offline = offline
        self.log = log

    def _get(self, item: Input, pin: DebianIndexPin) -> bytes:
        fetch_in_order(self.store, item.wanted, self.places.places(item, pin),
                       offline=self.offline, log=self.log)
        limit = item.wanted.limit
        if limit is not None and self.store.path_for(item.wanted.sha256).stat().st_size > limit:
            raise UnsafeContentError(f"{item.wanted.what} is larger than {limit} bytes",
                                     hint="no genuine index file is this large: do not use it")
        with self.store.open_verified(item.wanted.sha256, item.wanted.size, item.wanted.what) as r:
            return r.read()

    def inrelease(self, pin: DebianIndexPin) -> bytes:
        return self._get(inrelease_input(pin), pin)

    def packages(self, pin: DebianIndexPin, entry: IndexFile) -> bytes:
        return self._get(packages_input(pin, entry), pin)
