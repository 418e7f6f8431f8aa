"""One file-system entry of an image layer, and the path rules that keep entries inside the root.

Every input kind (context files, downloads, Debian packages, wheels, steps) turns into `Entry`
values; `layer.py` writes them as canonical tar. Paths are normalised here once: relative to the
image root, `/`-separated, no `.`/`..` components, no leading or trailing slash.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from imagelock.core.errors import StaleLockError, UnsafeContentError
from imagelock.core.verified_read import VerifyingReader

EntryType = Literal["file", "dir", "symlink", "hardlink", "whiteout"]


class Content(Protocol):
    """Where a regular file's bytes come from; opened once, when the layer is written."""

    @property
    def size(self) -> int: ...

    def open(self) -> BinaryIO: ...


@dataclass(frozen=True)
class BytesContent:
    """Small generated content (a dpkg status file, /etc/passwd)."""

    data: bytes
    size: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", len(self.data))

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data)


@dataclass(frozen=True)
class FileContent:
    """A file on disk whose bytes were already checked (a staged, hash-verified file)."""

    path: Path
    size: int

    def open(self) -> BinaryIO:
        return open(self.path, "rb")


@dataclass(frozen=True)
class Entry:
    """A layer member. `mode` is the permission bits including setuid, setgid and sticky (0o7777)."""

    path: str
    type: EntryType
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    content: Content | None = None

    @property
    def size(self) -> int:
        return self.content.size if (self.type == "file" and self.content is not None) else 0


def normalize_path(raw: str, *, what: str = "path") -> str:
    """The canonical in-image path for `raw` (absolute or relative to the root).

    Refuses `..` components, NUL bytes and the empty path: nothing may name a place outside the
    image root.
    """
    if "\x00" in raw:
        raise UnsafeContentError(f"{what} {raw!r} contains a NUL byte")
    parts = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeContentError(
                f"{what} {raw!r} has a '..' component and could escape the image root",
                hint="name paths inside the image without '..'",
            )
        parts.append(part)
    if not parts:
        raise UnsafeContentError(f"{what} {raw!r} names the image root itself")
    return "/".join(parts)


def parent_dirs(path: str) -> list[str]:
    """Every ancestor directory of a normalised path, outermost first."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def symlink_stays_inside(link_path: str, target: str) -> bool:
    """Whether a symlink at `link_path` with `target` resolves inside the root, lexically.

    Absolute targets are resolved against the image root (as a container runtime would), so
    `/usr/bin/x` is fine; a relative target that climbs above the root is not.
    """
    if target.startswith("/"):
        depth = 0
        parts = target.split("/")
    else:
        parts = target.split("/")
        depth = len(link_path.split("/")) - 1
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        else:
            depth += 1
    return True




@dataclass(frozen=True)
class ContextContent:
    """A build-context file, checked against its pin while it is read: a changed file is a stale
    lock, reported with its path."""

    path: Path
    src: str
    sha256: str
    size: int

    def open(self) -> BinaryIO:
        def stale(got: str, n: int) -> Exception:
            # The bytes found are not described: a hostile lock must not learn host files' hashes.
            return StaleLockError(
                f"context file {self.src!r} changed since the lock was made "
                f"(locked sha256 {self.sha256}, {self.size} bytes)",
                path=self.path,
                hint="run `imagelock lock` to pin the new content",
            )

        try:
            return VerifyingReader(self.path, self.sha256, self.size, self.src, stale)  # type: ignore[return-value]
        except FileNotFoundError:
            raise StaleLockError(
                f"context file {self.src!r} is missing (the lock pins it)",
                path=self.path,
                hint="restore it, or run `imagelock lock` if it was removed on purpose",
            ) from None
