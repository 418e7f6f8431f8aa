"""Image sets: locking every image of a set, and building the images a selection names.

Locking a set (`lock_set`) takes its images parents first. Each is resolved as the image spec
`lock.sets.image_spec` derives, with its parent's finished lock (whose wheels it keeps, and on
whose image its own is built to record its digests) and with the Debian pins of the images
already locked as the pins to keep: the set resolves each package once, so every image that has
libssl3 has the same version (checked at the end, naming any package that differs). Building
(`build_set`) runs the selected images and their parents on all cores; a parent is built once
however many children build on it (`build.image.BuildCache`).

Like `api.resolve`, this calls the lock stage, then the Debian maintainer-script effects, then
the build: the lock stage never reaches forward.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from imagelock import __version__
from imagelock.build.base_image import base_layer_names
from imagelock.build.expected import emulation_used, expected_of
from imagelock.build.image import BuildCache, build_cached, default_jobs
from imagelock.core import progress
from imagelock.core.errors import InputError
from imagelock.core.names import LOCK_FILENAME
from imagelock.core.scratch import scratch_dir
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianPackagePin, DebianPlatformLock
from imagelock.formats.files import (
    is_set_lock,
    load_set_spec,
    lock_bytes,
    read_lock,
    read_set_lock,
    set_lock_bytes,
)
from imagelock.formats.lock import ExpectedImage, Lock, ParentPin, ToolInfo
from imagelock.formats.results import BuildResult, BuildVerdict
from imagelock.formats.sets import SetLock, SetLockImage
from imagelock.inputs.python.source_build import source_builder
from imagelock.inputs.fetching import fetch_lock, fetch_pins
from imagelock.lock.context import context_dir
from imagelock.lock.make import resolve_lock
from imagelock.lock.sets import image_digests, image_lock_name, image_spec, order, set_digest
from imagelock.lock.staleness import check_fresh, lock_context_path
from imagelock.oci.layout import write_layout

#: Longest --select pattern accepted (it is matched against a few short names).
MAX_SELECT = 256


@dataclass
class SetLocked:
    """A set locked: the index, each image's lock and its bytes, and notes."""

    index: SetLock
    locks: dict[str, Lock]
    files: dict[str, bytes] = field(default_factory=dict)  # file name -> bytes
    notes: list[str] = field(default_factory=list)


def lock_set(spec_path: Path, *, store: Store, cli_mirrors: Mapping[str, list[str]],
             offline: bool = False, upgrade: Sequence[str] = (), upgrade_all: bool = False,
             upgrade_security: bool = False) -> SetLocked:
    """Every image of the set at `spec_path` locked, parents first (nothing written)."""
    spec = load_set_spec(spec_path)
    lock_dir = spec_path.parent
    context = context_dir(image_spec(spec, order(spec)[0]), spec_path)
    notes: list[str] = []
    locks: dict[str, Lock] = {}
    used: set[str] = set()
    with scratch_dir("imagelock-lock-set-") as tmp:
        cache = BuildCache(tmp, default_jobs())
        for name in order(spec):
            previous = None if upgrade_all else _previous(lock_dir / image_lock_name(name), notes)
            derived = image_spec(spec, name)
            parent_name = spec.images[name].parent
            parent = locks.get(parent_name) if parent_name is not None else None
            base = None
            if parent_name is not None and parent is None:  # a base outside the set
                # lazy: the registry client loads only for a set built on an outside base
                from imagelock.oci.registry.base_image import pin_base

                progress.working(f"pinning the base image {parent_name}")
                base = pin_base(parent_name, derived.image.platforms, store)
            keep = _set_pins(locks.values(), previous)
            progress.working(f"resolving the image {name} of the set")
            resolved = resolve_lock(
                spec_path, store=store, cli_mirrors=cli_mirrors, offline=offline,
                lock_dir=lock_dir, previous=keep, upgrade=_pinned(previous, upgrade, used),
                upgrade_security=upgrade_security, notes=notes, spec=derived, parent=parent,
                source_builder=source_builder(store))
            digest, sections = image_digests(spec, name)
            below = parent.layers if parent is not None else (
                base_layer_names(base) if base is not None else [])
            layers = [*below, *resolved.layers]
            if len(set(layers)) != len(layers):
                raise InputError(f"images.{name}: a layer name is also one of its parents' "
                                 "(image names prefix layer names: rename one)", field="images")
            resolved = resolved.model_copy(update={
                "spec_digest": digest, "spec_sections": sections, "set_image": name,
                "layers": layers,
                "parent": ParentPin(image=parent_name, lock=parent, base=base)
                if parent_name is not None else None})
            fetch_pins(resolved, spec.sources, store, cli_mirrors=cli_mirrors, offline=offline)
            if derived.contents.debian is not None:
                # lazy: running maintainer scripts loads .deb extraction and the sandbox
                from imagelock.inputs.debian.effects import review_lines
                from imagelock.inputs.debian.scripts import derive_effects

                resolved = derive_effects(resolved, derived.contents.debian.scripts, store,
                                          previous)
                for platform, pins in resolved.debian.items():
                    notes.extend(f"{name}: {n}" for n in review_lines(pins.scripts, platform))
            built = build_cached(resolved, context=context, store=store, cache=cache, notes=notes)
            expected = {p: e.model_copy(update={"emulation": emulation_used(resolved, p)})
                        for p, e in expected_of(built.images).items()}
            locks[name] = resolved.model_copy(update={"expected": expected})
    _check_one_version(locks)
    unknown = sorted(set(upgrade) - used)
    if unknown:
        raise InputError(f"--upgrade names packages no image of the set pins: {', '.join(unknown)}",
                         field="--upgrade", hint="name Debian packages or wheels of the locks")
    index = SetLock(
        lock_version=1, kind="set", tool=ToolInfo(name="imagelock", version=__version__),
        spec=spec_path.name, spec_digest=set_digest(spec),
        images={n: SetLockImage(lock=image_lock_name(n), parent=spec.images[n].parent,
                                image=f"{lk.image.name}:{lk.image.tag}", expected=lk.expected)
                for n, lk in locks.items()})
    files = {image_lock_name(n): lock_bytes(lk) for n, lk in locks.items()}
    files[LOCK_FILENAME] = set_lock_bytes(index)
    return SetLocked(index, locks, files, notes)


def _pinned(previous: Lock | None, upgrade: Sequence[str], used: set[str]) -> list[str]:
    """The names of `upgrade` this image's previous lock pins (Debian packages or wheels);
    each is added to `used`."""
    if previous is None or not upgrade:
        return []
    names = {p.name for pl in previous.debian.values() for p in pl.packages}
    names |= {w.name for pins in previous.python.values() for w in pins}
    mine = [n for n in upgrade if n in names or canonicalize_name(n) in names]
    used.update(mine)
    return mine


def _previous(path: Path, notes: list[str]) -> Lock | None:
    if not path.is_file():
        return None
    try:
        return read_lock(path)
    except InputError as e:
        notes.append(f"existing lock {path.name} not readable, resolving afresh: {e.message}")
        return None


def _set_pins(locked: Iterable[Lock], previous: Lock | None) -> Lock | None:
    """A lock whose Debian pins are the ones to keep: the image's previous ones, overridden by
    those of the images of the set already locked (one version of a package in the set)."""
    done = list(locked)
    base = previous or (done[0] if done else None)
    if base is None:
        return None
    merged: dict[str, dict[str, DebianPackagePin]] = {}
    tools: dict[str, dict[str, DebianPackagePin]] = {}
    for lk in [*([previous] if previous is not None else []), *done]:
        for platform, pl in lk.debian.items():
            merged.setdefault(platform, {}).update({p.name: p for p in pl.packages})
            tools.setdefault(platform, {}).update({p.name: p for p in pl.script_tools})
    debian = {p: DebianPlatformLock(indexes=[], packages=sorted(pins.values(), key=lambda x: x.name),
                                    script_tools=sorted(tools[p].values(), key=lambda x: x.name))
              for p, pins in merged.items()}
    # wheels: only the image's own previous pins are kept (its parent's come as requirements)
    return base.model_copy(update={"debian": debian,
                                   "python": previous.python if previous is not None else {}})


def _check_one_version(locks: Mapping[str, Lock]) -> None:
    """Refuse a set in which two images pin different versions of one Debian package."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for name, lk in locks.items():
        for platform, pl in lk.debian.items():
            for p in pl.packages:
                first = seen.setdefault((platform, p.name), (name, p.version))
                if first[1] != p.version:
                    raise InputError(
                        f"Debian package {p.name} resolves to {first[1]} in the image "
                        f"{first[0]} and to {p.version} in {name} ({platform})",
                        field=f"images.{name}.contents.debian",
                        hint="pin one version for the whole set (`name=version` in the parent's "
                        "packages)")


def select(index: SetLock, pattern: str | None) -> list[str]:
    """The images whose name matches `pattern` (re.search; every image when None), with their
    parents, parents first."""
    if pattern is None:
        return list(index.images)
    if len(pattern) > MAX_SELECT:
        raise InputError(f"--select is longer than {MAX_SELECT} characters", field="--select")
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise InputError(f"--select {pattern!r} is not a regular expression: {e}",
                         field="--select") from None
    wanted: set[str] = set()
    for name in index.images:
        if rx.search(name):
            cur: str | None = name
            while cur is not None and cur in index.images:
                wanted.add(cur)
                cur = index.images[cur].parent
    if not wanted:
        raise InputError(f"--select {pattern!r} matches no image of the set",
                         field="--select", hint="the set's images: " + ", ".join(index.images))
    return [n for n in index.images if n in wanted]


def build_set(index_path: Path, *, output: Path, store: Store,
              cli_mirrors: Mapping[str, list[str]] | None, offline: bool,
              pattern: str | None = None, jobs: int | None = None) -> BuildResult:
    """Build the selected images of the set whose index is at `index_path` (and their parents)
    into `output/NAME`, one OCI layout each; siblings build at the same time."""
    index = read_set_lock(index_path)
    names = select(index, pattern)
    locks: dict[str, tuple[Lock, Path]] = {}
    notes: list[str] = []
    for name in names:
        path = index_path.parent / index.images[name].lock
        lk = read_lock(path)
        if lk.set_image != name:
            raise InputError(f"{path.name} is not the lock of the image {name}", path=path,
                             field="set_image", hint="lock the set again")
        if check_fresh(lk, path) is None:
            notes.append(f"{name}: spec {lk.spec} not found beside the lock: staleness not checked")
        fetch_lock(lk, path, store, cli_mirrors=cli_mirrors or {}, offline=offline)
        locks[name] = (lk, path)
    jobs = jobs or default_jobs()
    results: dict[str, BuildResult] = {}
    with scratch_dir("imagelock-build-set-") as tmp:
        cache = BuildCache(tmp, jobs)

        def one(name: str) -> BuildResult:
            lk, path = locks[name]
            mine: list[str] = []
            built = build_cached(lk, context=lock_context_path(lk, path), store=store,
                                 cache=cache, notes=mine)
            dest = output / name
            write_layout(built.images, dest)
            got = expected_of(built.images)
            return BuildResult(image=f"{lk.image.name}:{lk.image.tag}", output=str(dest),
                               format="oci", verdict=_verdict(lk, got), platforms=got,
                               notes=sorted(set(mine)))

        output.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(names))),
                                thread_name_prefix="image") as pool:
            for name, res in zip(names, pool.map(one, names), strict=True):
                results[name] = res
    verdicts = [r.verdict for r in results.values()]
    verdict: BuildVerdict = ("mismatch" if "mismatch" in verdicts else "reproduced-content"
                             if "reproduced-content" in verdicts else "reproduced")
    return BuildResult(image=", ".join(f"{n} ({r.image})" for n, r in results.items()),
                       output=str(output), format="oci", verdict=verdict, platforms={},
                       notes=notes, images=results)


def _verdict(lock: Lock, got: Mapping[str, ExpectedImage]) -> BuildVerdict:
    verdict: BuildVerdict = "reproduced"
    for plat, exp in lock.expected.items():
        g = got.get(plat)
        if g is None or g.config_digest != exp.config_digest:
            return "mismatch"
        if g.manifest_digest != exp.manifest_digest:
            verdict = "reproduced-content"
    return verdict


def is_set(path: Path) -> bool:
    """Whether `path` is a set's index (an image lock otherwise)."""
    return path.is_file() and is_set_lock(path)

