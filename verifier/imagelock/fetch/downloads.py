"""Where a pinned download's bytes come from: a URL, or a location relative to a named source's mirrors."""

from __future__ import annotations

from collections.abc import Mapping

from imagelock.core.errors import InputError
from imagelock.fetch.mirrors import join, mirrors_for, split_location
from imagelock.formats.spec import HttpSource


def urls_for(
    location: str, sources: Mapping[str, HttpSource], cli: Mapping[str, list[str]]
) -> list[str]:
    """Candidate URLs for a lock location, mirrors in order."""
    if "://" in location:
        return [location]
    name, rel = split_location(location)
    src = sources.get(name)
    mirrors = mirrors_for(name, cli=cli, spec=src.mirrors if src else ())
    if not mirrors:
        raise InputError(
            f"no mirror configured for source {name!r} (needed for {location})",
            hint=f"add mirrors to the source in the spec, pass --mirror {name}=URL, or set "
            f"IMAGELOCK_MIRROR_{name.upper()}",
        )
    return [join(m, rel) for m in mirrors]
