"""The input bundle beside an image: every pinned blob of its lock, each under the pin's own
sha256, plus the exact InRelease and Packages files of every Debian index the lock records
(spec/README.md §20). A registry holding bundles is a content-addressed store of inputs: a blob
shared by several images of a repository is uploaded once.

`bundle_inputs` is the vendor's side (gather and check everything before publishing);
`BundlePlace` is the rebuilder's (one of the places an input is fetched from).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

from imagelock.core.errors import FetchError
from imagelock.fetch.places import Availability, Fetched, Place, Wanted, fetch_in_order
from imagelock.fetch.store import Store
from imagelock.formats.debian import DEFAULT_KEYRING, DebianSource
from imagelock.formats.lock import Lock
from imagelock.formats.recipe import INPUT_MEDIA_TYPES, TITLE
from imagelock.lock.debian.pin_check import check_debian_pins, signed_entry
from imagelock.oci.referrer_sources import ArtifactManifest, Referrers
from imagelock.oci.registry.referrers import ArtifactBlob
from imagelock.rebuild.inputs import (
    Input,
    InputPlaces,
    PlaceConfig,
    PlacedIndexFiles,
    inrelease_input,
    lock_inputs,
    packages_input,
)


class BundlePlace(Place):
    """The input bundles attached to an image (in a registry, or kept beside a pulled image)."""

    kind = "bundle"

    def __init__(self, referrers: Referrers, bundles: list[ArtifactManifest], *, network: bool
                 ) -> None:
        super().__init__()
        self.referrers = referrers
        self.network = network
        self.label = f"input bundle ({referrers.where})"
        self.listed: dict[str, int] = {}
        for art in bundles:
            for d in art.layers:
                if d.media_type in INPUT_MEDIA_TYPES:
                    self.listed.setdefault(d.digest.removeprefix("sha256:"), d.size)

    def fetch(self, store: Store, w: Wanted) -> bool:
        size = self.listed.get(w.sha256)
        if size is None:
            return False
        if w.size is not None and size != w.size:
            raise FetchError(f"{self.label} lists {w.what} with {size} bytes, not {w.size}")
        if w.limit is not None and size > w.limit:
            raise FetchError(f"{self.label} lists {w.what} with {size} bytes, more than the "
                             f"{w.limit} such a file may have")
        self.referrers.blob_to_store("sha256:" + w.sha256, size, store, f"{w.what} from {self.label}")
        return True

    def probe(self, w: Wanted) -> Availability:
        if w.sha256 not in self.listed:
            return Availability(False, "not in the bundle")
        try:
            ok = self.referrers.has_blob("sha256:" + w.sha256)
        except FetchError as e:
            return Availability(False, e.message)
        return Availability(ok, "listed and stored" if ok else "listed, but the blob is gone")


def bundle_inputs(lock: Lock, store: Store, config: PlaceConfig, *, offline: bool,
                  keyring: Callable[[str], Path] | None = None) -> list[Input]:
    """Every input the bundle of `lock` carries, present in the store and checked: pins fetched
    (store, mirrors, snapshot), each Debian index's InRelease verified against the keyring and
    every .deb against its index, so a vendor never publishes what a rebuilder would refuse."""
    log = Fetched()
    places = InputPlaces(lock, config)
    items = lock_inputs(lock)
    for item in items:
        fetch_in_order(store, item.wanted, places.places(item), offline=offline, log=log)
    ring = keyring or (lambda name: Path(_spec_keyring(config, name)))
    files = PlacedIndexFiles(lock, store, config, offline=offline, log=log)
    seen: set[str] = set()
    for platform, plock in lock.debian.items():
        check_debian_pins(platform, plock, store=store, files=files, keyring=ring)
        for idx in plock.indexes:
            rel = inrelease_input(idx)
            entry, _ = signed_entry(idx, files.inrelease(idx), ring(idx.source))
            pkgs = packages_input(idx, entry)
            files.packages(idx, entry)  # the compressed file itself, not only its parsed cache
            for extra in (rel, pkgs):
                if extra.wanted.sha256 not in seen:
                    seen.add(extra.wanted.sha256)
                    items.append(extra)
    return items


def bundle_blobs(items: list[Input], store: Store) -> list[ArtifactBlob]:
    """The bundle's blobs in a fixed order (by kind, then title), each streamed from the store
    and checked again as it is read."""
    order = {"deb": 0, "wheel": 1, "download": 2, "inrelease": 3, "packages": 4}
    out = []
    for item in sorted(items, key=lambda i: (order[i.kind], i.title, i.wanted.sha256)):
        w = item.wanted
        size = w.size if w.size is not None else store.path_for(w.sha256).stat().st_size
        out.append(ArtifactBlob(item.media_type, "sha256:" + w.sha256, size,
                                _opener(store, w, size), {TITLE: item.title}))
    return out


def _opener(store: Store, w: Wanted, size: int) -> Callable[[], BinaryIO]:
    # The store's reader checks the digest at the end of the stream, so a blob damaged in the
    # store fails the upload instead of being published.
    return lambda: cast(BinaryIO, store.open_verified(w.sha256, size, w.what))


def _spec_keyring(config: PlaceConfig, name: str) -> str:
    # The vendor's own spec on the vendor's own machine: its keyring is the vendor's choice.
    src = config.sources.get(name)
    return src.keyring if isinstance(src, DebianSource) else DEFAULT_KEYRING
