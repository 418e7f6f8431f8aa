"""`imagelock lock` for Debian: verified indexes of the spec's suites -> closure -> lock pins.

The orchestration only: mirrors come from `mirrors.mirrors_for` (CLI > env > spec > the
machine's apt sources), signatures from `release`, indexes from `index`, the closure from
`resolver`. With `previous_pins`, every package keeps its locked version unless it is named in
`upgrade` or a newly needed relation requires a newer one (the "CVE day" flow: upgrade one
library, nothing else moves).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from imagelock.core.errors import InputError
from imagelock.fetch.debian import source_mirrors
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianContents, DebianIndexPin, DebianPackagePin, DebianSource
from imagelock.lock.debian.index import load_index
from imagelock.lock.debian.release import fetch_release
from imagelock.lock.debian.resolver import (
    V,
    Candidate,
    Universe,
    candidate_from_record,
    resolve,
)

log = logging.getLogger(__name__)

_PLATFORM_ARCH = {
    "linux/amd64": "amd64", "linux/arm64": "arm64", "linux/arm64/v8": "arm64",
    "linux/arm/v7": "armhf", "linux/arm/v6": "armel", "linux/arm/v5": "armel",
    "linux/386": "i386", "linux/ppc64le": "ppc64el", "linux/s390x": "s390x",
    "linux/riscv64": "riscv64",
}


def debian_arch(platform: str) -> str:
    """The Debian architecture of an OCI platform (`linux/arm/v7` -> `armhf`)."""
    try:
        return _PLATFORM_ARCH[platform]
    except KeyError:
        raise InputError(f"no Debian architecture for platform {platform!r}",
                         hint="use one of " + ", ".join(sorted(_PLATFORM_ARCH))) from None






def _debian_sources(sources: Mapping[str, object], blocks: Sequence[DebianContents]) -> list[str]:
    deb = [n for n, s in sources.items() if isinstance(s, DebianSource)]
    if not deb:
        raise InputError("contents list Debian packages but no source has `kind: debian`",
                         field="sources", hint="add a source with kind: debian and its suites")
    out: list[str] = []
    for b in blocks:
        for n in b.sources if b.sources is not None else deb:
            if n not in deb:
                raise InputError(f"{n!r} is not a debian source of the spec", field="contents.debian.sources",
                                 hint="known debian sources: " + ", ".join(deb))
            if n not in out:
                out.append(n)
    return out


def used_sources(sources: Mapping[str, object], contents: DebianContents) -> dict[str, DebianSource]:
    """The spec's `debian` sources that `contents` chooses from, in order of preference."""
    return {n: cast(DebianSource, sources[n]) for n in _debian_sources(sources, [contents])}


def _merge(blocks: Sequence[DebianContents]) -> tuple[list[str], dict[str, str], set[str], bool]:
    names: list[str] = []
    pins: dict[str, str] = {}
    for b in blocks:
        for name, version in b.requested().items():
            if version is not None:
                if pins.get(name, version) != version:
                    raise InputError(f"{name} is pinned to two versions ({pins[name]}, {version})",
                                     field="contents.debian.packages")
                pins[name] = version
            if name not in names:
                names.append(name)
    exclude = {n for b in blocks for n in b.exclude}
    return sorted(names), pins, exclude, any(b.essential for b in blocks)


def load_universe(
    sources: Mapping[str, DebianSource],
    names: Sequence[str],
    store: Store,
    mirrors_cli: Mapping[str, list[str]] | None,
    architecture: str,
    *,
    check_valid_until: bool = False,
) -> tuple[list[DebianIndexPin], Universe]:
    """Verify and read every index of the named sources; candidates keep the reading order."""
    index_pins: list[DebianIndexPin] = []
    candidates: list[Candidate] = []
    security: list[tuple[str, str]] = []
    order = 0
    for name in names:
        src = sources[name]
        for suite in src.suites:
            mirrors = source_mirrors(name, src, suite, mirrors_cli)
            fetched = fetch_release(mirrors, suite, src.keyring, check_valid_until=check_valid_until)
            rel = fetched.release
            if rel.security:
                security.append((name, suite))
            # Kept by its sha256 (the lock records it): the archive replaces its InRelease within
            # days, and the input bundle must carry the exact signed file.
            if not store.has(rel.inrelease_sha256):
                store.add_chunks([fetched.inrelease], sha256=rel.inrelease_sha256,
                                 what=f"InRelease of {suite}")
            ordered = [fetched.mirror] + [m for m in mirrors if m != fetched.mirror]
            for component in src.components:
                idx = load_index(store, rel, ordered, component, architecture)
                index_pins.append(DebianIndexPin(
                    source=name, suite=suite, inrelease_sha256=rel.inrelease_sha256,
                    date=rel.date, architecture=architecture, component=component,
                    packages_path=idx.packages_path, packages_sha256=idx.packages_sha256,
                ))
                candidates += [candidate_from_record(r, source=name, suite=suite, order=order)
                               for r in idx.records]
                order += 1
    return index_pins, Universe(candidates, architecture, security)


def lock_debian(
    sources: Mapping[str, DebianSource],
    contents: DebianContents | Sequence[DebianContents],
    store: Store,
    mirrors_cli: Mapping[str, list[str]] | None = None,
    previous_pins: Sequence[DebianPackagePin] | None = None,
    upgrade: Iterable[str] = frozenset(),
    *,
    upgrade_security: bool = False,
    notes: list[str] | None = None,
    architecture: str = "amd64",
    check_valid_until: bool = False,
    defaults: Sequence[str] = (),
    tools_out: list[DebianPackagePin] | None = None,
    previous_tools: Sequence[DebianPackagePin] = (),
    build_requests: Mapping[str, Sequence[str]] | None = None,
    builds_out: dict[str, list[DebianPackagePin]] | None = None,
) -> tuple[list[DebianIndexPin], list[DebianPackagePin]]:
    """Resolve the Debian contents of a spec into index pins and package pins (sorted by name).

    `sources`: the spec's sources (non-Debian ones are ignored). `contents`: one block, or
    several whose union is resolved as one closure. `previous_pins`: the current lock's
    package pins, kept unless named in `upgrade` (or required newer by what an upgrade newly
    needs). A name in `upgrade` moves every locked binary of its source package (a fix to
    openssl is in libssl3 and openssl alike); `upgrade_security` moves every pin that a
    security suite has a newer version of. What moved with a name, and what was left behind
    and why, is appended to `notes`. `architecture`: a Debian architecture (see `debian_arch`).
    `defaults`: packages added to the request when the sources have them and `exclude` does not
    name them (the spec layer's base-passwd: every Debian image gets its accounts).
    `tools_out`: filled with the packages maintainer scripts need while they run at lock time
    and the closure lacks: the Essential set (which dpkg guarantees to every script) and what it
    depends on, at the versions already chosen where shared (`previous_tools` kept as pins are).
    `build_requests` (build stage name -> packages): `builds_out` gets, per name, the packages
    a build stage holds besides the image's (the named ones, their dependencies and the
    Essential set), at the image's versions where shared: never in the image.
    """
    blocks = [contents] if isinstance(contents, DebianContents) else list(contents)
    used = _debian_sources(sources, blocks)
    names, pins, exclude, essential = _merge(blocks)
    previous = {p.name: p for p in previous_pins or () if p.architecture in (architecture, "all")}
    upgrade = set(upgrade)
    unknown = sorted(upgrade - set(previous) - set(names))
    if unknown:
        raise InputError(f"--upgrade names packages not in the lock: {', '.join(unknown)}",
                         hint="name packages that the current lock pins")
    index_pins, universe = load_universe({n: sources[n] for n in used}, used, store, mirrors_cli,
                                         architecture, check_valid_until=check_valid_until)
    names = sorted({*names, *(n for n in defaults if n not in exclude and n in universe.by_name)})
    siblings = source_siblings(universe, previous, upgrade)
    moving = upgrade | {s for group in siblings.values() for s in group}
    if upgrade_security:
        moving |= set(security_updates(universe, previous.values()))
    try:
        result = resolve(universe, names, pins=pins, essential=essential, exclude=exclude,
                         prefer={n: p.version for n, p in previous.items() if n not in moving})
    except InputError as e:
        dragged = moving - upgrade - (set(security_updates(universe, previous.values()))
                                      if upgrade_security else set())
        if not dragged:
            raise
        # Moving the siblings too cannot be resolved: move what was asked, and say so.
        if notes is not None:
            notes.append(f"left {', '.join(sorted(dragged))} (same source package as "
                         f"{', '.join(sorted(upgrade))}) at the locked versions: moving them "
                         f"too fails: {e.message}")
        siblings = {}
        moving -= dragged
        result = resolve(universe, names, pins=pins, essential=essential, exclude=exclude,
                         prefer={n: p.version for n, p in previous.items() if n not in moving})
    for d in result.dropped:
        log.info("dependency dropped because only excluded packages satisfy it: %s", d)
    if notes is not None:
        chosen = {c.name: c for c in result.packages}
        notes += _upgrade_notes(universe, previous, chosen, pins, upgrade, siblings,
                                upgrade_security, architecture)
    out = _pins(result.packages, previous)
    if tools_out is not None and not essential:
        chosen_versions = {c.name: c.version for c in result.packages}
        kept = {p.name: p for p in previous_tools if p.architecture in (architecture, "all")}
        tools = resolve(universe, sorted(chosen_versions), pins=chosen_versions,
                        prefer={n: p.version for n, p in kept.items()}, essential=True)
        tools_out += _pins([c for c in tools.packages if c.name not in chosen_versions], kept)
    if build_requests and builds_out is not None:
        chosen_versions = {c.name: c.version for c in result.packages}
        for stage, wanted in sorted(build_requests.items()):
            try:
                extra = resolve(universe, sorted({*chosen_versions, *wanted}), pins=chosen_versions,
                                essential=True)
            except InputError as e:
                e.message = f"build stage of {stage}: {e.message}"
                raise
            builds_out[stage] = _pins([c for c in extra.packages if c.name not in chosen_versions],
                                      {})
    return index_pins, out


def _pins(chosen: Iterable[Candidate], previous: Mapping[str, DebianPackagePin]) -> list[DebianPackagePin]:
    out: list[DebianPackagePin] = []
    for c in chosen:
        old = previous.get(c.name)
        if old is not None and old.version == c.version and old.sha256 == c.sha256:
            out.append(old)  # same bytes: keep the pin as it was, location and all
            continue
        out.append(DebianPackagePin(
            name=c.name, version=c.version, architecture=c.architecture, source=c.source,
            location=f"{c.source}:{c.filename}", size=c.size, sha256=c.sha256, suite=c.suite,
        ))
    return out


def _source_of(universe: Universe, name: str, version: str | None) -> str:
    """The source package of `name` at `version` (else at its newest version) in the indexes."""
    c = universe.candidate(name, version) if version is not None else None
    if c is None:
        cands = universe.by_name.get(name, [])
        c = cands[0] if cands else None
    return c.source_package if c is not None else name


def source_siblings(universe: Universe, previous: Mapping[str, DebianPackagePin],
                    named: Iterable[str]) -> dict[str, list[str]]:
    """For each named package, the other locked binaries of its source package, sorted.

    The source is read from the indexes (`Source:`) at the locked version, so a binary whose
    name says nothing of its source (libssl3, from openssl) is still found."""
    by_source: dict[str, list[str]] = {}
    for n, p in sorted(previous.items()):
        by_source.setdefault(_source_of(universe, n, p.version), []).append(n)
    out: dict[str, list[str]] = {}
    for n in sorted(named):
        old = previous.get(n)
        src = _source_of(universe, n, old.version if old is not None else None)
        out[n] = [s for s in by_source.get(src, []) if s != n]
    return out


def security_updates(universe: Universe, pins: Iterable[DebianPackagePin]) -> dict[str, Candidate]:
    """Pins that a security suite holds a newer version of: name -> the newest such candidate."""
    out: dict[str, Candidate] = {}
    for p in pins:
        for c in universe.by_name.get(p.name, []):  # highest version first
            if universe.is_security(c) and V(c.version) > V(p.version):
                out[p.name] = c
                break
    return out


def _upgrade_notes(
    universe: Universe,
    previous: Mapping[str, DebianPackagePin],
    chosen: Mapping[str, Candidate],
    pins: Mapping[str, str],
    named: set[str],
    siblings: Mapping[str, list[str]],
    upgrade_security: bool,
    architecture: str,
) -> list[str]:
    """What the user should know after an upgrade: what moved together, and what stayed and why."""
    notes: list[str] = []

    def moved(n: str) -> bool:
        return n in previous and n in chosen and chosen[n].version != previous[n].version

    def why_stays(n: str) -> str:
        old = previous[n]
        if n in pins:
            return f"the spec pins {n}={pins[n]}"
        if n not in chosen:
            return "no longer needed"
        newest = universe.by_name.get(n, [])
        if not newest or V(newest[0].version) <= V(old.version):
            return "no configured suite has a newer version"
        return f"{newest[0].label} is in {newest[0].source}/{newest[0].suite} but the " \
            "resolution kept the locked one"

    where = f" ({architecture})" if architecture != "amd64" else ""
    done: set[str] = set()
    for n in sorted(named):
        if n in previous and not moved(n):
            notes.append(f"--upgrade {n}: stays at {previous[n].version}{where}: {why_stays(n)}")
        group = [s for s in siblings.get(n, []) if s not in named and s not in done]
        if not group:
            continue
        done |= set(group)
        src = _source_of(universe, n, previous[n].version if n in previous else None)
        went = [s for s in group if moved(s)]
        stayed = [s for s in group if not moved(s)]
        if went:
            notes.append(f"--upgrade {n} also moved {', '.join(went)} (source package {src}){where}")
        for s in stayed:
            notes.append(f"--upgrade {n} left {s} at {previous[s].version} (source package "
                         f"{src}){where}: {why_stays(s)}")
    if upgrade_security:
        updates = security_updates(universe, previous.values())
        for n, c in sorted(updates.items()):
            if not moved(n):
                notes.append(f"security update {c.label} ({c.source}/{c.suite}) not taken"
                             f"{where}: {why_stays(n)}")
        if not updates and previous:
            notes.append(f"no security updates for the locked packages{where}")
    return notes
