"""The build: a lock (plus the store and the context) in, one image per platform out.

This is the whole orchestration: pins -> entries -> tree -> canonical layers -> config ->
manifest. Every timestamp is the lock's source_date_epoch; nothing of the host (time, user,
umask, locale, hostname, paths) can reach the bytes.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path

from ..digest import sha256_digest
from ..formats.lock import Lock
from ..formats.oci import MT_LAYER_GZIP
from ..oci.image import Blob, Image
from ..store import Store
from .config import config_bytes, manifest_bytes
from .inputs import context_entries, download_entries, path_entries
from .layer import write_layer
from .tree import Tree


def build_images(
    lock: Lock,
    *,
    context: Path,
    store: Store,
    workdir: Path,
    keep_tars: bool = False,
) -> list[Image]:
    """Build every platform of `lock` into `workdir` (blobs stay there; oci/ writes them out)."""
    tree = Tree(lock.layers)
    staging = workdir / "staging"
    for entry, layer, origin in chain(
        context_entries(lock.files, context),
        download_entries(lock.downloads, store, staging),
        path_entries(lock.paths),
    ):
        tree.add(entry, layer, origin)
    per_layer = tree.layer_entries()

    blobs: list[Blob] = []
    tars: list[Path] = []
    diff_ids: list[str] = []
    for i, name in enumerate(lock.layers):
        tar_path = workdir / f"layer-{i}.tar" if keep_tars else None
        lb = write_layer(
            per_layer[name],
            mtime=lock.source_date_epoch,
            blob_path=workdir / f"layer-{i}.tar.gz",
            tar_path=tar_path,
        )
        blobs.append(Blob(lb.digest, lb.size, MT_LAYER_GZIP, path=lb.blob_path))
        diff_ids.append(lb.diff_id)
        if tar_path is not None:
            tars.append(tar_path)

    images = []
    for platform in lock.platforms:
        config = config_bytes(
            lock.config,
            platform=platform,
            diff_ids=diff_ids,
            layer_names=lock.layers,
            epoch=lock.source_date_epoch,
        )
        manifest = manifest_bytes(
            sha256_digest(config), len(config), [(b.digest, b.size) for b in blobs]
        )
        images.append(
            Image(
                manifest=manifest,
                config=config,
                layers=blobs,
                name=lock.image.name,
                tag=lock.image.tag,
                platform=platform,
                layer_tars=tars,
            )
        )
    return images
