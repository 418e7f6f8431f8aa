"""A wheel pinned at an old version only because newer releases ship no wheel for the image.

pip with `--only-binary :all:` quietly settles on the newest version that has a wheel for the
target; a user asking for `nova` learns nothing when that is a 2022 release of `ovs` whose later
releases are source archives only. After a resolution, each pin is compared with the newest
release on the indexes: when that release is newer and has no wheel the image can use, `lock`
says so and names both versions. A pin the constraints fix exactly (`NAME==V`, `NAME===V`) is the
user's choice and is not reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from imagelock.core.errors import ImagelockError
from imagelock.fetch.python_index import Indexes
from imagelock.formats.python import WheelPin

#: Index pages read at once (each pin's project page, once).
PARALLEL_PAGES = 8
_EXACT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*===?\s*[^,;\s]+\s*(?:[;#].*)?$")


def exact_pins(constraint_files: Sequence[Path]) -> set[str]:
    """Projects a constraints file fixes to one version."""
    out: set[str] = set()
    for path in constraint_files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            m = _EXACT.match(line)
            if m:
                out.add(canonicalize_name(m.group(1)))
    return out


def _fits_python(requires: str | None, python_version: str) -> bool:
    if not requires:
        return True
    try:
        return SpecifierSet(requires).contains(python_version + ".0", prereleases=True)
    except InvalidSpecifier:
        return True


def old_pin_note(pin: WheelPin, indexes: Indexes, accepted: set[Tag], python_version: str,
                 target: str) -> str | None:
    """The note for one pin, or None when it is the newest release or a newer one would fit."""
    newest: Version | None = None
    wheels: dict[Version, list[tuple[frozenset[Tag], str | None]]] = {}
    sdists: set[Version] = set()
    try:
        files = indexes.files(pin.name)
    except ImagelockError:
        return None  # an index that does not answer now says nothing about the pin
    for f in files:
        if f.yanked:
            continue
        try:
            if f.filename.endswith(".whl"):
                _, ver, _, tags = parse_wheel_filename(f.filename)
                wheels.setdefault(ver, []).append((tags, f.requires_python))
            else:
                ver = parse_sdist_filename(f.filename)[1]
                sdists.add(ver)
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if not ver.is_prerelease and (newest is None or ver > newest):
            newest = ver
    try:
        locked = Version(pin.version)
    except InvalidVersion:
        return None
    if newest is None or newest <= locked:
        return None
    candidates = wheels.get(newest, [])
    if any(tags & accepted and _fits_python(rp, python_version) for tags, rp in candidates):
        return None  # a newer wheel fits: something else (a requirement) holds the pin back
    if candidates and not any(tags & accepted for tags, _ in candidates):
        why = f"its wheels are for other targets than {target}"
    elif candidates:
        return None  # it needs another Python: the requirement is the image's, not a gap
    else:
        why = "it ships a source archive only" if newest in sdists else "it has no wheel"
    return (f"{pin.name}: locked {pin.version}, though {newest} is newer: {why}, and imagelock "
            f"installs wheels only, so pip settled on the newest version with a wheel for the "
            f"image")


def old_version_notes(pins: Sequence[WheelPin], indexes: Indexes, accepted: set[Tag],
                      python_version: str, target: str, fixed: set[str]) -> list[str]:
    """The notes for every pin held back only by the lack of a wheel (see the module doc)."""
    todo = [p for p in pins if canonicalize_name(p.name) not in fixed]
    with ThreadPoolExecutor(max_workers=PARALLEL_PAGES, thread_name_prefix="index") as pool:
        found = list(pool.map(
            lambda p: old_pin_note(p, indexes, accepted, python_version, target), todo))
    return [n for n in found if n is not None]
