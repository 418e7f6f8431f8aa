"""The build: a lock (plus the store and the context) in, one image per platform out.

This is the whole orchestration: pins -> entries -> tree -> canonical layers -> config ->
manifest. Every timestamp is the lock's source_date_epoch; nothing of the host (time, user,
umask, locale, hostname, paths) can reach the bytes. Layers without platform-specific content
(files, downloads, paths) are written once and shared by every platform.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

from imagelock.build.config import config_bytes, manifest_bytes
from imagelock.build.layer import LayerBlob, write_layer
from imagelock.build.tree import Tree
from imagelock.core.digest import sha256_digest
from imagelock.core.errors import InputError
from imagelock.fetch.store import Store
from imagelock.formats.lock import Lock
from imagelock.formats.oci import MT_LAYER_GZIP
from imagelock.inputs.debian.accounts import Group, User
from imagelock.inputs.debian.root import debian_entries
from imagelock.inputs.files import Placement, context_entries, download_entries, path_entries
from imagelock.inputs.python.wheels import wheel_entries
from imagelock.inputs.steps.run import run_steps
from imagelock.oci.image import Blob, Image
from imagelock.tar.entry import Entry


def _debian_placements(lock: Lock, platform: str, store: Store, staging: Path) -> Iterator[Placement]:
    pins = lock.debian.get(platform)
    if pins is None or lock.debian_layout is None:
        return
    layout = lock.debian_layout
    root = debian_entries(
        pins.packages, store, staging, source_date_epoch=lock.source_date_epoch,
        users=[User(u.name, u.uid, u.gid, u.home, u.shell) for u in lock.accounts.users],
        groups=[Group(g.name, g.gid, tuple(g.members)) for g in lock.accounts.groups],
    )
    layer_of = {name: g.layer for g in layout.groups for name in g.packages}
    for name, entries in root.packages.items():
        for e in entries:
            yield e, layer_of.get(name, layout.layer), f"contents.debian ({name})"
    for e in root.system:
        yield e, layout.layer, "contents.debian (generated)"


def _wheel_placements(lock: Lock, platform: str, store: Store, staging: Path,
                      notes: list[str]) -> Iterator[Placement]:
    inst = lock.python_install
    pins = lock.python.get(platform)
    if inst is None or pins is None:
        return
    entries, notices = wheel_entries(
        pins, store, staging, site_packages=inst.site_packages, scripts_dir=inst.scripts_dir,
        interpreter=inst.interpreter, python_version=inst.python_version, compile=inst.compile,
        prefix=inst.prefix)
    notes.extend(n for n in notices if n not in notes)
    for e in entries:
        yield e, inst.layer, "contents.python"


def _platform_layers(lock: Lock) -> set[str]:
    """Layers whose content depends on the platform (packages and wheels are per architecture)."""
    out = set()
    if lock.debian_layout is not None:
        out |= {lock.debian_layout.layer, *(g.layer for g in lock.debian_layout.groups)}
    if lock.python_install is not None:
        out.add(lock.python_install.layer)
    out |= {st.layer or st.name for st in lock.steps}
    return out


_HOST_PLATFORM = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}


def _steps(lock: Lock, platform: str, per_layer: dict[str, list[Entry]], workdir: Path) -> None:
    """Run the lock's build steps on the assembled layers; add one layer per step."""
    if not lock.steps:
        return
    host = _HOST_PLATFORM.get(os.uname().machine)
    if platform != host:
        raise InputError(f"build steps run the image's own programs, which this {host} machine "
                         f"cannot do for {platform}", field="steps",
                         hint="build steps' images on a machine of the target platform")
    step_layers = {st.layer or st.name for st in lock.steps}
    below = [per_layer[n] for n in lock.layers if n not in step_layers]
    per_layer.update(run_steps(lock.steps, below, workdir, source_date_epoch=lock.source_date_epoch))


def build_images(
    lock: Lock,
    *,
    context: Path,
    store: Store,
    workdir: Path,
    keep_tars: bool = False,
    notes: list[str] | None = None,
) -> list[Image]:
    """Build every platform of `lock` into `workdir` (blobs stay there; oci/ writes them out).

    `notes` collects what the user should know (e.g. bytecode not compiled)."""
    notes = notes if notes is not None else []
    shared: dict[str, tuple[LayerBlob, Path | None]] = {}
    platform_specific = _platform_layers(lock)
    images = []
    for p, platform in enumerate(lock.platforms):
        tree = Tree(lock.layers)
        staging = workdir / f"staging-{p}"
        for entry, layer, origin in chain(
            _debian_placements(lock, platform, store, staging / "debian"),
            _wheel_placements(lock, platform, store, staging / "wheels", notes),
            context_entries(lock.files, context),
            download_entries(lock.downloads, store, staging / "downloads"),
            path_entries(lock.paths),
        ):
            tree.add(entry, layer, origin)
        per_layer = tree.layer_entries()
        _steps(lock, platform, per_layer, workdir / f"steps-{p}")

        blobs: list[Blob] = []
        tars: list[Path] = []
        diff_ids: list[str] = []
        for i, name in enumerate(lock.layers):
            if name in shared and name not in platform_specific:
                lb, tar_path = shared[name]
            else:
                tar_path = workdir / f"layer-{p}-{i}.tar" if keep_tars else None
                lb = write_layer(per_layer[name], mtime=lock.source_date_epoch,
                                 blob_path=workdir / f"layer-{p}-{i}.tar.gz", tar_path=tar_path)
                shared[name] = (lb, tar_path)
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
