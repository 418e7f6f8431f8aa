"""Pushing a multi-platform build as one image index: each platform's manifest by digest, then the
index at the tag, so a consumer pulling the tag gets the manifest for their machine.

The index pushed is the OCI layout's `index.json` (spec §10), byte for byte: its digest is the
same wherever the build lives.
"""

from __future__ import annotations

from imagelock.core.digest import sha256_digest
from imagelock.core.errors import InputError, IntegrityError
from imagelock.formats.oci import MT_INDEX
from imagelock.oci.image import Image
from imagelock.oci.layout import index_bytes
from imagelock.oci.reference import Reference
from imagelock.oci.registry.auth import Credentials
from imagelock.oci.registry.client import as_reference, client_for
from imagelock.oci.registry.transfer import push


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
