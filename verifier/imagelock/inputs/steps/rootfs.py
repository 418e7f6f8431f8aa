"""Writing image entries out as a real root file system, for build steps to run in.

Entries are already safe (normalised paths, nothing below a symlink: see tree.py); this module
still refuses to write through a symlink, so a mistake elsewhere cannot reach the host. Owners
and modes are applied as the image says (the build runs as root); directory modes last, so a
0500 directory does not stop its children from being written.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from imagelock.core.digest import CHUNK
from imagelock.core.errors import UnsafeContentError
from imagelock.tar.entry import Entry


def _parent_is_real(root: Path, path: str) -> Path:
    target = root / path
    parent = target.parent
    real = os.path.realpath(parent)
    if real != str(root) and not real.startswith(str(root) + os.sep):
        raise UnsafeContentError(f"/{path} would be written outside the image root")
    for p in [parent, *parent.parents]:
        if p == root:
            break
        if p.is_symlink():
            raise UnsafeContentError(f"/{path} is below the symlink /{p.relative_to(root)}")
    return target


def _is_real_dir(p: Path) -> bool:
    """A directory, never a symlink to one (which could point anywhere on the host)."""
    try:
        return stat.S_ISDIR(p.lstat().st_mode)
    except FileNotFoundError:
        return False


def _remove(p: Path) -> None:
    if _is_real_dir(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        p.unlink()


def _real_dir(p: Path) -> None:
    """Make `p` a real directory: a symlink or file in its place is removed, never followed."""
    if not _is_real_dir(p):
        if os.path.lexists(p):
            p.unlink()
        p.mkdir()


def _set_owner_mode(p: Path, uid: int, gid: int, mode: int | None) -> None:
    """chown/chmod `p` itself, refusing to touch whatever a symlink points at."""
    st = p.lstat()
    os.chown(p, uid, gid, follow_symlinks=False)
    if mode is not None and not stat.S_ISLNK(st.st_mode):
        os.chmod(p, mode)  # p is not a symlink (checked just above)


def materialize(layers: Iterable[list[Entry]], root: Path) -> None:
    """Write the entries of `layers` (bottom first) into the directory `root`."""
    root = Path(os.path.realpath(root))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # what a step sees as `/`, whatever the host's umask
    dirs: dict[str, Entry] = {}
    for entries in layers:
        for e in sorted(entries, key=lambda x: x.path.encode()):
            p = _parent_is_real(root, e.path)
            if e.type == "dir":
                _real_dir(p)
                dirs[e.path] = e
                continue
            if os.path.lexists(p):
                _remove(p)
            if e.type == "file":
                assert e.content is not None
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out, e.content.open() as src:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                    verify = getattr(src, "verify_rest", None)
                    if verify is not None:
                        verify()
                _set_owner_mode(p, e.uid, e.gid, e.mode)
            elif e.type == "symlink":
                os.symlink(e.linkname, p)
                _set_owner_mode(p, e.uid, e.gid, None)
            elif e.type == "hardlink":
                os.link(_parent_is_real(root, e.linkname), p, follow_symlinks=False)
            elif e.type == "whiteout":
                name = p.name
                if name == ".wh..wh..opq":
                    if _is_real_dir(p.parent):
                        for child in p.parent.iterdir():
                            _remove(child)
                elif name.startswith(".wh."):
                    _remove(p.parent / name[len(".wh."):])
    for path in sorted(dirs, key=lambda d: -d.count("/")):
        e = dirs[path]
        if _is_real_dir(root / path):
            _set_owner_mode(root / path, e.uid, e.gid, e.mode)


def apply_upper(root: Path, upper: Path, changes: Iterable[tuple[str, str]]) -> None:
    """Make `root` what the step saw at its end: copy added/changed paths from the overlay's
    upper dir, remove deleted ones, empty opaque directories first."""
    for path, kind in changes:
        dest = _parent_is_real(root, path)
        src = upper / path
        if kind == "deleted":
            _remove(dest)
            continue
        if kind == "opaque":
            if _is_real_dir(dest):
                for child in dest.iterdir():
                    _remove(child)
            continue
        st = src.lstat()
        if stat.S_ISDIR(st.st_mode):
            _real_dir(dest)
        else:
            _remove(dest)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dest)
            else:
                shutil.copyfile(src, dest, follow_symlinks=False)
        _set_owner_mode(dest, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
