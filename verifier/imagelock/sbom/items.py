"""What a lock puts into one platform's image, as a flat list: the only module here that reads
the lock's input sections.

Every later part of this stage (the `inspect` table, version queries, SPDX and CycloneDX) works
on these items. The input-kind interface (`inputs/`, issue 10) will give each kind's SBOM
components; when it lands, `items()` becomes a loop over the kinds' components and nothing else
here changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from packageurl import PackageURL

from imagelock.core.errors import InputError
from imagelock.formats.debian import DebianPackagePin
from imagelock.formats.inventory import InventoryItem, ItemKind
from imagelock.formats.lock import ContextPin, DownloadPin, Lock
from imagelock.formats.python import WheelPin

# Debian's release numbers by code name, for the purl `distro` qualifier (`debian-12`).
_DEBIAN_RELEASES = {
    "buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14",
    "duke": "15",
}

Pin = DebianPackagePin | WheelPin | ContextPin | DownloadPin


@dataclass(frozen=True)
class Item:
    """One input placed in the image, with its identity for an SBOM."""

    kind: ItemKind
    name: str
    version: str | None
    sha256: str
    size: int
    layer: str
    origin: str | None  # SOURCE/SUITE of a .deb, the source of a wheel, a download's location
    purl: str | None
    architecture: str | None
    pin: Pin

    @property
    def ref(self) -> str:
        """A name for the item unique within one image, stable across runs."""
        return f"{self.kind}:{self.name}" + (f"@{self.version}" if self.version else "")

    def inventory(self) -> InventoryItem:
        return InventoryItem(kind=self.kind, name=self.name, version=self.version,
                             architecture=self.architecture, origin=self.origin, layer=self.layer,
                             sha256=self.sha256, size=self.size)


def platform_of(lock: Lock, platform: str | None) -> str:
    """The platform asked for, checked against the lock's; default the lock's first."""
    if platform is None:
        return lock.platforms[0]
    if platform not in lock.platforms:
        raise InputError(f"the lock has no platform {platform}",
                         hint="choose one of " + ", ".join(lock.platforms))
    return platform


def debian_distro(suite: str) -> str:
    """The purl `distro` of a suite: `bookworm-security` -> `debian-12`."""
    codename = suite.split("-", 1)[0].split("/", 1)[0]
    release = _DEBIAN_RELEASES.get(codename)
    return f"debian-{release}" if release else codename


def deb_purl(pin: DebianPackagePin) -> str:
    return PackageURL(type="deb", namespace="debian", name=pin.name, version=pin.version,
                      qualifiers={"arch": pin.architecture,
                                  "distro": debian_distro(pin.suite)}).to_string()


def wheel_purl(pin: WheelPin) -> str:
    return PackageURL(type="pypi", name=pin.name, version=pin.version,
                      qualifiers={"file_name": pin.filename}).to_string()


def download_purl(pin: DownloadPin, name: str) -> str:
    qualifiers = {"checksum": f"sha256:{pin.sha256}"}
    if "://" in pin.location:
        qualifiers["download_url"] = pin.location
    return PackageURL(type="generic", name=name, qualifiers=qualifiers).to_string()


def _debian_layers(lock: Lock) -> tuple[str, dict[str, str]]:
    layout = lock.debian_layout
    if layout is None:
        return "debian", {}
    return layout.layer, {n: g.layer for g in layout.groups for n in g.packages}


def items(lock: Lock, platform: str) -> list[Item]:
    """Every pinned input of `platform`'s image: .debs, wheels, context files, downloads, each
    group sorted by name (the lock's order), so the same lock always gives the same list."""
    out: list[Item] = []
    debian = lock.debian.get(platform)
    if debian is not None:
        default, grouped = _debian_layers(lock)
        for p in debian.packages:
            out.append(Item("debian", p.name, p.version, p.sha256, p.size,
                            grouped.get(p.name, default), f"{p.source}/{p.suite}", deb_purl(p),
                            p.architecture, p))
    layer = lock.python_install.layer if lock.python_install is not None else "python"
    for w in sorted(lock.python.get(platform, []), key=lambda w: w.name):
        out.append(Item("python", w.name, w.version, w.sha256, w.size, layer, w.source,
                        wheel_purl(w), None, w))
    for f in sorted(lock.files, key=lambda f: f.dest):
        if f.type == "file" and f.sha256 is not None and f.size is not None:
            out.append(Item("file", f.dest, None, f.sha256, f.size, f.layer,
                            f"context:{f.src}", None, None, f))
    for d in sorted(lock.downloads, key=lambda d: (d.dest, d.location)):
        name = quote(d.location.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1], safe="")
        out.append(Item("download", d.dest, None, d.sha256, d.size, d.layer, d.location,
                        download_purl(d, name), None, d))
    return out
