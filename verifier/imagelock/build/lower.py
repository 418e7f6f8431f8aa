"""An image built on a parent: the parent's entries seen from above, and what a child's layers
must hold so that the image the runtime assembles is the child's whole tree.

A child of a set places all its pins (the Debian closure and the wheels of its parents too: one
dpkg database must cover every package, one installation every wheel). Whatever it places that
the parent already has, identically, is left out of the child's layers: the parent's blobs are
reused byte for byte and the child's layers hold only what is new or different.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from imagelock.tar.entry import Content, Entry, parent_dirs

_CHUNK = 1 << 20


def merged_view(layers: Mapping[str, list[Entry]], order: list[str]) -> dict[str, Entry]:
    """Each path's entry as the runtime sees it over `order` (bottom first): the upper one wins."""
    view: dict[str, Entry] = {}
    for name in order:
        for e in layers[name]:
            view[e.path] = e
    return view


@dataclass
class ContentDigests:
    """sha256 of entries' contents, each read once (a pinned one is known without reading)."""

    known: dict[int, tuple[Content, str]] = field(default_factory=dict)

    def of(self, content: Content) -> str:
        hit = self.known.get(id(content))
        if hit is not None and hit[0] is content:
            return hit[1]
        pinned = getattr(content, "sha256", None)
        if isinstance(pinned, str):
            digest = pinned
        else:
            h = hashlib.sha256()
            with content.open() as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            digest = h.hexdigest()
        self.known[id(content)] = (content, digest)  # keeps `content` alive: its id stays its own
        return digest


def same(a: Entry, b: Entry | None, digests: ContentDigests) -> bool:
    """Whether `a` over `b` changes nothing a reader of the image sees."""
    if b is None or (a.type, a.mode, a.uid, a.gid, a.linkname) != (b.type, b.mode, b.uid, b.gid,
                                                                     b.linkname):
        return False
    if a.type != "file":
        return True
    if a.content is None or b.content is None:
        return a.content is b.content
    return a.size == b.size and digests.of(a.content) == digests.of(b.content)


def drop_unchanged(entries: list[Entry], below: Mapping[str, Entry],
                   digests: ContentDigests) -> list[Entry]:
    """`entries` without those `below` already has, identically; the directories above a kept
    entry and a kept hardlink's target stay (a layer is complete by itself)."""
    kept = {e.path for e in entries if not same(e, below.get(e.path), digests)}
    needed: set[str] = set()
    for e in entries:
        if e.path in kept:
            needed.update(parent_dirs(e.path))
            if e.type == "hardlink":
                needed.add(e.linkname)
                needed.update(parent_dirs(e.linkname))
    return [e for e in entries if e.path in kept or e.path in needed]
