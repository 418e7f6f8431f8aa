"""Pinning downloads: fetch each one into the store and record its sha256, size and location."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InputError
from ..fetch import fetch_to_store
from ..formats.lock import DownloadPin
from ..formats.spec import DownloadInput, HttpSource
from ..mirrors import join, mirrors_for, split_location
from ..store import Store


def location_of(item: DownloadInput) -> str:
    if item.url is not None:
        return item.url
    assert item.source is not None and item.path is not None
    return f"{item.source}:{item.path.lstrip('/')}"


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


def pin_download(
    item: DownloadInput,
    index: int,
    store: Store,
    sources: Mapping[str, HttpSource],
    cli: Mapping[str, list[str]],
    default_layer: str,
    *,
    offline: bool = False,
) -> DownloadPin:
    location = location_of(item)
    if item.source is not None and item.source not in sources:
        raise InputError(f"contents.downloads[{index}].source: unknown source {item.source!r}",
                         field=f"contents.downloads[{index}].source",
                         hint=f"declare it under `sources` (known: {sorted(sources)})")
    sha = item.sha256
    if offline:
        if sha is None or not store.has(sha):
            raise InputError(f"download {location} is not in the store and --offline was given",
                             hint="run `imagelock fetch` or lock without --offline")
        digest, size = sha, store.path_for(sha).stat().st_size
    else:
        digest, size = fetch_to_store(
            store, urls_for(location, sources, cli), sha256=sha, what=f"download {location}"
        )
    return DownloadPin(
        location=location, sha256=digest, size=size, dest=item.dest, unpack=item.unpack,
        strip_components=item.strip_components, mode=item.mode, owner=item.owner,
        layer=item.layer or default_layer,
    )
