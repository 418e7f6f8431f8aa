"""Platform strings (`os/arch[/variant]`) and how an index entry is matched against one.

An image index lists one manifest per platform; readers of layouts and registries pick the one
asked for with the same rule, so `oci:DIR` and `docker://REF` resolve a platform identically.
"""

from __future__ import annotations

from collections.abc import Sequence

from imagelock.core.errors import InputError
from imagelock.formats.oci import REF_NAME, Descriptor, Platform

DEFAULT_PLATFORM = "linux/amd64"


def parse_platform(platform: str) -> tuple[str, str, str | None]:
    """`linux/arm64/v8` -> ("linux", "arm64", "v8"); refuses anything else."""
    parts = platform.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InputError(
            f"{platform!r} is not a platform",
            hint="write OS/ARCH or OS/ARCH/VARIANT, for example linux/amd64 or linux/arm64/v8",
        )
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def platform_string(os_: str, arch: str, variant: str | None = None) -> str:
    return f"{os_}/{arch}/{variant}" if variant else f"{os_}/{arch}"


def matches(candidate: Platform | None, wanted: str) -> bool:
    """Whether an index entry's platform is the one asked for.

    A wanted platform without a variant takes any variant (linux/arm64 matches linux/arm64/v8),
    as container engines do; an entry without a platform matches nothing.
    """
    if candidate is None:
        return False
    os_, arch, variant = parse_platform(wanted)
    if (candidate.os, candidate.architecture) != (os_, arch):
        return False
    return variant is None or candidate.variant == variant


def describe(candidate: Platform | None) -> str:
    if candidate is None:
        return "(no platform)"
    return platform_string(candidate.os, candidate.architecture, candidate.variant)


def pick(descriptors: Sequence[Descriptor], wanted: str, where: str) -> Descriptor:
    """The one entry of an index for platform `wanted`; anything else is an error naming what
    there is."""
    found = [d for d in descriptors if matches(d.platform, wanted)]
    if len(found) == 1:
        return found[0]
    have = ", ".join(sorted({describe(d.platform) for d in descriptors})) or "nothing"
    if not found:
        raise InputError(
            f"{where} has no image for platform {wanted} (it has: {have})",
            hint="ask for one of the platforms it has (--platform OS/ARCH)",
        )
    names = sorted({(d.annotations or {}).get(REF_NAME, "") for d in found} - {""})
    raise InputError(
        f"{where} has {len(found)} images for platform {wanted}",
        hint="name one: " + (", ".join(names) if names else "give the platform with its variant"),
    )
