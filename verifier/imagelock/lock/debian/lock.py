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

from imagelock.core.errors import InputError
from imagelock.fetch.debian import source_mirrors
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianContents, DebianIndexPin, DebianPackagePin, DebianSource
from imagelock.lock.debian.index import load_index
from imagelock.lock.debian.release import fetch_release
from imagelock.lock.debian.resolver import Candidate, Universe, candidate_from_record, resolve

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
    order = 0
    for name in names:
        src = sources[name]
        for suite in src.suites:
            mirrors = source_mirrors(name, src, suite, mirrors_cli)
            fetched = fetch_release(mirrors, suite, src.keyring, check_valid_until=check_valid_until)
            rel = fetched.release
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
    return index_pins, Universe(candidates, architecture)


def lock_debian(
    sources: Mapping[str, DebianSource],
    contents: DebianContents | Sequence[DebianContents],
    store: Store,
    mirrors_cli: Mapping[str, list[str]] | None = None,
    previous_pins: Sequence[DebianPackagePin] | None = None,
    upgrade: Iterable[str] = frozenset(),
    *,
    architecture: str = "amd64",
    check_valid_until: bool = False,
) -> tuple[list[DebianIndexPin], list[DebianPackagePin]]:
    """Resolve the Debian contents of a spec into index pins and package pins (sorted by name).

    `sources`: the spec's sources (non-Debian ones are ignored). `contents`: one block, or
    several whose union is resolved as one closure. `previous_pins`: the current lock's
    package pins, kept unless named in `upgrade` (or required newer by what an upgrade newly
    needs). `architecture`: a Debian architecture (see `debian_arch` for platforms).
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
    prefer = {n: p.version for n, p in previous.items() if n not in upgrade}
    result = resolve(universe, names, pins=pins, prefer=prefer, exclude=exclude, essential=essential)
    for d in result.dropped:
        log.info("dependency dropped because only excluded packages satisfy it: %s", d)
    out: list[DebianPackagePin] = []
    for c in result.packages:
        old = previous.get(c.name)
        if old is not None and old.version == c.version and old.sha256 == c.sha256:
            out.append(old)  # same bytes: keep the pin as it was, location and all
            continue
        out.append(DebianPackagePin(
            name=c.name, version=c.version, architecture=c.architecture, source=c.source,
            location=f"{c.source}:{c.filename}", size=c.size, sha256=c.sha256, suite=c.suite,
        ))
    return index_pins, out
