"""Paths: directories, symlinks and hardlinks the spec declares; no bytes of their own."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from imagelock.formats.common import mode_int, owner_ids
from imagelock.formats.lock import Lock, PathPin
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
from imagelock.tar.entry import Entry, normalize_path


class Paths:
    name = "paths"

    def pins(self, lock: Lock, platform: str) -> Sequence[PathPin]:
        return lock.paths

    def sources(self, lock: Lock, mirrors: Mirrors) -> Iterator[Source]:
        return iter(())

    def platform_layers(self, lock: Lock) -> set[str]:
        return set()

    def place(self, lock: Lock, platform: str, build: BuildInputs) -> Iterator[Placement]:
        for i, pin in enumerate(lock.paths):
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

    def make_layers(self, lock: Lock, platform: str, layers: dict[str, list[Entry]],
                    build: BuildInputs) -> dict[str, list[Entry]]:
        return {}

    def dependencies(self, lock: Lock) -> Iterator[Dependency]:
        return iter(())  # no bytes: the lock's digest covers them

    def diff(self, old: Lock, new: Lock) -> PinDiff:
        return PinDiff(changed_lines("path", keyed(old.paths, "path"), keyed(new.paths, "path")))

    def components(self, lock: Lock, platform: str) -> Iterator[Component]:
        return iter(())
