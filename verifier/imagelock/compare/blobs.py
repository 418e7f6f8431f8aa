"""Published blobs read as streams that are hashed while they are read: a blob is trusted only once its digest is proven, and its decompressed content can prove a content-identity match.

A published layer is hostile input until proven otherwise, and a small blob can decompress to
gigabytes. Every read of one is bounded (docs/rebuild-report.md, "Limits"): each decompression
call yields at most one CHUNK, the published layers of one comparison may decompress to at most
twice the rebuilt image's uncompressed size plus CONTENT_FLOOR (never past CONTENT_CAP), and the
tar reader (compare/entries.py) bounds headers and entries. A bound that is hit raises
LimitExceeded, which the comparison reports as a difference with its reason.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard

from imagelock.core.digest import CHUNK, iter_file
from imagelock.oci.image import Blob
from imagelock.tar.compress import gunzip_chunks


CONTENT_FLOOR = 256 << 20  # decompressed bytes always allowed, whatever the rebuild's size
CONTENT_CAP = 64 << 30  # decompressed bytes never read from the published layers of one comparison


class LimitExceeded(Exception):
    """A published layer asked for more than a bound allows: it cannot be the rebuild's layer,
    and reading on would cost unbounded memory or time."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB" if n >= 1 << 20 else f"{n} bytes"


class ContentBudget:
    """The decompressed bytes the published layers of one comparison may produce: twice the
    rebuilt image's uncompressed size plus CONTENT_FLOOR, never more than CONTENT_CAP.

    A layer read twice (proved, then indexed) counts once, by its longest read. The rebuilt
    size (`reference`, which decompresses the rebuilt layers) is measured only once the
    published side has used the floor, so ordinary comparisons never pay for it.
    """

    def __init__(self, reference: Callable[[], int]) -> None:
        self._reference = reference
        self._used: dict[int, int] = {}
        self.total = 0
        self.limit: int | None = None

    def charge(self, layer: int, size: int) -> None:
        """Published layer `layer` has produced `size` bytes so far in the current read."""
        before = self._used.get(layer, 0)
        if size <= before:
            return
        self._used[layer] = size
        self.total += size - before
        if self.total <= CONTENT_FLOOR:
            return
        if self.limit is None:
            ref = self._reference()
            self.limit = min(CONTENT_CAP, 2 * ref + CONTENT_FLOOR)
            self._why = (f"twice the rebuilt image's {_mib(ref)} uncompressed plus "
                         f"{_mib(CONTENT_FLOOR)}, at most {_mib(CONTENT_CAP)}")
        if self.total > self.limit:
            raise LimitExceeded(f"the published layers decompress to more than {_mib(self.limit)}"
                                f" ({self._why}); reading stopped at layer {layer}")


def uncompressed_size(blobs: list[Blob]) -> int:
    """The total decompressed size of (trusted, rebuilt) layer blobs."""
    total = 0
    for blob in blobs:
        stream = BlobStream(blob)
        try:
            stream.finish()
        finally:
            stream.close()
        total += stream.size
    return total


class UnverifiableBlob(Exception):
    """A blob's bytes do not hash to the digest that names it: nothing can be concluded."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class _HashingReader:
    """The stored (compressed) bytes, hashed as they are read."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self._f.close()


class _Prefixed:
    """A reader that gives `head` back before the rest of `f` (after sniffing a magic number)."""

    def __init__(self, head: bytes, f: _HashingReader) -> None:
        self._head = head
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = (self._head, b"") if n < 0 else (self._head[:n], self._head[n:])
            return out
        return self._f.read(n)


def compression_of(media_type: str) -> str | None:
    """`gzip`, `zstd`, `none`, or None when the media type does not say (then we sniff)."""
    if media_type.endswith(("gzip", "+gzip")):
        return "gzip"
    if media_type.endswith("zstd"):
        return "zstd"
    if media_type.endswith(("tar", ".tar")):
        return "none"
    return None


def _decompressed(raw: _HashingReader, media_type: str) -> tuple[str, Iterator[bytes]]:
    kind = compression_of(media_type)
    src: Any = raw
    if kind is None:
        head = raw.read(4)
        kind = ("gzip" if head[:2] == b"\x1f\x8b" else
                "zstd" if head == b"\x28\xb5\x2f\xfd" else "none")
        src = _Prefixed(head, raw)
    if kind == "gzip":
        return kind, gunzip_chunks(src)
    if kind == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
        return kind, iter_file(reader)
    return kind, iter_file(src)


class BlobStream:
    """A blob's uncompressed bytes as a file object `tarfile` can read in streaming mode.

    Hashes the stored bytes (to check the blob's digest) and the uncompressed ones (the proof
    of its diff_id) as they pass, and remembers the last HEADER_WINDOW bytes so that an entry's
    raw header blocks can be read back to tell USTAR, PAX and GNU apart.

    With a `budget`, every byte produced is charged to it as layer `key`; with `header_limit`
    set (by the tar reader, while it parses one entry's headers), producing bytes past that
    offset raises LimitExceeded.
    """

    def __init__(self, blob: Blob, budget: ContentBudget | None = None, key: int = 0) -> None:
        self._budget = budget
        self._key = key
        self.header_limit: int | None = None
        self._raw = _HashingReader(blob.open())
        self.kind, self._chunks = _decompressed(self._raw, blob.media_type)
        self._pending = memoryview(b"")
        self._hash = hashlib.sha256()
        self.size = 0
        self._recent: deque[tuple[int, bytes]] = deque()
        self._recent_len = 0

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n if n >= 0 else None
        got = 0
        while want is None or got < want:
            if not self._pending:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._pending = memoryview(chunk)
            take = self._pending if want is None else self._pending[: want - got]
            parts.append(bytes(take))
            got += len(take)
            self._pending = self._pending[len(take):]
        data = b"".join(parts)
        if data:
            self._hash.update(data)
            self._recent.append((self.size, data))
            self._recent_len += len(data)
            self.size += len(data)
            while self._recent_len - len(self._recent[0][1]) >= HEADER_WINDOW:
                self._recent_len -= len(self._recent.popleft()[1])
            if self._budget is not None:
                self._budget.charge(self._key, self.size)
            if self.header_limit is not None and self.size > self.header_limit:
                raise LimitExceeded(f"an entry's header records (PAX, GNU long name or sparse "
                                    f"map) run past {_mib(MAX_HEADER_BYTES)}")
        return data

    def recent(self, start: int, end: int) -> bytes | None:
        """Bytes [start, end) of the uncompressed stream, if still remembered."""
        if not self._recent or start < self._recent[0][0] or end > self.size:
            return None
        out = bytearray()
        for pos, data in self._recent:
            lo, hi = max(start, pos), min(end, pos + len(data))
            if lo < hi:
                out += data[lo - pos: hi - pos]
        return bytes(out)

    def finish(self) -> None:
        """Read to the end (tar readers stop at the end-of-archive blocks)."""
        while self.read(CHUNK):
            pass

    def abandon(self) -> None:
        """After a decompression error: hash the rest of the stored bytes, undecompressed."""
        self._raw.drain()

    @property
    def content_digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    @property
    def stored_digest(self) -> str:
        return "sha256:" + self._raw.hash.hexdigest()

    @property
    def stored_size(self) -> int:
        return self._raw.size

    def close(self) -> None:
        self._raw.close()


DECOMPRESSION_ERRORS = (zlib.error, zstandard.ZstdError, EOFError)


def check_stored(stream: BlobStream, blob: Blob, side: str) -> None:
    if stream.stored_digest != blob.digest or stream.stored_size != blob.size:
        raise UnverifiableBlob(
            f"the {side} layer blob {blob.digest} reads as {stream.stored_digest} "
            f"({stream.stored_size} bytes, {blob.size} expected)",
            hint="fetch the image again; if it persists, the store or registry serves corrupt "
            "or tampered blobs",
        )


@dataclass(frozen=True)
class ContentProof:
    """What a blob decompresses to: the content digest that must equal its diff_id."""

    content_digest: str | None
    error: str | None  # the blob is not valid compressed data
    limit: str | None = None  # reading stopped at a bound (LimitExceeded)


def prove_content(blob: Blob, side: str, budget: ContentBudget | None = None,
                  key: int = 0) -> ContentProof:
    """Decompress `blob` (streamed) and hash the result; raises UnverifiableBlob if the stored
    bytes are not the ones the digest names."""
    stream = BlobStream(blob, budget, key)
    try:
        try:
            stream.finish()
        except DECOMPRESSION_ERRORS as e:
            stream.abandon()
            check_stored(stream, blob, side)
            return ContentProof(None, f"not valid {stream.kind} data: {e}")
        except LimitExceeded as e:
            stream.abandon()
            check_stored(stream, blob, side)
            return ContentProof(None, None, e.reason)
        check_stored(stream, blob, side)
        return ContentProof(stream.content_digest, None)
    finally:
        stream.close()


MAX_HEADER_BYTES = 1 << 20  # one entry's header blocks and extended records, read into memory
HEADER_WINDOW = MAX_HEADER_BYTES  # recent uncompressed bytes kept to read an entry's raw headers
