"""Images in a registry: `pull` a reference into an OCI layout and the `Image` model, `push` an
image (or a layout or archive) to a reference. Attestations attach as OCI 1.1 referrers
(`referrers.py`; re-exported here).

A pull trusts the registry for nothing: a manifest asked for by digest must hash to it, one asked
for by tag must hash to what the registry says it is, an index is followed to the platform by
the digest it lists, and every blob is hashed while it streams into a temporary file and kept
only when it matches its descriptor. Blobs are never held whole in memory, either way.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

from imagelock.core import progress
from imagelock.core.errors import InputError, IntegrityError
from imagelock.fetch.store import Store
from imagelock.formats.oci import MT_MANIFEST, ConfigDoc, Index, Manifest, Platform
from imagelock.oci.blobio import (
    CONFIG_TYPES,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    check_document_size,
    check_media_type,
    digest_hex,
    parse_json,
    parse_model,
)
from imagelock.oci.image import Blob, Image
from imagelock.oci.layout import write_layout
from imagelock.oci.layout_read import MAX_INDEX_DEPTH, check_platform, read_layout
from imagelock.oci.platform import DEFAULT_PLATFORM, parse_platform, pick, platform_string
from imagelock.oci.reference import Reference, parse_reference
from imagelock.oci.registry.auth import Credentials
from imagelock.oci.registry.client import (
    ManifestRef,
    RegistryClient,
    as_reference,
    client_for,
    get_checked,
)
from imagelock.oci.registry.referrers import (
    Artifact,
    Referrer,
    fetch_referrer,
    list_referrers,
    push_referrer,
)

__all__ = [
    "Artifact", "Credentials", "ManifestRef", "Reference", "Referrer", "fetch_referrer",
    "list_referrers", "parse_reference", "pull", "push", "push_referrer", "resolve",
]


def resolve(
    ref: str | Reference, *, insecure: bool = False, credentials: Credentials | None = None
) -> ManifestRef:
    """The manifest or index `ref` names, checked against its digest, without following it."""
    r = as_reference(ref)
    with client_for(r, insecure=insecure, credentials=credentials) as client:
        return get_checked(client, r)


def resolve_platform(
    client: RegistryClient, ref: Reference, platform: str | None
) -> tuple[ManifestRef, Platform | None]:
    """Follow `ref` through image indexes to the manifest for `platform` (default linux/amd64)."""
    current, listed = get_checked(client, ref), None
    for _ in range(MAX_INDEX_DEPTH):
        if current.media_type not in INDEX_TYPES:
            return current, listed
        what = f"image index {current.digest} from {ref.name}"
        index = parse_model(Index, current.data, what, ref.name)
        desc = pick(index.manifests, platform or DEFAULT_PLATFORM, what)
        check_media_type(desc.media_type, MANIFEST_TYPES | INDEX_TYPES, f"entry {desc.digest}")
        current = get_checked(client, ref.at(desc.digest), size=desc.size)
        if current.media_type != desc.media_type:
            raise InputError(f"{what} lists {desc.digest} as {desc.media_type}, but it is "
                             f"{current.media_type}", hint="the index was crafted: do not use it")
        listed = desc.platform
    raise InputError(f"image indexes at {ref} nest deeper than {MAX_INDEX_DEPTH}",
                     hint="the registry serves a loop or a crafted index: do not use it")


@progress.phase("pull")
def pull(
    ref: str | Reference,
    dest_dir: str | os.PathLike[str],
    *,
    platform: str | None = None,
    cache: str | os.PathLike[str] | None = None,
    insecure: bool = False,
    credentials: Credentials | None = None,
) -> Image:
    """Pull `ref` for `platform` into an OCI layout at `dest_dir` and return its image.

    Blobs stream into `cache` (a sha256-addressed store; blobs already there are re-hashed and
    reused) or a temporary one beside `dest_dir`. The layout is written atomically; the image
    returned is read back from it, so its blobs live in `dest_dir`.
    """
    r = as_reference(ref)
    if platform is not None:
        parse_platform(platform)
    dest = Path(dest_dir).absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = None if cache is not None else tempfile.mkdtemp(prefix=".pull-", dir=dest.parent)
    store = Store(Path(cache) if cache is not None else Path(str(tmp)))
    try:
        with client_for(r, insecure=insecure, credentials=credentials) as client:
            found, listed = resolve_platform(client, r, platform)
            image = _download(client, r, found, listed, platform, store)
        write_layout([image], Path(dest))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return read_layout(dest)


def _download(
    client: RegistryClient,
    ref: Reference,
    found: ManifestRef,
    listed: Platform | None,
    platform: str | None,
    store: Store,
) -> Image:
    what = f"manifest {found.digest}"
    check_media_type(found.media_type, MANIFEST_TYPES, what)
    m = parse_model(Manifest, found.data, what, ref.name)
    check_media_type(m.config.media_type, CONFIG_TYPES, f"config {m.config.digest}")
    for i, d in enumerate(m.layers):
        check_media_type(d.media_type, LAYER_TYPES, f"layer {i} ({d.digest})")
    progress.planned(1 + len(m.layers), m.config.size + sum(d.size for d in m.layers), "blobs")
    cfg_what = f"config {m.config.digest}"
    check_document_size(m.config.size, cfg_what, ref.name)
    client.download_blob(ref.repository, m.config.digest, m.config.size, store, cfg_what)
    config = store.path_for(digest_hex(m.config.digest, cfg_what)).read_bytes()
    cfg = parse_model(ConfigDoc, config, cfg_what, ref.name)
    variant = parse_json(config, cfg_what, ref.name).get("variant")
    got = Platform(os=cfg.os, architecture=cfg.architecture,
                   variant=variant if isinstance(variant, str) else None)
    check_platform(got, listed, platform, what, ref.name)
    if len(cfg.rootfs.diff_ids) != len(m.layers):
        raise InputError(f"{what} from {ref.name} lists {len(m.layers)} layers but its config "
                         f"has {len(cfg.rootfs.diff_ids)} diff_ids",
                         hint="the image is inconsistent: do not use it")
    layers = []
    for i, d in enumerate(m.layers):
        lwhat = f"layer {i} ({d.digest})"
        client.download_blob(ref.repository, d.digest, d.size, store, lwhat)
        layers.append(Blob(d.digest, d.size, d.media_type,
                           path=store.path_for(digest_hex(d.digest, lwhat))))
    return Image(manifest=found.data, config=config, layers=layers, name=ref.name,
                 tag=ref.tag or f"sha256-{digest_hex(found.digest, what)}",
                 platform=platform_string(got.os, got.architecture, got.variant))


@progress.phase("push")
def push(
    image: Image,
    ref: str | Reference,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
    chunk_size: int | None = None,
) -> str:
    """Push an image to `ref`; returns the manifest digest. Blobs the registry has are not sent
    again; `chunk_size` uploads larger blobs in chunks of that many bytes. (Reading an image from
    a layout or archive is `oci.locations.read_image`'s job, which sits above this module.)"""
    r = as_reference(ref)
    digest = image.manifest_digest
    if r.digest is not None and r.digest != digest:
        raise InputError(f"{r} pins {r.digest}, but the image's manifest is {digest}",
                         hint="push to a tag, or to the digest of this image")
    media_type = _check_pushable(image)
    with client_for(r, insecure=insecure, credentials=credentials) as client:
        seen: set[str] = set()
        progress.planned(len({b.digest for b in image.layers}) + 1,
                         sum({b.digest: b.size for b in image.layers}.values()) + len(image.config),
                         "blobs")
        for blob in image.layers:
            if blob.digest not in seen:
                seen.add(blob.digest)
                sent = client.upload_blob(r.repository, blob.digest, blob.size, blob.open,
                                          chunk_size=chunk_size)
                progress.item(f"layer {blob.digest}", "uploaded" if sent else "present",
                              blob.size, r.host)
        config = image.config
        sent = client.upload_blob(r.repository, image.config_digest, len(config),
                                  lambda: io.BytesIO(config), chunk_size=chunk_size)
        progress.item(f"config {image.config_digest}", "uploaded" if sent else "present",
                      len(config), r.host)
        headers = client.put_manifest(r.repository, r.tag or digest, image.manifest, media_type)
    said = headers.get("Docker-Content-Digest")
    if said and said != digest:
        raise IntegrityError(f"{r.name} stored the manifest as {said}, not {digest}",
                             hint="the registry rewrote the manifest; it does not keep digests")
    return digest


def _check_pushable(image: Image) -> str:
    """The manifest's media type, after checking it describes exactly the image's blobs."""
    m = parse_model(Manifest, image.manifest, "the image's manifest", "the image to push")
    media_type = m.media_type or MT_MANIFEST
    check_media_type(media_type, MANIFEST_TYPES, "the image's manifest")
    described = [(d.digest, d.size) for d in m.layers]
    if (m.config.digest, m.config.size) != (image.config_digest, len(image.config)) or described != [
        (b.digest, b.size) for b in image.layers
    ]:
        raise InputError("the image's manifest does not describe its config and layers",
                         hint="internal: the Image was assembled inconsistently")
    return media_type

