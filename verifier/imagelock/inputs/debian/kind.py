"""Debian packages: the lock's .deb pins per platform (and the signed indexes they were chosen
from), fetched from the source's mirrors, combined into one Debian root with its dpkg database,
accounts, CA bundle and ld.so.cache (`root`), and placed in the layers of `debian_layout`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from packageurl import PackageURL

from imagelock.fetch.debian import package_urls
from imagelock.formats.debian import DebianIndexPin, DebianPackagePin, DebianSource
from imagelock.formats.lock import Lock
from imagelock.inputs.debian.diff import diff_debian
from imagelock.inputs.kind import (
    BuildInputs,
    Component,
    Dependency,
    Mirrors,
    PinDiff,
    Placement,
    Review,
    Source,
    changed_lines,
)
from imagelock.tar.entry import Entry


def _debian_sources(sources: Mapping[str, object], pin: DebianPackagePin) -> dict[str, DebianSource]:
    """The spec's Debian sources; without the spec, the pin's suite on the machine's mirrors."""
    out = {k: v for k, v in sources.items() if isinstance(v, DebianSource)}
    name = pin.location.partition(":")[0]
    out.setdefault(name, DebianSource(kind="debian", suites=[pin.suite]))
    return out


# Debian's release numbers by code name, for the purl `distro` qualifier (`debian-12`).
_DEBIAN_RELEASES = {
    "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14",
    "duke": "15",
}


def debian_distro(suite: str) -> str:
    """The purl `distro` of a suite: `bookworm-security` -> `debian-12` (else the code name)."""
    codename = suite.split("-", 1)[0].split("/", 1)[0]
    release = _DEBIAN_RELEASES.get(codename)
    return f"debian-{release}" if release else codename


def _purl(p: DebianPackagePin) -> str:
    """`pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12`, encoded as the purl spec says
    (by its own library: `+` becomes %2B, an epoch's `:` stays)."""
    return PackageURL(type="deb", namespace="debian", name=p.name, version=p.version,
                      qualifiers={"arch": p.architecture,
                                  "distro": debian_distro(p.suite)}).to_string()


def deb_source(deb: DebianPackagePin, mirrors: Mirrors, what: str) -> Source:
    """Where a pinned .deb's bytes come from (also for build stages, which the image lacks)."""
    return Source(deb.sha256, deb.size, what, lambda: package_urls(
        deb, _debian_sources(mirrors.sources, deb), mirrors.cli))


class DebianPackages:
    name = "debian"

    def pins(self, lock: Lock, platform: str) -> Sequence[DebianPackagePin]:
        pins = lock.debian.get(platform)
        return pins.packages if pins is not None else []

    def sources(self, lock: Lock, mirrors: Mirrors) -> Iterator[Source]:
        debs = {deb.sha256: deb for pins in lock.debian.values()
                for deb in [*pins.packages, *pins.script_tools]}
        for deb in debs.values():
            yield Source(deb.sha256, deb.size, f"package {deb.name} {deb.version} ({deb.architecture})",
                         lambda deb=deb: package_urls(  # type: ignore[misc]
                             deb, _debian_sources(mirrors.sources, deb), mirrors.cli))

    def platform_layers(self, lock: Lock) -> set[str]:
        layout = lock.debian_layout
        return set() if layout is None else {layout.layer, *(g.layer for g in layout.groups)}

    def place(self, lock: Lock, platform: str, build: BuildInputs) -> Iterator[Placement]:
        pins = lock.debian.get(platform)
        if pins is None or lock.debian_layout is None:
            return
        # lazy: .deb extraction and the root's generators load for a build, not for diff or sign
        from imagelock.inputs.debian.accounts import Group, User
        from imagelock.inputs.debian.root import debian_entries

        layout = lock.debian_layout
        root = debian_entries(
            pins.packages, build.store, build.workdir, source_date_epoch=lock.source_date_epoch,
            users=[User(u.name, u.uid, u.gid, u.home, u.shell) for u in lock.accounts.users],
            groups=[Group(g.name, g.gid, tuple(g.members)) for g in lock.accounts.groups],
            effects=pins.scripts,
            # an `Architecture: all` .deb is the same bytes for every platform: extracted once
            extracted=build.shared.setdefault("extracted", {}),  # type: ignore[arg-type]
        )
        layer_of = {name: g.layer for g in layout.groups for name in g.packages}
        for name, entries in root.packages.items():
            for e in entries:
                yield e, layer_of.get(name, layout.layer), f"contents.debian ({name})"
        for e in root.system:
            yield e, layout.layer, "contents.debian (generated)"

    def make_layers(self, lock: Lock, platform: str, layers: dict[str, list[Entry]],
                    build: BuildInputs) -> dict[str, list[Entry]]:
        return {}

    def dependencies(self, lock: Lock) -> Iterator[Dependency]:
        seen = set()
        for pins in lock.debian.values():
            for p in pins.packages:
                if (p.name, p.architecture, p.sha256) not in seen:  # an `all` package is one input
                    seen.add((p.name, p.architecture, p.sha256))
                    yield Dependency(_purl(p), p.sha256, p.location)

    def diff(self, old: Lock, new: Lock) -> PinDiff:
        """A review of the package changes per platform; one line per changed signed index."""
        platforms = sorted(old.debian.keys() | new.debian.keys())
        reviews: dict[str, Review] = {}
        lines: list[str] = []
        for platform in platforms:
            o, n = old.debian.get(platform), new.debian.get(platform)
            reviews[platform] = diff_debian(o.packages if o else [], n.packages if n else [])
        for platform in platforms:
            o, n = old.debian.get(platform), new.debian.get(platform)

            def indexes(pins: list[DebianIndexPin], platform: str = platform) -> dict[str, dict[str, object]]:
                return {f"{p.source}/{p.suite}/{p.packages_path} ({platform})": p.model_dump(mode="json")
                        for p in pins}

            lines += changed_lines("index", indexes(o.indexes if o else []),
                                   indexes(n.indexes if n else []))
        return PinDiff(lines, "Debian packages", reviews)

    def components(self, lock: Lock, platform: str) -> Iterator[Component]:
        layout = lock.debian_layout
        default = layout.layer if layout is not None else "debian"
        grouped = {n: g.layer for g in layout.groups for n in g.packages} if layout else {}
        for p in self.pins(lock, platform):
            yield Component(self.name, p.name, p.version, _purl(p), p.sha256, p.size,
                            layer=grouped.get(p.name, default), origin=f"{p.source}/{p.suite}",
                            architecture=p.architecture)

