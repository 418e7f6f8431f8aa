"""A base image outside a set, pinned by digest: pinning it at `lock` time and making its blobs
present in the store (each checked against its digest) before a build or rebuild.

Everything is addressed by digest: the reference names the manifest (or an index) by digest, the
registry's answer is hashed before it is parsed, and each config and layer blob is streamed into
the sha256-addressed store and refused unless it hashes to what the manifest says. A base whose
manifest no longer has the pinned digest is refused naming the reference. Bounds: a manifest or
config of at most `check_document_size`'s limit, at most MAX_BASE_LAYERS layers.
"""

from __future__ import annotations

from imagelock.core.errors import FetchError, InputError, IntegrityError
from imagelock.fetch.store import Store
from imagelock.formats.lock import BaseImagePin, BaseLayerPin, BasePlatformPin
from imagelock.formats.oci import ConfigDoc, Manifest
from imagelock.oci.blobio import check_document_size, digest_hex, parse_model
from imagelock.oci.registry.client import as_reference, client_for, get_checked
from imagelock.oci.registry.transfer import _download, resolve_platform

#: Layers a base image may have (an image runtime's own limit is 127 for overlayfs).
MAX_BASE_LAYERS = 127


def pin_base(ref: str, platforms: list[str], store: Store) -> BaseImagePin:
    """Pull the base `ref` for each platform into `store` (every blob checked) and pin it."""
    r = as_reference(ref)
    if r.digest is None:
        raise InputError(f"base image {ref} is not pinned by digest", field="parent",
                         hint="name it REGISTRY/REPO@sha256:HEX (`imagelock push` prints it)")
    out = {}
    with client_for(r) as client:
        for platform in platforms:
            found, listed = resolve_platform(client, r, platform)
            image = _download(client, r, found, listed, platform, store)
            store.add_chunks([found.data], sha256=digest_hex(found.digest, "manifest"),
                             what=f"manifest of base image {ref}")
            m = parse_model(Manifest, found.data, f"manifest {found.digest}", ref)
            cfg = parse_model(ConfigDoc, image.config, f"config {m.config.digest}", ref)
            if len(m.layers) > MAX_BASE_LAYERS:
                raise InputError(f"base image {ref} has {len(m.layers)} layers, more than "
                                 f"{MAX_BASE_LAYERS}", field="parent")
            out[platform] = BasePlatformPin(
                manifest_digest=found.digest, manifest_size=len(found.data),
                config_digest=m.config.digest, config_size=m.config.size,
                layers=[BaseLayerPin(digest=d.digest, size=d.size, media_type=d.media_type,
                                     diff_id=diff) for d, diff in zip(m.layers, cfg.rootfs.diff_ids,
                                                                      strict=True)])
    counts = {len(p.layers) for p in out.values()}
    if len(counts) > 1:
        raise InputError(f"base image {ref} has a different number of layers per platform",
                         field="parent", hint="build the set for one platform per base")
    return BaseImagePin(ref=ref, platforms=out)


def fetch_base(pin: BaseImagePin, store: Store, *, offline: bool) -> int:
    """Make every blob of the pinned base present and intact in `store`; returns how many were
    downloaded. Refused, naming the base, when the registry no longer serves the pinned manifest."""
    missing = [(platform, p) for platform, p in pin.platforms.items()
               if not all(store.has(digest_hex(d, "blob")) for d in
                          [p.manifest_digest, p.config_digest, *(la.digest for la in p.layers)])]
    if not missing:
        for p in pin.platforms.values():
            _verify(pin, p, store)
        return 0
    if offline:
        raise FetchError(f"base image {pin.ref}: its blobs are not in the store and --offline "
                         "forbids the registry", hint="run `imagelock fetch` with the registry "
                         "reachable")
    r = as_reference(pin.ref)
    n = 0
    with client_for(r) as client:
        for _, p in missing:
            try:
                found = get_checked(client, r.at(p.manifest_digest), size=p.manifest_size)
            except (FetchError, IntegrityError) as e:
                e.message = f"base image {pin.ref}: {e.message}"
                raise
            store.add_chunks([found.data], sha256=digest_hex(p.manifest_digest, "manifest"),
                             what=f"manifest of base image {pin.ref}")
            check_document_size(p.config_size, f"config {p.config_digest}", pin.ref)
            for digest, size, what in [(p.config_digest, p.config_size, "config"),
                                       *((la.digest, la.size, f"layer {i}")
                                         for i, la in enumerate(p.layers))]:
                if not store.has(digest_hex(digest, what)):
                    client.download_blob(r.repository, digest, size, store,
                                         f"{what} ({digest}) of base image {pin.ref}")
                    n += 1
    for p in pin.platforms.values():
        _verify(pin, p, store)
    return n


def _verify(pin: BaseImagePin, p: BasePlatformPin, store: Store) -> None:
    """Every blob of one platform hashes to its pin, and the manifest names exactly them."""
    what = f"base image {pin.ref}"
    store.verify(digest_hex(p.manifest_digest, what), p.manifest_size, f"manifest of {what}")
    store.verify(digest_hex(p.config_digest, what), p.config_size, f"config of {what}")
    for i, la in enumerate(p.layers):
        store.verify(digest_hex(la.digest, what), la.size, f"layer {i} of {what}")
    data = store.path_for(digest_hex(p.manifest_digest, what)).read_bytes()
    m = parse_model(Manifest, data, f"manifest {p.manifest_digest}", pin.ref)
    if (m.config.digest, [(d.digest, d.size) for d in m.layers]) != (
            p.config_digest, [(la.digest, la.size) for la in p.layers]):
        raise IntegrityError(f"{what}: its manifest does not name the pinned config and layers",
                             hint="lock the set again to pin what the base is now")
