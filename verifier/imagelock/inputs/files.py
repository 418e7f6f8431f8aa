"""Context files: files, directories and symlinks from the build context, pinned by content.

Their bytes never go through the store: a build reads them from the context directory, checked
against the pin as the layer writer streams them, and refuses one whose real path leaves the
context (a symlink).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from imagelock.core.errors import UnsafeContentError
from imagelock.formats.common import mode_int, owner_ids
from imagelock.formats.lock import ContextPin, Lock
from imagelock.inputs.kind import (
    BuildInputs,
    Component,
    Dependency,
    Mirrors,
    PinDiff,
    Placement,
    Source,
    changed_lines,
    keyed,
)
from imagelock.tar.entry import ContextContent, Entry, normalize_path


def _inside_context(context: Path, src: str) -> Path:
    """The context file `src`, refusing one whose real path leaves the context (a symlink)."""
    real_ctx = os.path.realpath(context)
    real = os.path.realpath(context / src)
    if real != real_ctx and not real.startswith(real_ctx + os.sep):
        raise UnsafeContentError(f"context path {src!r} leads outside the build context",
                                 hint="the lock names files inside its context only")
    return Path(real)


class ContextFiles:
    name = "files"

    def pins(self, lock: Lock, platform: str) -> Sequence[ContextPin]:
        return lock.files

    def sources(self, lock: Lock, mirrors: Mirrors) -> Iterator[Source]:
        return iter(())  # read from the build context, never fetched

    def platform_layers(self, lock: Lock) -> set[str]:
        return set()

    def place(self, lock: Lock, platform: str, build: BuildInputs) -> Iterator[Placement]:
        for i, pin in enumerate(lock.files):
            path = normalize_path(pin.dest, what=f"files[{i}].dest")
            uid, gid = owner_ids(pin.owner)
            origin = f"files[{i}] ({pin.src})"
            if pin.type == "file":
                assert pin.sha256 is not None and pin.size is not None and pin.mode is not None
                content = ContextContent(_inside_context(build.context, pin.src), pin.src,
                                         pin.sha256, pin.size)
                yield Entry(path, "file", mode_int(pin.mode), uid, gid, content=content), pin.layer, origin
            elif pin.type == "dir":
                assert pin.mode is not None
                yield Entry(path, "dir", mode_int(pin.mode), uid, gid), pin.layer, origin
            else:
                yield Entry(path, "symlink", 0o777, uid, gid, linkname=pin.target or ""), pin.layer, origin

    def make_layers(self, lock: Lock, platform: str, layers: dict[str, list[Entry]],
                    build: BuildInputs) -> dict[str, list[Entry]]:
        return {}

    def dependencies(self, lock: Lock) -> Iterator[Dependency]:
        for f in lock.files:
            if f.type == "file" and f.sha256:
                yield Dependency(f"context:{f.src}", f.sha256)

    def diff(self, old: Lock, new: Lock) -> PinDiff:
        return PinDiff(changed_lines("file", keyed(old.files, "dest"), keyed(new.files, "dest")))

    def components(self, lock: Lock, platform: str) -> Iterator[Component]:
        for f in lock.files:
            if f.type == "file" and f.sha256 is not None and f.size is not None:
                yield Component(self.name, f.dest, None, None, f.sha256, f.size)
