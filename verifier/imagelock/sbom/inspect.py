"""`imagelock inspect LOCK|REF...`: what is inside each image, or which images hold a package."""

from __future__ import annotations

from collections.abc import Sequence

from imagelock.formats.inventory import InspectedImage, InspectResult
from imagelock.formats.maintscripts import applied_effects
from imagelock.sbom.items import items, platform_of
from imagelock.sbom.query import Condition
from imagelock.sbom.targets import Target


def inspect(targets: Sequence[Target], *, condition: Condition | None = None,
            platform: str | None = None) -> InspectResult:
    """The inventory of every target (each platform of its lock, or only `platform`); with a
    condition, only the matching packages, and which targets hold one."""
    images: list[InspectedImage] = []
    matched: list[str] = []
    for t in targets:
        platforms = [platform_of(t.lock, platform)] if platform is not None else list(t.lock.platforms)
        hit = False
        for plat in platforms:
            listed = [i for i in items(t.lock, plat) if condition is None or condition.matches(i)]
            hit = hit or bool(listed)
            exp = t.lock.expected.get(plat)
            deb = t.lock.debian.get(plat)
            effects = applied_effects(deb.scripts) if deb is not None and condition is None else {}
            images.append(InspectedImage(
                target=t.given, image=f"{t.lock.image.name}:{t.lock.image.tag}", platform=plat,
                manifest_digest=exp.manifest_digest if exp is not None else None,
                items=[i.inventory() for i in listed], effects=effects))
        if hit:
            matched.append(t.given)
    return InspectResult(query=condition.text if condition is not None else None, images=images,
                         matched=matched)
