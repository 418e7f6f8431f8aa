"""The recipe beside an image: the spec, the lock and every context file the lock pins, published
as one OCI artifact (spec/README.md §20), and turned back into a checkout a rebuild can use.

What a recipe holds is decided by its lock, never by the artifact: a rebuilder reads the lock (whose
sha256 the vendor's provenance names), works out which files the lock pins and where they go, and
takes exactly those from the artifact, each by its sha256. A file the lock pins that the artifact
lacks is an input that cannot be fetched (exit 3); a blob the lock does not account for is a
recipe that is not what it claims (exit 2). No path from the artifact is ever written.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path

from imagelock.core.errors import FetchError, InputError, UnsafeContentError
from imagelock.core.names import LOCK_FILENAME
from imagelock.fetch.store import Store
from imagelock.formats.files import load_spec, read_lock
from imagelock.formats.lock import Lock
from imagelock.formats.oci import Descriptor
from imagelock.formats.recipe import LOCK_SHA256, MT_CONTEXT_FILE, MT_LOCK, MT_SPEC, TITLE
from imagelock.lock.staleness import check_fresh
from imagelock.oci.referrer_sources import ArtifactManifest, Referrers
from imagelock.oci.registry.referrers import ArtifactBlob


@dataclass(frozen=True)
class RecipeFile:
    """One file of a recipe: its path relative to the lock's directory, media type and content."""

    title: str
    media_type: str
    sha256: str
    size: int


def _rel(*parts: str) -> str:
    path = posixpath.normpath(posixpath.join(*parts))
    if path.startswith(("/", "../")) or path == "..":
        raise UnsafeContentError(f"the lock places {path!r} outside its own directory",
                                 hint="a lock names nothing outside its directory")
    return path


def context_files(lock: Lock, requirements_file: str | None) -> list[RecipeFile]:
    """The context files a lock pins (and the requirements file whose sha256 it records)."""
    out = []
    for pin in lock.files:
        if pin.type == "file":
            assert pin.sha256 is not None and pin.size is not None
            out.append(RecipeFile(_rel(lock.context, pin.src), MT_CONTEXT_FILE, pin.sha256,
                                  pin.size))
    req = lock.python_install.requirements_file_sha256 if lock.python_install else None
    if req is not None:
        if requirements_file is None:
            raise InputError("the lock records a requirements file but the spec names none",
                             field="python_install.requirements_file_sha256",
                             hint="the spec and the lock disagree: re-lock")
        title = _rel(lock.context, requirements_file)
        if title not in {f.title for f in out}:
            out.append(RecipeFile(title, MT_CONTEXT_FILE, req, -1))
    return out


def requirements_file_of(spec_path: Path, image: str | None = None) -> str | None:
    spec = load_spec(spec_path, image)
    return spec.contents.python.requirements_file if spec.contents.python else None


def recipe_blobs(lock_path: Path) -> tuple[list[ArtifactBlob], dict[str, str]]:
    """The recipe of the lock at `lock_path` as artifact blobs (lock, spec, context files in lock
    order), and the artifact's annotations. The lock must be fresh: the spec beside it and every
    context file are checked first, so what is published is what the lock describes."""
    lock = read_lock(lock_path)
    if check_fresh(lock, lock_path, require_spec=True) is None:  # pragma: no cover - required
        raise InputError("the lock's spec is missing", path=lock_path)
    root = lock_path.parent
    spec_path = root / lock.spec
    lock_data = lock_path.read_bytes()
    spec_data = spec_path.read_bytes()
    lock_hex = hashlib.sha256(lock_data).hexdigest()
    blobs = [
        ArtifactBlob(MT_LOCK, "sha256:" + lock_hex, len(lock_data),
                     lambda: io.BytesIO(lock_data), {TITLE: LOCK_FILENAME}),
        ArtifactBlob(MT_SPEC, "sha256:" + hashlib.sha256(spec_data).hexdigest(), len(spec_data),
                     lambda: io.BytesIO(spec_data), {TITLE: _rel(lock.spec)}),
    ]
    for f in context_files(lock, requirements_file_of(spec_path, lock.set_image)):
        path = root / f.title
        data = path.read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got != f.sha256:
            raise InputError(f"context file {f.title} has sha256 {got}, not its pin {f.sha256}",
                             path=path, hint="the lock is stale: run `imagelock lock`")
        blobs.append(ArtifactBlob(f.media_type, "sha256:" + got, len(data),
                                  lambda p=path: open(p, "rb"), {TITLE: f.title}))  # type: ignore[misc]
    return blobs, {LOCK_SHA256: lock_hex}


def lock_of(art: ArtifactManifest, referrers: Referrers) -> tuple[Descriptor, bytes]:
    """The lock blob of a recipe artifact and its bytes (checked against its digest)."""
    locks = [d for d in art.layers if d.media_type == MT_LOCK]
    if len(locks) != 1:
        raise InputError(f"the recipe {art.digest} in {referrers.where} holds {len(locks)} locks, "
                         "not one", hint="a recipe holds exactly one lock: do not use this one")
    return locks[0], referrers.read_blob(locks[0], f"the lock of recipe {art.digest}")


def unpack_recipe(
    art: ArtifactManifest, referrers: Referrers, lock_data: bytes, store: Store, dest: Path
) -> Path:
    """Write the checkout the recipe describes into the empty directory `dest`; returns the
    lock's path there. `lock_data` is the recipe's lock, already bound to the provenance."""
    where = f"the recipe {art.digest} in {referrers.where}"
    lock_path = dest / LOCK_FILENAME
    lock_path.write_bytes(lock_data)
    lock = read_lock(lock_path)
    lock_desc = next(d for d in art.layers if d.media_type == MT_LOCK)
    used = {id(lock_desc)}

    def take(title: str, media_type: str, sha256: str | None) -> Descriptor:
        for d in art.layers:
            if id(d) in used or d.media_type != media_type:
                continue
            if (d.annotations or {}).get(TITLE) == title and (
                    sha256 is None or d.digest == "sha256:" + sha256):
                used.add(id(d))
                return d
        raise FetchError(f"{where} lacks {title}" + (f" (sha256 {sha256})" if sha256 else ""),
                         hint="the recipe is incomplete: ask the vendor to attach it again "
                         "(`imagelock attach REF --recipe LOCK`)")

    spec_desc = take(_rel(lock.spec), MT_SPEC, None)
    spec_path = dest / _rel(lock.spec)
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_bytes(referrers.read_blob(spec_desc, f"the spec of {where}"))
    wanted = context_files(lock, requirements_file_of(spec_path, lock.set_image))
    found = [(f, take(f.title, f.media_type, f.sha256)) for f in wanted]
    extra = [d for d in art.layers if id(d) not in used]
    if extra:
        names = ", ".join(f"{(d.annotations or {}).get(TITLE, '?')} ({d.digest})" for d in extra[:5])
        raise InputError(f"{where} carries files its lock does not pin: {names}",
                         hint="a recipe holds the spec, the lock and the pinned context files, "
                         "nothing else: do not use this one")
    for f, d in found:
        referrers.blob_to_store(d.digest, d.size, store, f"context file {f.title} of {where}")
    try:
        for f, _ in found:
            target = dest / f.title
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store.path_for(f.sha256), target)
        _dirs_and_links(lock, dest)
    except OSError as e:
        raise InputError(f"the files {where} pins do not form a directory tree: {e}",
                         field="files", hint="do not use this recipe") from None
    return lock_path


def _dirs_and_links(lock: Lock, dest: Path) -> None:
    """The lock's directory and symlink pins, after every file: a link is made only when no
    file needs to be written through its path, and only when its text stays in the context."""
    for pin in lock.files:
        if pin.type == "dir":
            (dest / _rel(lock.context, pin.src)).mkdir(parents=True, exist_ok=True)
    for pin in lock.files:
        if pin.type != "symlink":
            continue
        rel = _rel(lock.context, pin.src)
        target = pin.target or ""
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(pin.src), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise UnsafeContentError(f"the lock's symlink {pin.src} -> {target!r} leaves the context",
                                     field="files", hint="do not use this recipe")
        link = dest / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(link):
            raise InputError(f"the lock pins {pin.src} twice", field="files")
        os.symlink(target, link)
