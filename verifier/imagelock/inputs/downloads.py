"""Downloads: files the spec names by URL or by a named source's location, pinned by sha256,
placed as one file or unpacked (a tar archive, verified whole before any member is trusted)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from urllib.parse import quote

from imagelock.fetch.downloads import urls_for
from imagelock.formats.common import mode_int, owner_ids
from imagelock.formats.lock import DownloadPin, Lock
from imagelock.formats.spec import HttpSource
from imagelock.inputs.content import StoreContent
from imagelock.inputs.kind import (
    BuildInputs,
    Component,
    Dependency,
    Mirrors,
    PinDiff,
    Placement,
    Source,
    changed_lines,
    keyed,
)
from imagelock.tar.entry import Entry, normalize_path
from imagelock.tar.unpack import unpack_tar


def _is_url(location: str) -> bool:
    return "://" in location


class Downloads:
    name = "downloads"

    def pins(self, lock: Lock, platform: str) -> Sequence[DownloadPin]:
        return [d for d in lock.downloads if d.platforms is None or platform in d.platforms]

    def sources(self, lock: Lock, mirrors: Mirrors) -> Iterator[Source]:
        http = {k: v for k, v in mirrors.sources.items() if isinstance(v, HttpSource)}
        for pin in lock.downloads:
            yield Source(pin.sha256, pin.size, f"download {pin.location}",
                         lambda pin=pin: urls_for(pin.location, http, mirrors.cli))  # type: ignore[misc]

    def platform_layers(self, lock: Lock) -> set[str]:
        return {d.layer for d in lock.downloads if d.platforms is not None}

    def place(self, lock: Lock, platform: str, build: BuildInputs) -> Iterator[Placement]:
        store = build.store
        for i, pin in enumerate(lock.downloads):
            if pin.platforms is not None and platform not in pin.platforms:
                continue
            origin = f"downloads[{i}] ({pin.location})"
            what = f"download {pin.location}"
            if not pin.unpack:
                uid, gid = owner_ids(pin.owner or "0:0")
                mode = mode_int(pin.mode or "0644")
                path = normalize_path(pin.dest, what=f"downloads[{i}].dest")
                content = StoreContent(store, pin.sha256, pin.size, what)
                yield Entry(path, "file", mode, uid, gid, content=content), pin.layer, origin
                continue
            # An archive is verified whole before a single member is trusted.
            store.verify(pin.sha256, pin.size, what)
            with store.open_verified(pin.sha256, pin.size, what) as f:
                for e in unpack_tar(
                    f,  # type: ignore[arg-type]
                    dest=pin.dest,
                    strip=pin.strip_components,
                    staging=build.workdir / f"download-{i}",
                    archive=f"{origin}",
                ):
                    if pin.owner is not None:
                        uid, gid = owner_ids(pin.owner)
                        e = Entry(e.path, e.type, e.mode, uid, gid, e.linkname, e.content)
                    if pin.mode is not None and e.type == "file":
                        e = Entry(e.path, e.type, mode_int(pin.mode), e.uid, e.gid, e.linkname, e.content)
                    yield e, pin.layer, origin

    def make_layers(self, lock: Lock, platform: str, layers: dict[str, list[Entry]],
                    build: BuildInputs) -> dict[str, list[Entry]]:
        return {}

    def dependencies(self, lock: Lock) -> Iterator[Dependency]:
        for d in lock.downloads:
            yield Dependency(d.location, d.sha256, d.location if _is_url(d.location) else None)

    def diff(self, old: Lock, new: Lock) -> PinDiff:
        return PinDiff(changed_lines("download", keyed(old.downloads, "dest"),
                                     keyed(new.downloads, "dest")))

    def components(self, lock: Lock, platform: str) -> Iterator[Component]:
        for d in self.pins(lock, platform):
            name = d.location.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            purl = f"pkg:generic/{quote(name, safe='')}"
            if _is_url(d.location):
                purl += f"?download_url={quote(d.location, safe=':/')}"
            yield Component(self.name, name, None, purl, d.sha256, d.size, layer=d.layer,
                            origin=d.location)
