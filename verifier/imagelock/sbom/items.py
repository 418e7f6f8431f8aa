"""What a lock puts into one platform's image, as a flat list: each input kind's SBOM
components (`inputs.registry.components`, the input-kind interface), in the kinds' order.

Every later part of this stage (the `inspect` table, version queries, SPDX and CycloneDX) works
on these items; none of it reads the lock's input sections itself, so a new input kind shows
up here with no change.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagelock.core.errors import InputError
from imagelock.formats.inventory import InventoryItem
from imagelock.formats.lock import Lock
from imagelock.inputs.kind import Component
from imagelock.inputs.registry import components


@dataclass(frozen=True)
class Item:
    """One input placed in the image: an input kind's component, with a stable reference."""

    component: Component

    @property
    def kind(self) -> str:
        return self.component.kind

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def version(self) -> str | None:
        return self.component.version

    @property
    def ref(self) -> str:
        """A name for the item unique within one image, stable across runs."""
        c = self.component
        return f"{c.kind}:{c.name}" + (f"@{c.version}" if c.version else "") + f"#{c.sha256[:12]}"

    def inventory(self) -> InventoryItem:
        c = self.component
        return InventoryItem(kind=c.kind, name=c.name, version=c.version,
                             architecture=c.architecture, origin=c.origin, layer=c.layer,
                             purl=c.purl, sha256=c.sha256, size=c.size)


def platform_of(lock: Lock, platform: str | None) -> str:
    """The platform asked for, checked against the lock's; default the lock's first."""
    if platform is None:
        return lock.platforms[0]
    if platform not in lock.platforms:
        raise InputError(f"the lock has no platform {platform}",
                         hint="choose one of " + ", ".join(lock.platforms))
    return platform


def items(lock: Lock, platform: str) -> list[Item]:
    """Every pinned input of `platform`'s image, kind by kind (each kind in its lock's order),
    so the same lock always gives the same list."""
    return [Item(c) for c in components(lock, platform)]
