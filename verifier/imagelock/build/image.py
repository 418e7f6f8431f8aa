"""The build: a lock (plus the store and the context) in, one image per platform out.

This is the whole orchestration: every input kind places its pins into one tree (and build
steps make their layers from it), then canonical layers, config, manifest. Every timestamp is
the lock's source_date_epoch; nothing of the host (time, user, umask, locale, hostname, paths)
can reach the bytes. Layers no kind makes platform-specific (files, downloads, paths) are
written once and shared by every platform.
"""

from __future__ import annotations

from pathlib import Path

from imagelock.build.config import config_bytes, manifest_bytes
from imagelock.build.layer import LayerBlob, write_layer
from imagelock.build.tree import Tree
from imagelock.core import progress
from imagelock.core.digest import sha256_digest
from imagelock.fetch.store import Store
from imagelock.formats.lock import Lock
from imagelock.formats.oci import MT_LAYER_GZIP
from imagelock.inputs.kind import BuildInputs
from imagelock.inputs.registry import KINDS
from imagelock.oci.image import Blob, Image


@progress.phase("layers")
def build_images(
    lock: Lock,
    *,
    context: Path,
    store: Store,
    workdir: Path,
    keep_tars: bool = False,
    notes: list[str] | None = None,
    platforms: list[str] | None = None,
) -> list[Image]:
    """Build every platform of `lock` (or only `platforms`, e.g. the one a docker-archive holds)
    into `workdir` (blobs stay there; oci/ writes them out). An image does not depend on which
    other platforms are built with it.

    `notes` collects what the user should know (e.g. bytecode not compiled)."""
    notes = notes if notes is not None else []
    chosen = lock.platforms if platforms is None else platforms
    shared: dict[str, tuple[LayerBlob, Path | None]] = {}
    platform_specific = {name for kind in KINDS for name in kind.platform_layers(lock)}
    progress.planned(len(lock.layers) + (len(chosen) - 1) * len(
        [n for n in lock.layers if n in platform_specific]), unit="layers")
    images = []
    across: dict[str, dict[str, object]] = {kind.name: {} for kind in KINDS}
    for p, platform in enumerate(chosen):
        tree = Tree(lock.layers)
        inputs = {kind.name: BuildInputs(context, store, workdir / f"staging-{p}" / kind.name, notes,
                                         across[kind.name])
                  for kind in KINDS}
        for kind in KINDS:
            progress.working(f"placing the {kind.name} inputs for {platform}")
            for entry, layer, origin in kind.place(lock, platform, inputs[kind.name]):
                tree.add(entry, layer, origin)
        per_layer = tree.layer_entries()
        for kind in KINDS:
            per_layer.update(kind.make_layers(lock, platform, per_layer, inputs[kind.name]))

        blobs: list[Blob] = []
        tars: list[Path] = []
        diff_ids: list[str] = []
        for i, name in enumerate(lock.layers):
            if name in shared and name not in platform_specific:
                lb, tar_path = shared[name]
            else:
                tar_path = workdir / f"layer-{p}-{i}.tar" if keep_tars else None
                progress.working(f"writing layer {name} ({platform})")
                lb = write_layer(per_layer[name], mtime=lock.source_date_epoch,
                                 blob_path=workdir / f"layer-{p}-{i}.tar.gz", tar_path=tar_path)
                shared[name] = (lb, tar_path)
                progress.item(f"layer {name} ({platform})", "written", lb.tar_size)
            blobs.append(Blob(lb.digest, lb.size, MT_LAYER_GZIP, path=lb.blob_path))
            diff_ids.append(lb.diff_id)
            if tar_path is not None:
                tars.append(tar_path)

        config = config_bytes(lock.config, platform=platform, diff_ids=diff_ids,
                              layer_names=lock.layers, epoch=lock.source_date_epoch)
        manifest = manifest_bytes(sha256_digest(config), len(config),
                                  [(b.digest, b.size) for b in blobs])
        images.append(Image(manifest=manifest, config=config, layers=blobs, name=lock.image.name,
                            tag=lock.image.tag, platform=platform, layer_tars=tars))
    return images
