"""Extracting chosen files from a verified blob for external diffing (diffoscope), never outside the destination."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from imagelock.compare.blobs import BlobStream, ContentBudget, LimitExceeded, check_stored
from imagelock.compare.entries import layer_members, normalise
from imagelock.core.digest import CHUNK
from imagelock.oci.image import Blob


def safe_relpath(path: str) -> PurePosixPath:
    """A relative path that cannot leave the directory it is joined to: empty, `.` and `..`
    components are dropped, whatever the tar said."""
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    return PurePosixPath(*parts) if parts else PurePosixPath("_")


def extract_files(blob: Blob, paths: set[str], dest: Path, side: str,
                  budget: ContentBudget | None = None, key: int = 0) -> dict[str, Path]:
    """Write the regular files of `blob` whose normalised path is in `paths` under `dest`.

    Only regular files are written, each through a fresh real directory chain under `dest`,
    opened with O_NOFOLLOW|O_EXCL: no link in the tar or on disk is ever followed, nothing is
    written outside `dest`. The first occurrence of a path wins. A published blob is read
    within the bounds of the comparison (`budget`; compare/entries.py bounds its headers) and
    raises LimitExceeded past them.
    """
    root = dest.resolve()
    written: dict[str, Path] = {}
    stream = BlobStream(blob, budget, key)
    try:
        try:
            for tf, m in layer_members(stream):
                path = normalise(m.name)
                if m.isreg() and path in paths and path not in written:
                    target = root / safe_relpath(path)
                    if not target.resolve().is_relative_to(root):
                        continue  # cannot happen after safe_relpath; kept as a last guard
                    try:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                     0o644)
                    except OSError:
                        continue  # a file where a directory is needed (a type change): skip it
                    with os.fdopen(fd, "wb") as out:
                        f = tf.extractfile(m)
                        while f is not None and (data := f.read(CHUNK)):
                            out.write(data)
                    written[path] = target
            stream.finish()
        except LimitExceeded:
            shutil.rmtree(dest, ignore_errors=True)  # what was written is unverified
            raise
        try:
            check_stored(stream, blob, side)
        except BaseException:
            # Files from a blob that did not verify are not left for anyone to open.
            shutil.rmtree(dest, ignore_errors=True)
            raise
    finally:
        stream.close()
    return written

