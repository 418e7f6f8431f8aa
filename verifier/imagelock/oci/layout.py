"""The OCI image layout (a directory: oci-layout, index.json, blobs/sha256/*): writing and
reading.

Writing is deterministic: the same image gives the same files (index.json as canonical JSON, with
the platform and the `org.opencontainers.image.ref.name` annotation). Reading checks every
document and blob digest and refuses anything that does not add up.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from imagelock.core.atomic import atomic_dir
from imagelock.core.digest import canonical_json
from imagelock.formats.oci import MT_INDEX, MT_MANIFEST, REF_NAME
from imagelock.oci.image import Image

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def index_bytes(images: list[Image]) -> bytes:
    manifests = []
    for img in images:
        # A pulled Docker v2 manifest stays one: converting it would change its digest.
        media_type = json.loads(img.manifest).get("mediaType") or MT_MANIFEST
        os_, arch, *variant = img.platform.split("/")
        platform: dict[str, str] = {"architecture": arch, "os": os_}
        if variant:
            platform["variant"] = variant[0]
        manifests.append(
            {
                "mediaType": media_type,
                "digest": img.manifest_digest,
                "size": len(img.manifest),
                "platform": platform,
                "annotations": {REF_NAME: img.tag},
            }
        )
    return canonical_json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests})


def _put(blobs: Path, digest: str, data: bytes | None = None, src: Path | None = None) -> None:
    path = blobs / digest.split(":", 1)[1]
    if path.exists():
        return
    if data is not None:
        path.write_bytes(data)
    else:
        assert src is not None
        try:
            # Same file system: no copy of large blobs. A linked file keeps its own mode: a
            # chmod here would change the source (layer blobs we write are 0644 already).
            os.link(src, path)
            return
        except OSError:
            shutil.copyfile(src, path)
    os.chmod(path, 0o644)


def write_layout(images: list[Image], dest: Path) -> None:
    """Write `images` (one per platform) as an OCI layout at `dest`, atomically."""
    with atomic_dir(dest, replaceable="oci-layout") as tmp:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        for img in images:
            for layer in img.layers:
                assert layer.path is not None
                _put(blobs, layer.digest, src=layer.path)
            _put(blobs, img.config_digest, img.config)
            _put(blobs, img.manifest_digest, img.manifest)
        (tmp / "oci-layout").write_bytes(OCI_LAYOUT)
        (tmp / "index.json").write_bytes(index_bytes(images))
        for p in (tmp / "oci-layout", tmp / "index.json"):
            os.chmod(p, 0o644)
        for d in (tmp / "blobs", blobs):
            os.chmod(d, 0o755)
