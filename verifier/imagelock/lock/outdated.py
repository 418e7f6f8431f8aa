"""`imagelock outdated`: which Debian pins of a lock the spec's suites now hold newer versions of.

The lock stage asking itself what a re-lock would find: the spec beside the lock names the
suites (its current text, so a suite added since the lock was made, such as the security suite,
counts), their signed indexes are read exactly as `lock` reads them, and every pin is compared
with the newest version any suite lists, and with the newest a security suite lists. Nothing is
written. A pending security update is what `lock --upgrade-security` would move.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from debian.debian_support import Version

from imagelock.core.errors import InputError
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianPackagePin
from imagelock.formats.files import load_spec
from imagelock.formats.inventory import OutdatedPin, OutdatedResult
from imagelock.formats.lock import Lock
from imagelock.lock.debian.lock import debian_arch, load_universe, used_sources
from imagelock.lock.debian.resolver import Universe


def outdated(lock: Lock, lock_path: Path, store: Store,
             cli_mirrors: Mapping[str, list[str]] | None = None) -> OutdatedResult:
    """Every Debian pin of `lock` with a newer version in the suites of the spec beside it."""
    spec_path = lock_path.parent / lock.spec
    if not spec_path.is_file():
        raise InputError(f"the lock names its spec {lock.spec}, which is not beside it "
                         f"({spec_path})", path=lock_path, field="spec",
                         hint="`outdated` reads the suites to check from the spec: keep the spec "
                         "beside the lock, as `imagelock lock` wrote them")
    spec = load_spec(spec_path, lock.set_image)
    notes: list[str] = []
    if lock.python:
        notes.append("Python wheels are not checked: `outdated` reads the Debian suites only")
    deb = spec.contents.debian
    if deb is None or not lock.debian:
        notes.append("the lock has no Debian packages: nothing to check")
        return OutdatedResult(lock=str(lock_path), suites=[], checked=0, updates=[],
                              security_pending=0, notes=notes)
    sources = used_sources(spec.sources, deb)
    pinned = {n: v for n, v in deb.requested().items() if v is not None}
    suites: list[str] = []
    updates: list[OutdatedPin] = []
    checked = 0
    for platform, pl in lock.debian.items():
        index_pins, universe = load_universe(sources, list(sources), store, cli_mirrors,
                                             debian_arch(platform))
        for ip in index_pins:
            label = f"{ip.source}/{ip.suite} ({ip.date})"
            if (ip.source, ip.suite) in universe.security:
                label += " [security]"
            if label not in suites:
                suites.append(label)
        for pin in pl.packages:
            checked += 1
            found = _check(universe, platform, pin, pinned)
            if found is not None:
                updates.append(found)
    updates.sort(key=lambda u: (u.platform, u.name))
    return OutdatedResult(lock=str(lock_path), suites=suites, checked=checked, updates=updates,
                          security_pending=sum(1 for u in updates if u.security), notes=notes)


def _check(universe: Universe, platform: str, pin: DebianPackagePin,
           pinned: Mapping[str, str]) -> OutdatedPin | None:
    cands = universe.by_name.get(pin.name, [])  # highest version first
    have = Version(pin.version)
    current = universe.candidate(pin.name, pin.version)
    newest = cands[0] if cands else None
    security = next((c for c in cands if universe.is_security(c)), None)
    newer = newest is not None and Version(newest.version) > have
    sec_newer = security is not None and Version(security.version) > have
    gone = current is None
    if not (newer or sec_newer or gone):
        return None
    known = current or newest
    source_package = known.source_package if known is not None else pin.name
    return OutdatedPin(
        platform=platform, name=pin.name, architecture=pin.architecture,
        source_package=source_package, locked=pin.version,
        locked_suite=f"{pin.source}/{pin.suite}",
        newest=newest.version if newest is not None else pin.version,
        newest_suite=f"{newest.source}/{newest.suite}" if newest is not None else "none",
        security=sec_newer,
        security_version=security.version if security is not None and sec_newer else None,
        security_suite=(f"{security.source}/{security.suite}"
                        if security is not None and sec_newer else None),
        gone=gone,
        held=f"the spec pins {pin.name}={pinned[pin.name]}" if pin.name in pinned else None,
    )
