"""The `build` command's job: lock -> fetched inputs -> image -> output, compared with the lock."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from imagelock.build.expected import expected_of
from imagelock.core.errors import InputError
from imagelock.build.image import build_images
from imagelock.core.scratch import scratch_dir
from imagelock.build.toolchain import differences, notes_for
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock
from imagelock.formats.results import BuildResult, BuildVerdict
from imagelock.inputs.fetching import fetch_lock
from imagelock.lock.staleness import check_fresh, lock_context_path
from imagelock.oci.docker_archive import write_docker_archive
from imagelock.oci.layout import write_layout


def build_lock(
    lock_path: Path,
    *,
    output: Path,
    fmt: Literal["oci", "docker-archive"],
    store: Store,
    cli_mirrors: Mapping[str, list[str]] | None = None,
    offline: bool,
    platform: str | None = None,
) -> BuildResult:
    """Build every platform of the lock at `lock_path` into `output` (a docker-archive holds
    `platform`, default the first, and only it is built), fetching what the store lacks (unless
    `offline`), and say whether its digests are the lock's."""
    lock = read_lock(lock_path)
    if platform is not None and platform not in lock.platforms:
        raise InputError(f"--platform {platform}: the lock has no such platform",
                         field="--platform", hint="the lock's platforms: " + ", ".join(lock.platforms))
    notes = []
    if check_fresh(lock, lock_path) is None:
        notes.append(f"spec {lock.spec} not found beside the lock: staleness not checked")
    fetch_lock(lock, lock_path, store, cli_mirrors=cli_mirrors or {}, offline=offline)
    toolchain = differences(lock)
    notes += notes_for(toolchain, None)
    context = lock_context_path(lock, lock_path)  # never a symlink out of the lock's directory
    # A killed build's directory is removed by the next one (core/scratch.py).
    with scratch_dir("imagelock-build-") as tmp:
        # A docker-archive holds one platform: only that one is built.
        images = build_images(lock, context=context, store=store, workdir=tmp,
                              keep_tars=fmt == "docker-archive", notes=notes,
                              platforms=None if fmt == "oci" else [platform or lock.platforms[0]])
        if fmt == "oci":
            write_layout(images, output)
        else:
            chosen = images[0]
            write_docker_archive(chosen, output, mtime=lock.source_date_epoch)
            if len(lock.platforms) > 1:
                notes.append("a docker-archive holds one platform: wrote " + chosen.platform)
        got = expected_of(images)
    verdict: BuildVerdict = "reproduced"
    for plat in (lock.platforms if fmt == "oci" else list(got)):
        g, exp = got.get(plat), lock.expected.get(plat)
        if g is None or exp is None or g.config_digest != exp.config_digest:
            verdict = "mismatch"
        elif g.manifest_digest != exp.manifest_digest and verdict == "reproduced":
            verdict = "reproduced-content"
    notes += [n for n in notes_for(toolchain, verdict) if n not in notes]
    return BuildResult(image=f"{lock.image.name}:{lock.image.tag}", output=str(output), format=fmt,
                       verdict=verdict, platforms=got, notes=notes)
