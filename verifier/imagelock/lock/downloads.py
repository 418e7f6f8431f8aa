"""Pinning downloads: fetch each one into the store and record its sha256, size and location."""

from __future__ import annotations

from collections.abc import Mapping

from imagelock.core.errors import InputError
from imagelock.fetch.downloads import urls_for
from imagelock.fetch.http import fetch_to_store
from imagelock.fetch.store import Store
from imagelock.formats.lock import DownloadPin
from imagelock.formats.spec import DownloadInput, HttpSource


def location_of(item: DownloadInput) -> str:
    if item.url is not None:
        return item.url
    assert item.source is not None and item.path is not None
    return f"{item.source}:{item.path.lstrip('/')}"




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
        layer=item.layer or default_layer, platforms=item.platforms,
    )
