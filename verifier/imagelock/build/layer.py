"""Writing one canonical layer: sorted entries -> tar stream -> diff_id, gzip blob and its digest.

Everything streams in 1 MiB chunks: the uncompressed tar is hashed (diff_id) and compressed on
the fly, and only the compressed blob (and, when asked, the uncompressed tar) reach the disk, so
peak memory does not grow with layer size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from imagelock.core import progress
from imagelock.core.digest import CHUNK
from imagelock.core.errors import ImagelockError, InputError
from imagelock.tar.compress import ENCODER_BLOCK, GzipStream
from imagelock.tar.entry import Entry
from imagelock.tar.writer import END_OF_ARCHIVE, entry_header, padding


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


class _Stage(threading.Thread):
    """One stage of the layer pipeline on its own thread: hashlib and ISA-L release the GIL on
    large buffers, so reading and verifying inputs, hashing the tar stream (diff_id) and
    compressing run on all cores. Queues are bounded: only a few blocks are ever in memory,
    whatever the layer size."""

    def __init__(self, name: str, work: Callable[[memoryview], None], finish: Callable[[], None]) -> None:
        super().__init__(daemon=True, name=name)
        self.queue: queue.Queue[memoryview | None] = queue.Queue(maxsize=4)
        self._work = work
        self._finish = finish
        self.error: BaseException | None = None

    def run(self) -> None:
        done = False
        try:
            while (block := self.queue.get()) is not None:
                self._work(block)
            done = True
            self._finish()
        except BaseException as e:  # noqa: BLE001 - handed to the producing thread
            self.error = e
            while not done and self.queue.get() is not None:  # let the producer finish
                pass

    def put(self, block: memoryview | None) -> None:
        self.queue.put(block)

    def stop(self) -> None:
        if self.is_alive():
            self.queue.put(None)
        self.join()
        if self.error is not None:
            raise self.error


class _Sink:
    """Takes the tar stream and feeds the diff_id stage and the compressor stage, in exact
    ENCODER_BLOCK pieces: ISA-L's output depends on how its input is split into calls
    (spec/README.md §8)."""

    def __init__(self, blob: BinaryIO, tar: BinaryIO | None) -> None:
        self.diff = hashlib.sha256()
        self.comp = hashlib.sha256()
        self.tar_size = 0
        self.blob_size = 0
        self._blob = blob
        self._tar = tar
        self._gz = GzipStream()
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._hasher = _Stage("imagelock-diffid", self._hash, lambda: None)
        self._compressor = _Stage("imagelock-gzip", self._compress, self._flush)
        self._hasher.start()
        self._compressor.start()

    def _hash(self, block: memoryview) -> None:
        self.diff.update(block)
        self.tar_size += len(block)
        if self._tar is not None:
            self._tar.write(block)

    def _compress(self, block: memoryview) -> None:
        self._emit(self._gz.compress(block))

    def _flush(self) -> None:
        self._emit(self._gz.flush())

    def _emit(self, out: bytes) -> None:
        if out:
            self.comp.update(out)
            self._blob.write(out)
            self.blob_size += len(out)

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_len += len(data)
        if self._pending_len >= ENCODER_BLOCK:
            self._drain(final=False)

    def _drain(self, *, final: bool) -> None:
        if not self._pending:
            return
        data = memoryview(b"".join(self._pending))
        whole = len(data) if final else len(data) - len(data) % ENCODER_BLOCK
        for off in range(0, whole, ENCODER_BLOCK):
            block = data[off : off + ENCODER_BLOCK]
            self._hasher.put(block)
            self._compressor.put(block)
        progress.moved(whole)
        rest = bytes(data[whole:])
        self._pending = [rest] if rest else []
        self._pending_len = len(rest)

    def close(self) -> None:
        """Finish the stream; digests and sizes are then final."""
        self._drain(final=True)
        self._hasher.stop()
        self._compressor.stop()

    def abort(self) -> None:
        for stage in (self._hasher, self._compressor):
            # The first error is the one reported; a stage's own error here is a consequence.
            with contextlib.suppress(BaseException):
                stage.stop()


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
            sink = _Sink(blob, cast(BinaryIO, tar) if tar_path is not None else None)
            try:
                _write_entries(ordered, sink, mtime)
            except BaseException:
                sink.abort()
                raise
            sink.close()
    except (ImagelockError, OSError):
        blob_path.unlink(missing_ok=True)
        if tar_path is not None:
            tar_path.unlink(missing_ok=True)
        raise
    os.chmod(blob_path, 0o644)  # the same file mode whatever the umask: layouts link to it
    if tar_path is not None:
        os.chmod(tar_path, 0o644)
    return LayerBlob(
        diff_id="sha256:" + sink.diff.hexdigest(),
        digest="sha256:" + sink.comp.hexdigest(),
        size=sink.blob_size,
        tar_size=sink.tar_size,
        blob_path=blob_path,
        tar_path=tar_path,
    )


def _write_entries(ordered: list[Entry], sink: _Sink, mtime: int) -> None:
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


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *a: object) -> None:
        return None

    def write(self, data: bytes) -> int:
        return len(data)
