"""The build: a lock (plus the store and the context) in, one image per platform out.

This is the whole orchestration: every input kind places its pins into one tree (and build
steps make their layers from it), then canonical layers, config, manifest. Every timestamp is
the lock's source_date_epoch; nothing of the host (time, user, umask, locale, hostname, paths)
can reach the bytes. Layers no kind makes platform-specific (files, downloads, paths) are
written once and shared by every platform.

An image of a set (`lock.parent`) is built on its parent: the parent is built first (once per
run, however many children ask: `BuildCache`), its blobs are the bottom of the child's image byte
for byte, and its entries are the tree the child's own programs (build steps, bytecode) run on.

Layers are written on all cores (`jobs`): each layer is a pure function of its entries, written
to its own file, so the bytes are those of a serial build whatever the order threads finish in.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from imagelock.build.base_image import base_built, base_layer_names
from imagelock.build.config import config_bytes, manifest_bytes
from imagelock.build.layer import LayerBlob, write_layer
from imagelock.build.lower import ContentDigests, drop_unchanged, merged_view
from imagelock.build.tree import Tree
from imagelock.core import progress
from imagelock.core.digest import sha256_digest
from imagelock.core.errors import InputError
from imagelock.fetch.store import Store
from imagelock.formats.files import lock_bytes
from imagelock.formats.lock import Lock
from imagelock.formats.oci import MT_LAYER_GZIP
from imagelock.inputs.kind import BuildInputs
from imagelock.inputs.registry import KINDS
from imagelock.oci.image import Blob, Image
from imagelock.tar.entry import Entry

#: Environment variable bounding the threads that write layers (default: the machine's cores).
JOBS_ENV = "IMAGELOCK_JOBS"


def default_jobs() -> int:
    """Threads for layers and images: IMAGELOCK_JOBS, else every core."""
    raw = os.environ.get(JOBS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= 256:
            raise InputError(f"{JOBS_ENV}={raw[:12]!r} is not a number of threads from 1 to 256",
                             field=JOBS_ENV)
        return int(raw)
    return max(1, os.cpu_count() or 1)


@dataclass
class Built:
    """One lock built: its images (one per platform) and, per platform, every layer's entries
    (the parent's included), for a child built on it."""

    images: list[Image]
    entries: dict[str, dict[str, list[Entry]]]


@dataclass
class BuildCache:
    """The images of a set built in this run, by their lock's digest: a parent several children
    build on is built once, and a thread that asks while another builds it waits for it."""

    workdir: Path
    jobs: int = 1
    keep_tars: bool = False
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _built: dict[str, Future[Built]] = field(default_factory=dict)

    def get(self, key: str, make: Callable[[], Built]) -> Built:
        with self._guard:
            fut = self._built.get(key)
            owner = fut is None
            if fut is None:
                fut = self._built[key] = Future()
        if owner:
            try:
                fut.set_result(make())
            except BaseException as e:
                fut.set_exception(e)
                raise
        return fut.result()


def lock_key(lock: Lock) -> str:
    """What identifies a lock's build: its exact bytes."""
    return sha256_digest(lock_bytes(lock))


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
    jobs: int | None = None,
    cache: BuildCache | None = None,
) -> list[Image]:
    """Build every platform of `lock` (or only `platforms`, e.g. the one a docker-archive holds)
    into `workdir` (blobs stay there; oci/ writes them out). An image does not depend on which
    other platforms are built with it.

    `notes` collects what the user should know (e.g. bytecode not compiled). An image of a set
    builds its parents first, into `workdir` too (or takes them from `cache`)."""
    cache = cache or BuildCache(workdir, jobs or default_jobs(), keep_tars)
    chosen = lock.platforms if platforms is None else platforms
    return build_cached(lock, context=context, store=store, cache=cache,
                        notes=notes if notes is not None else [], platforms=chosen).images


def build_cached(lock: Lock, *, context: Path, store: Store, cache: BuildCache,
                 notes: list[str], platforms: list[str] | None = None) -> Built:
    """`lock` built once per `cache` (its parents too), in `cache.workdir`, for `platforms`
    (default: all of the lock's)."""
    chosen = lock.platforms if platforms is None else platforms
    return cache.get(f"{lock_key(lock)} {','.join(chosen)}",
                     lambda: _build(lock, context, store, cache, notes, chosen))


def _build(lock: Lock, context: Path, store: Store, cache: BuildCache, notes: list[str],
           chosen: list[str]) -> Built:
    workdir = cache.workdir if lock.set_image is None else cache.workdir / "set" / lock.set_image
    workdir.mkdir(parents=True, exist_ok=True)
    lower: Built | None = None
    own_layers = list(lock.layers)
    if lock.parent is not None and lock.parent.base is not None:
        base = lock.parent.base
        lower = cache.get(f"{sha256_digest(base.model_dump_json().encode())} {','.join(chosen)}",
                          lambda: Built(*base_built(base, store, cache.workdir / "base", chosen)))
        below = base_layer_names(base)
        if own_layers[:len(below)] != below:
            raise InputError(f"the lock's layers do not start with its base {base.ref}'s layers",
                             field="layers", hint="lock the set again")
        own_layers = own_layers[len(below):]
    elif lock.parent is not None and lock.parent.lock is not None:
        lower = build_cached(lock.parent.lock, context=context, store=store, cache=cache,
                             notes=notes, platforms=chosen)
        below = lock.parent.lock.layers
        if own_layers[:len(below)] != below:
            raise InputError(f"the lock's layers do not start with its parent "
                             f"{lock.parent.image}'s layers", field="layers",
                             hint="lock the set again")
        own_layers = own_layers[len(below):]
    shared: dict[str, tuple[LayerBlob, Path | None]] = {}
    platform_specific = {name for kind in KINDS for name in kind.platform_layers(lock)}
    progress.planned(len(own_layers) + (len(chosen) - 1) * len(
        [n for n in own_layers if n in platform_specific]), unit="layers")
    images = []
    entries: dict[str, dict[str, list[Entry]]] = {}
    digests = ContentDigests()
    across: dict[str, dict[str, object]] = {kind.name: {} for kind in KINDS}
    with ThreadPoolExecutor(max_workers=cache.jobs, thread_name_prefix="layer") as pool:
        for p, platform in enumerate(chosen):
            parent_image: Image | None = None
            below_entries: dict[str, list[Entry]] = {}
            view: dict[str, Entry] = {}
            if lower is not None:
                parent_image = next((i for i in lower.images if i.platform == platform), None)
                if parent_image is None:
                    raise InputError(f"the parent image has no {platform}", field="platforms")
                below_entries = lower.entries[platform]
                view = merged_view(below_entries, list(below_entries))
            tree = Tree(own_layers, lower=view)
            inputs = {kind.name: BuildInputs(context, store, workdir / f"staging-{p}" / kind.name,
                                             notes, across[kind.name]) for kind in KINDS}
            for kind in KINDS:
                progress.working(f"placing the {kind.name} inputs for {platform}")
                for entry, layer, origin in kind.place(lock, platform, inputs[kind.name]):
                    tree.add(entry, layer, origin)
            per_layer = {**below_entries, **tree.layer_entries()}
            for kind in KINDS:
                per_layer.update(kind.make_layers(lock, platform, per_layer, inputs[kind.name]))
            if lower is not None:
                for name in own_layers:
                    per_layer[name] = drop_unchanged(per_layer[name], view, digests)
            entries[platform] = per_layer

            writing: dict[str, Future[LayerBlob]] = {}
            tar_paths: dict[str, Path | None] = {}
            for i, name in enumerate(own_layers):
                if name in shared and name not in platform_specific:
                    continue
                tar_paths[name] = workdir / f"layer-{p}-{i}.tar" if cache.keep_tars else None
                writing[name] = pool.submit(
                    write_layer, per_layer[name], mtime=lock.source_date_epoch,
                    blob_path=workdir / f"layer-{p}-{i}.tar.gz", tar_path=tar_paths[name])
            progress.working(f"writing {len(writing)} layers ({platform})")
            for name, fut in writing.items():
                lb = fut.result()
                shared[name] = (lb, tar_paths[name])
                progress.item(f"layer {name} ({platform})", "written", lb.tar_size)

            blobs: list[Blob] = list(parent_image.layers) if parent_image is not None else []
            tars: list[Path] = list(parent_image.layer_tars) if parent_image is not None else []
            diff_ids: list[str] = _diff_ids(parent_image) if parent_image is not None else []
            for name in own_layers:
                lb, tar_path = shared[name]
                blobs.append(Blob(lb.digest, lb.size, MT_LAYER_GZIP, path=lb.blob_path))
                diff_ids.append(lb.diff_id)
                if tar_path is not None:
                    tars.append(tar_path)

            config = config_bytes(lock.config, platform=platform, diff_ids=diff_ids,
                                  layer_names=lock.layers, epoch=lock.source_date_epoch)
            manifest = manifest_bytes(sha256_digest(config), len(config),
                                      [(b.digest, b.size) for b in blobs])
            images.append(Image(manifest=manifest, config=config, layers=blobs,
                                name=lock.image.name, tag=lock.image.tag, platform=platform,
                                layer_tars=tars))
    return Built(images, entries)


def _diff_ids(image: Image) -> list[str]:
    return list(json.loads(image.config)["rootfs"]["diff_ids"])
