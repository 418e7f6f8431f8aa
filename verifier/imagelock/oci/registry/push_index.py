"""Pushing a multi-platform build as one image index: each platform's manifest by digest, then the
index at the tag, so a consumer pulling the tag gets the manifest for their machine; and pulling
such an index whole, every platform into one layout.

The index pushed is the OCI layout's `index.json` (spec §10), byte for byte: its digest is the
same wherever the build lives.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from imagelock.core.digest import sha256_digest
from imagelock.core.errors import InputError, IntegrityError
from imagelock.formats.oci import MT_INDEX, REF_NAME, Index
from imagelock.oci.blobio import INDEX_TYPES, parse_model
from imagelock.oci.image import Image
from imagelock.oci.layout import index_bytes, write_layout
from imagelock.oci.layout_read import read_layout
from imagelock.oci.platform import describe
from imagelock.oci.reference import Reference
from imagelock.oci.registry.auth import Credentials
from imagelock.oci.registry.client import as_reference, client_for
from imagelock.oci.registry.transfer import pull, push, resolve


def push_index(
    images: list[Image],
    ref: str | Reference,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
) -> str:
    """Push every platform's image, then their index at `ref`'s tag; returns the index digest."""
    r = as_reference(ref)
    if r.tag is None or r.digest is not None:
        raise InputError(f"{r}: an index is pushed to a tag", hint="name the tag, e.g. REPO:1.0")
    if len({img.platform for img in images}) != len(images):
        raise InputError("two images of one platform cannot share an index")
    for img in images:
        push(img, Reference(r.host, r.repository, digest=img.manifest_digest),
             insecure=insecure, credentials=credentials)
    data = index_bytes(images)
    digest = sha256_digest(data)
    with client_for(r, insecure=insecure, credentials=credentials) as client:
        headers = client.put_manifest(r.repository, r.tag, data, MT_INDEX)
    said = headers.get("Docker-Content-Digest")
    if said and said != digest:
        raise IntegrityError(f"{r.name} stored the index as {said}, not {digest}",
                             hint="the registry rewrote the index; it does not keep digests")
    return digest


def pull_index(
    ref: str | Reference,
    dest_dir: Path,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
) -> tuple[str, list[Image]]:
    """Pull every platform of the image index at `ref` into one OCI layout at `dest_dir`;
    returns the index digest and the images, read back from the layout.

    The layout's index.json is written as a multi-platform `build` writes it (spec §10); when
    the registry's index is an imagelock index those bytes are the registry's, so the layout's
    index.json hashes to the digest returned. An index of another shape is refused rather than
    rewritten under a digest it does not have.
    """
    r = as_reference(ref)
    found = resolve(r, insecure=insecure, credentials=credentials)
    if found.media_type not in INDEX_TYPES:
        raise InputError(f"{r} is one image, not an image index",
                         hint="pull it without --platform all")
    index = parse_model(Index, found.data, f"image index {found.digest}", r.name)
    platforms = [describe(d.platform) for d in index.manifests]
    if len(set(platforms)) != len(platforms) or any(d.platform is None for d in index.manifests):
        raise InputError(f"the index at {r} does not list one manifest per platform "
                         f"({', '.join(platforms)})", hint="pull one platform with --platform")
    dest = Path(dest_dir)
    with tempfile.TemporaryDirectory(prefix=".pull-index-", dir=dest.absolute().parent) as tmp:
        images = [pull(r.at(d.digest), Path(tmp) / str(i), platform=p, insecure=insecure,
                       credentials=credentials)
                  for i, (d, p) in enumerate(zip(index.manifests, platforms, strict=True))]
        # the layout names each image as the index does (a build names them by the lock's tag)
        images = [replace(img, tag=(d.annotations or {}).get(REF_NAME, ""))
                  for img, d in zip(images, index.manifests, strict=True)]
        if sha256_digest(index_bytes(images)) != found.digest:
            raise InputError(f"the index at {r} is not one imagelock writes (its bytes differ "
                             "from the layout index of its manifests)",
                             hint="pull one platform with --platform")
        write_layout(images, dest)
    return found.digest, [read_layout(dest, platform=p) for p in platforms]
