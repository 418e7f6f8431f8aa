"""Published blobs read as streams that are hashed while they are read: a blob is trusted only once its digest is proven, and its decompressed content can prove a content-identity match."""

from __future__ import annotations

import hashlib
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard

from imagelock.core.digest import CHUNK, iter_file
from imagelock.oci.image import Blob
from imagelock.tar.compress import gunzip_chunks


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
    """

    def __init__(self, blob: Blob) -> None:
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


def prove_content(blob: Blob, side: str) -> ContentProof:
    """Decompress `blob` (streamed) and hash the result; raises UnverifiableBlob if the stored
    bytes are not the ones the digest names."""
    stream = BlobStream(blob)
    try:
        try:
            stream.finish()
        except DECOMPRESSION_ERRORS as e:
            stream.abandon()
            check_stored(stream, blob, side)
            return ContentProof(None, f"not valid {stream.kind} data: {e}")
        check_stored(stream, blob, side)
        return ContentProof(stream.content_digest, None)
    finally:
        stream.close()


HEADER_WINDOW = 1 << 20  # recent uncompressed bytes kept to read an entry's raw header blocks
