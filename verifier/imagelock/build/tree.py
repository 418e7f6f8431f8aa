"""Assembling the entries of every layer into a consistent image file tree.

The rules (spec/README.md, "Assembling layers"): every path is placed by exactly one input
(directories may be declared by several when they agree); missing parent directories are added
with the attributes of that directory's declaration anywhere in the image, else 0755 root:root;
no entry may sit below a symlink (it could be written through the link, outside the root);
a hardlink targets a regular file in the same layer, and of each group of hardlinked paths the
one that sorts first carries the content, so a reader always sees the target before the link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from imagelock.core.errors import InputError, UnsafeContentError
from imagelock.tar.entry import Entry, parent_dirs, symlink_stays_inside

DEFAULT_DIR_MODE = 0o755


@dataclass
class Placed:
    entry: Entry
    layer: str
    origin: str


class Tree:
    """Entries of all layers, keyed by path, with the origin of each for error messages."""

    def __init__(self, layers: list[str], lower: Mapping[str, Entry] | None = None) -> None:
        """`lower`: the parent image's entries (an image of a set), which this tree goes on top
        of: an undeclared parent directory takes its attributes from there, and nothing may be
        placed below one of its symlinks."""
        self.layers = layers
        self.by_path: dict[str, Placed] = {}
        self.lower: Mapping[str, Entry] = lower or {}

    def add(self, entry: Entry, layer: str, origin: str) -> None:
        if entry.path.rsplit("/", 1)[-1].startswith(".wh."):
            raise UnsafeContentError(
                f"{origin}: /{entry.path} has a name runtimes read as a whiteout (a deletion)",
                hint="rename it: names starting with .wh. are reserved in image layers")
        if layer not in self.layers:
            raise InputError(f"{origin}: unknown layer {layer!r}", hint=f"declared layers: {self.layers}")
        if entry.type == "symlink" and not symlink_stays_inside(entry.path, entry.linkname):
            raise UnsafeContentError(
                f"{origin}: symlink /{entry.path} -> {entry.linkname} points outside the image root"
            )
        old = self.by_path.get(entry.path)
        if old is None:
            self.by_path[entry.path] = Placed(entry, layer, origin)
            return
        same_dir = (
            old.entry.type == entry.type == "dir"
            and (old.entry.mode, old.entry.uid, old.entry.gid) == (entry.mode, entry.uid, entry.gid)
        )
        if same_dir:
            return
        raise InputError(
            f"two inputs put something at the same destination /{entry.path}: "
            f"{old.origin} and {origin}",
            field=origin.split(" ")[0],
            hint="give each input its own destination (or the same attributes, for a directory)",
        )

    def _check_no_symlink_parents(self) -> None:
        for path, placed in self.by_path.items():
            for parent in parent_dirs(path):
                p = self.by_path.get(parent)
                below = self.lower.get(parent) if p is None else None
                if below is not None and below.type != "dir":
                    raise UnsafeContentError(
                        f"{placed.origin}: /{path} is below /{parent}, which is a {below.type} "
                        "in the parent image, not a directory",
                        hint="put the file at the real path the link points to",
                    )
                if p is not None and p.entry.type != "dir":
                    raise UnsafeContentError(
                        f"{placed.origin}: /{path} is below /{parent}, which is a {p.entry.type} "
                        f"({p.origin}), not a directory",
                        hint="put the file at the real path the link points to",
                    )

    def _normalise_hardlinks(self) -> None:
        groups: dict[str, list[str]] = {}
        for path, placed in self.by_path.items():
            if placed.entry.type != "hardlink":
                continue
            target = placed.entry.linkname
            seen = {path}
            while True:
                t = self.by_path.get(target)
                if t is None or t.entry.type not in ("file", "hardlink"):
                    raise InputError(
                        f"{placed.origin}: hardlink /{path} targets /{target}, which is not a "
                        "regular file of the image",
                        hint="a hardlink's target must be a regular file in the same layer",
                    )
                if t.entry.type == "file":
                    break
                if target in seen:
                    raise InputError(f"{placed.origin}: hardlink loop at /{target}")
                seen.add(target)
                target = t.entry.linkname
            if self.by_path[target].layer != placed.layer:
                raise InputError(
                    f"{placed.origin}: hardlink /{path} targets /{target} in another layer "
                    f"({self.by_path[target].layer})",
                    hint="put both paths in the same layer",
                )
            groups.setdefault(target, []).append(path)
        for target, links in groups.items():
            first = min([target, *links], key=lambda p: p.encode("utf-8"))
            if first == target:
                for link in links:
                    self._relink(link, target)
                continue
            src = self.by_path[target]
            self.by_path[first] = Placed(replace(src.entry, path=first), src.layer, self.by_path[first].origin)
            for p in [target, *links]:
                if p != first:
                    self._relink(p, first, like=src.entry)

    def _relink(self, path: str, target: str, like: Entry | None = None) -> None:
        placed = self.by_path[path]
        base = like or self.by_path[target].entry
        self.by_path[path] = Placed(
            Entry(path=path, type="hardlink", mode=base.mode, uid=base.uid, gid=base.gid, linkname=target),
            placed.layer,
            placed.origin,
        )

    def layer_entries(self) -> dict[str, list[Entry]]:
        """Every layer's complete entry list (parents included), ready for `write_layer`."""
        self._check_no_symlink_parents()
        self._normalise_hardlinks()
        out: dict[str, dict[str, Entry]] = {name: {} for name in self.layers}
        for path, placed in self.by_path.items():
            layer = out[placed.layer]
            layer[path] = placed.entry
            for parent in parent_dirs(path):
                if parent in layer:
                    continue
                declared = self.by_path.get(parent)
                below = self.lower.get(parent)
                layer[parent] = (
                    replace(declared.entry) if declared is not None
                    else replace(below) if below is not None and below.type == "dir"
                    else Entry(path=parent, type="dir", mode=DEFAULT_DIR_MODE)
                )
        return {name: list(entries.values()) for name, entries in out.items()}
