"""Unpacking a pinned tar archive (a download with `unpack: true`) safely into entries.

Members are read with `tarfile` in streaming mode; each regular file is copied to a staging
directory so the layer writer can read it later in sorted order. Refused, naming the member:
`..` components, absolute paths, symlinks whose target leaves the root, hardlinks to members not
seen before, device nodes and FIFOs.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from imagelock.core.digest import CHUNK
from imagelock.core.errors import InputError, UnsafeContentError
from imagelock.tar.entry import Entry, FileContent, normalize_path, symlink_stays_inside


def _member_path(name: str, strip: int, archive: str) -> str | None:
    if name.startswith("/"):
        raise UnsafeContentError(f"{archive}: member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeContentError(f"{archive}: member {name!r} has a '..' component")
    parts = parts[strip:]
    return "/".join(parts) if parts else None


def unpack_tar(
    f: BinaryIO,
    *,
    dest: str,
    strip: int,
    staging: Path,
    archive: str,
) -> Iterator[Entry]:
    """Yield the entries of a tar stream placed under in-image directory `dest`."""
    dest = normalize_path(dest, what="dest")
    seen_files: set[str] = set()
    staging.mkdir(parents=True, exist_ok=True)
    try:
        tf = tarfile.open(fileobj=f, mode="r|*")
    except tarfile.TarError as e:
        raise InputError(f"{archive} is not a readable tar archive: {e}") from None
    n = 0
    with tf:
        try:
            for m in tf:
                rel = _member_path(m.name, strip, archive)
                if rel is None:
                    continue
                path = f"{dest}/{rel}"
                mode = m.mode & 0o7777
                if m.isdir():
                    yield Entry(path=path, type="dir", mode=mode, uid=m.uid, gid=m.gid)
                elif m.issym():
                    if not symlink_stays_inside(path, m.linkname):
                        raise UnsafeContentError(
                            f"{archive}: symlink member {m.name!r} -> {m.linkname!r} escapes the root"
                        )
                    yield Entry(path=path, type="symlink", mode=0o777, uid=m.uid, gid=m.gid,
                                linkname=m.linkname)
                elif m.islnk():
                    target_rel = _member_path(m.linkname, strip, archive)
                    target = f"{dest}/{target_rel}" if target_rel else None
                    if target is None or target not in seen_files:
                        raise UnsafeContentError(
                            f"{archive}: hardlink member {m.name!r} -> {m.linkname!r} does not "
                            "name an earlier regular file of the archive"
                        )
                    yield Entry(path=path, type="hardlink", mode=mode, uid=m.uid, gid=m.gid,
                                linkname=target)
                elif m.isreg():
                    n += 1
                    staged = staging / f"{n:08d}"
                    src = tf.extractfile(m)
                    assert src is not None
                    with open(staged, "wb") as out:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
                    os.chmod(staged, 0o600)
                    seen_files.add(path)
                    yield Entry(path=path, type="file", mode=mode, uid=m.uid, gid=m.gid,
                                content=FileContent(staged, m.size))
                else:
                    kind = "device node" if (m.ischr() or m.isblk()) else "special file"
                    raise UnsafeContentError(
                        f"{archive}: member {m.name!r} is a {kind}; images may not carry these"
                    )
        except tarfile.TarError as e:
            raise InputError(f"{archive} is a damaged tar archive: {e}") from None
