"""Writing one canonical layer: sorted entries -> tar stream -> diff_id, gzip blob and its digest.

Everything streams in 1 MiB chunks: the uncompressed tar is hashed (diff_id) and compressed on
the fly, and only the compressed blob (and, when asked, the uncompressed tar) reach the disk, so
peak memory does not grow with layer size.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..compress import GzipStream
from ..digest import CHUNK
from ..errors import ImagelockError, InputError
from .entry import Entry
from .tarwriter import END_OF_ARCHIVE, entry_header, padding


@dataclass(frozen=True)
class LayerBlob:
    """A written layer: identities and where its bytes are."""

    diff_id: str  # sha256 of the uncompressed tar
    digest: str  # sha256 of the gzip blob
    size: int  # bytes of the gzip blob
    tar_size: int
    blob_path: Path
    tar_path: Path | None


def sort_key(path: str) -> bytes:
    return path.encode("utf-8")


class _Sink:
    """Fans the tar stream out to the diff_id hash, the compressor and optional files."""

    def __init__(self, blob: BinaryIO, tar: BinaryIO | None) -> None:
        self.diff = hashlib.sha256()
        self.comp = hashlib.sha256()
        self.gz = GzipStream()
        self.blob = blob
        self.tar = tar
        self.tar_size = 0
        self.blob_size = 0
        self._pending: list[bytes] = []
        self._pending_len = 0

    def write(self, data: bytes) -> None:
        # Small header writes are batched so the compressor sees large chunks.
        self._pending.append(data)
        self._pending_len += len(data)
        if self._pending_len >= CHUNK:
            self._drain()

    def _drain(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_len = 0
        self.diff.update(data)
        self.tar_size += len(data)
        if self.tar is not None:
            self.tar.write(data)
        self._emit(self.gz.compress(data))

    def _emit(self, out: bytes) -> None:
        if out:
            self.comp.update(out)
            self.blob.write(out)
            self.blob_size += len(out)

    def close(self) -> None:
        self._drain()
        self._emit(self.gz.flush())


def _copy_content(entry: Entry, sink: _Sink) -> None:
    assert entry.content is not None
    expected = entry.content.size
    n = 0
    with entry.content.open() as f:
        while n < expected:
            data = f.read(min(CHUNK, expected - n))
            if not data:
                break
            n += len(data)
            sink.write(data)
        # Content sources that verify their digest do so once they have been read to the end.
        verify_rest = getattr(f, "verify_rest", None)
        if verify_rest is not None:
            verify_rest()
        elif f.read(1):
            n += 1
    if n != expected:
        raise InputError(
            f"{entry.path}: content changed while building (expected {expected} bytes, got "
            f"{'more' if n > expected else n})",
            hint="do not modify inputs during a build; run `imagelock lock` if the change is intended",
        )


def write_layer(
    entries: Iterable[Entry],
    *,
    mtime: int,
    blob_path: Path,
    tar_path: Path | None = None,
) -> LayerBlob:
    """Write `entries` (already complete: parents present, unique paths) as one canonical layer.

    Entries are sorted here, bytewise by path. On any failure the partial files are removed.
    """
    ordered = sorted(entries, key=lambda e: sort_key(e.path))
    try:
        with open(blob_path, "wb") as blob, (
            open(tar_path, "wb") if tar_path is not None else _Null()
        ) as tar:
            sink = _Sink(blob, tar if tar_path is not None else None)
            for e in ordered:
                size = e.size
                sink.write(
                    entry_header(
                        path=e.path,
                        type=e.type,
                        mode=e.mode,
                        uid=e.uid,
                        gid=e.gid,
                        size=size,
                        mtime=mtime,
                        linkname=e.linkname,
                    )
                )
                if e.type == "file" and size:
                    _copy_content(e, sink)
                    sink.write(padding(size))
            sink.write(END_OF_ARCHIVE)
            sink.close()
    except (ImagelockError, OSError):
        blob_path.unlink(missing_ok=True)
        if tar_path is not None:
            tar_path.unlink(missing_ok=True)
        raise
    return LayerBlob(
        diff_id="sha256:" + sink.diff.hexdigest(),
        digest="sha256:" + sink.comp.hexdigest(),
        size=sink.blob_size,
        tar_size=sink.tar_size,
        blob_path=blob_path,
        tar_path=tar_path,
    )


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *a: object) -> None:
        return None

    def write(self, data: bytes) -> int:
        return len(data)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
