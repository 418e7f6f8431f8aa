"""Turning the lock's pins into image entries: one small function per input kind.

Pins name their layer; the caller places the entries in a `Tree`. Content is never read here,
only referenced: the layer writer streams it and checks each pin's sha256 as it goes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from imagelock.core.errors import UnsafeContentError
from imagelock.fetch.store import Store
from imagelock.formats.common import mode_int, owner_ids
from imagelock.formats.lock import ContextPin, DownloadPin, PathPin
from imagelock.inputs.content import StoreContent
from imagelock.tar.entry import ContextContent, Entry, normalize_path
from imagelock.tar.unpack import unpack_tar

Placement = tuple[Entry, str, str]  # entry, layer, origin


def _inside_context(context: Path, src: str) -> Path:
    """The context file `src`, refusing one whose real path leaves the context (a symlink)."""
    real_ctx = os.path.realpath(context)
    real = os.path.realpath(context / src)
    if real != real_ctx and not real.startswith(real_ctx + os.sep):
        raise UnsafeContentError(f"context path {src!r} leads outside the build context",
                                 hint="the lock names files inside its context only")
    return Path(real)


def context_entries(pins: list[ContextPin], context: Path) -> Iterator[Placement]:
    for i, pin in enumerate(pins):
        path = normalize_path(pin.dest, what=f"files[{i}].dest")
        uid, gid = owner_ids(pin.owner)
        origin = f"files[{i}] ({pin.src})"
        if pin.type == "file":
            assert pin.sha256 is not None and pin.size is not None and pin.mode is not None
            content = ContextContent(_inside_context(context, pin.src), pin.src, pin.sha256, pin.size)
            yield Entry(path, "file", mode_int(pin.mode), uid, gid, content=content), pin.layer, origin
        elif pin.type == "dir":
            assert pin.mode is not None
            yield Entry(path, "dir", mode_int(pin.mode), uid, gid), pin.layer, origin
        else:
            yield Entry(path, "symlink", 0o777, uid, gid, linkname=pin.target or ""), pin.layer, origin


def download_entries(pins: list[DownloadPin], store: Store, staging: Path) -> Iterator[Placement]:
    for i, pin in enumerate(pins):
        origin = f"downloads[{i}] ({pin.location})"
        what = f"download {pin.location}"
        if not pin.unpack:
            uid, gid = owner_ids(pin.owner or "0:0")
            mode = mode_int(pin.mode or "0644")
            path = normalize_path(pin.dest, what=f"downloads[{i}].dest")
            content = StoreContent(store, pin.sha256, pin.size, what)
            yield Entry(path, "file", mode, uid, gid, content=content), pin.layer, origin
            continue
        # An archive is verified whole before a single member is trusted.
        store.verify(pin.sha256, pin.size, what)
        with store.open_verified(pin.sha256, pin.size, what) as f:
            for e in unpack_tar(
                f,  # type: ignore[arg-type]
                dest=pin.dest,
                strip=pin.strip_components,
                staging=staging / f"download-{i}",
                archive=f"{origin}",
            ):
                if pin.owner is not None:
                    uid, gid = owner_ids(pin.owner)
                    e = Entry(e.path, e.type, e.mode, uid, gid, e.linkname, e.content)
                if pin.mode is not None and e.type == "file":
                    e = Entry(e.path, e.type, mode_int(pin.mode), e.uid, e.gid, e.linkname, e.content)
                yield e, pin.layer, origin


def path_entries(pins: list[PathPin]) -> Iterator[Placement]:
    for i, pin in enumerate(pins):
        path = normalize_path(pin.path, what=f"paths[{i}].path")
        uid, gid = owner_ids(pin.owner)
        origin = f"paths[{i}] ({pin.path})"
        if pin.type == "directory":
            yield Entry(path, "dir", mode_int(pin.mode or "0755"), uid, gid), pin.layer, origin
        elif pin.type == "symlink":
            yield Entry(path, "symlink", 0o777, uid, gid, linkname=pin.target or ""), pin.layer, origin
        else:
            target = normalize_path(pin.target or "", what=f"paths[{i}].target")
            yield Entry(path, "hardlink", 0o644, uid, gid, linkname=target), pin.layer, origin
