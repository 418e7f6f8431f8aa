"""Reading blobs we do not trust: every byte is checked against the descriptor that names it.

Images come from places we do not control (a layout someone sent, an archive, a registry), so
readers go through here: a blob's size is checked before it is read, a JSON document is refused
above a fixed limit before it reaches memory, and a stream fails at its end unless the bytes hash
to the descriptor's digest. Nothing here loads a layer into memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from pydantic import BaseModel, ValidationError

from imagelock.core.digest import CHUNK, DIGEST
from imagelock.core.errors import InputError, IntegrityError, UnsafeContentError
from imagelock.formats.oci import (
    MT_CONFIG,
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER_GZIP,
    MT_DOCKER_LAYER_TAR,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_INDEX,
    MT_LAYER_GZIP,
    MT_LAYER_TAR,
    MT_LAYER_ZSTD,
    MT_MANIFEST,
)

# The largest manifest, index or config we read. Real ones are kilobytes; a bigger "document"
# is an attempt to exhaust memory.
MAX_DOCUMENT = 4 << 20

MANIFEST_TYPES = frozenset({MT_MANIFEST, MT_DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MT_INDEX, MT_DOCKER_LIST})
CONFIG_TYPES = frozenset({MT_CONFIG, MT_DOCKER_CONFIG})
LAYER_TYPES = frozenset(
    {MT_LAYER_TAR, MT_LAYER_GZIP, MT_LAYER_ZSTD, MT_DOCKER_LAYER_GZIP, MT_DOCKER_LAYER_TAR}
)
UNCOMPRESSED_LAYER_TYPES = frozenset({MT_LAYER_TAR, MT_DOCKER_LAYER_TAR})

M = TypeVar("M", bound=BaseModel)


def digest_hex(digest: str, what: str) -> str:
    """The hex of a `sha256:` digest that will name a file; refuses anything that could be a path
    or another algorithm."""
    if "/" in digest or "\\" in digest or ".." in digest or "\0" in digest:
        raise UnsafeContentError(
            f"{what} has the digest {digest!r}, which would name a file outside the blob store",
            hint="the image was crafted to read files it does not own: do not use it",
        )
    if not DIGEST.match(digest):
        raise InputError(
            f"{what} has the digest {digest!r}; imagelock reads sha256 digests only",
            hint="re-save the image with a tool that writes sha256 digests (skopeo copy)",
        )
    return digest[len("sha256:") :]


def check_media_type(media_type: str, allowed: frozenset[str], what: str) -> None:
    if media_type not in allowed:
        raise InputError(
            f"{what} has the unknown media type {media_type!r}",
            hint="imagelock reads OCI and Docker v2 images: expected one of "
            + ", ".join(sorted(allowed)),
        )


def check_size(actual: int, expected: int, what: str, where: str) -> None:
    """Refuse a blob whose stored size differs from its descriptor's, before reading it."""
    if actual > expected:
        raise IntegrityError(
            f"{what} in {where} has {actual} bytes, more than the {expected} its descriptor says",
            hint="the image was altered after it was written: get it again from its source",
        )
    if actual < expected:
        raise IntegrityError(
            f"{what} in {where} has {actual} bytes, fewer than the {expected} its descriptor "
            "says (truncated)",
            hint="the copy is incomplete: get it again from its source",
        )


def _mismatch(what: str, where: str, got: str, digest: str) -> IntegrityError:
    return IntegrityError(
        f"{what} in {where} has digest sha256:{got}, not the {digest} its descriptor says",
        hint="the blob was altered or corrupted: get the image again from its source and do "
        "not use this copy",
    )


class Region(io.RawIOBase):
    """`size` bytes of an open file from `offset` (a member of an uncompressed tar)."""

    def __init__(self, path: str | os.PathLike[str], offset: int, size: int) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._pos = offset
        self._end = offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview | bytearray) -> int:  # type: ignore[override]
        want = min(len(buf), self._end - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._pos)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class _Verifying(io.RawIOBase):
    """Passes bytes through and raises at the end unless they were exactly the pinned ones."""

    def __init__(self, raw: io.RawIOBase, digest: str, size: int, what: str, where: str) -> None:
        super().__init__()
        self._raw = raw
        self._h = hashlib.sha256()
        self._digest = digest
        self._size = size
        self._n = 0
        self._what = what
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview | bytearray) -> int:  # type: ignore[override]
        n = self._raw.readinto(buf) or 0
        self._n += n
        if self._n > self._size:
            raise IntegrityError(
                f"{self._what} in {self._where} is longer than the {self._size} bytes its "
                "descriptor says",
                hint="the blob changed after it was checked: get the image again",
            )
        if n:
            self._h.update(memoryview(buf)[:n])
            return n
        if self._n != self._size:
            raise IntegrityError(
                f"{self._what} in {self._where} ended after {self._n} of {self._size} bytes",
                hint="the blob changed after it was checked: get the image again",
            )
        if "sha256:" + self._h.hexdigest() != self._digest:
            raise _mismatch(self._what, self._where, self._h.hexdigest(), self._digest)
        return 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def verified(raw: io.RawIOBase, digest: str, size: int, what: str, where: str) -> BinaryIO:
    """A buffered stream over `raw` that raises IntegrityError at its end unless the bytes match."""
    return io.BufferedReader(_Verifying(raw, digest, size, what, where), CHUNK)


def check_stream(
    open_raw: Callable[[], io.RawIOBase], digest: str, size: int, what: str, where: str
) -> None:
    """Hash a whole blob now (streamed), so a bad blob is refused when the image is read."""
    with verified(open_raw(), digest, size, what, where) as f:
        while f.read(CHUNK):
            pass


def read_document(
    open_raw: Callable[[], io.RawIOBase],
    digest: str,
    size: int,
    what: str,
    where: str,
    limit: int = MAX_DOCUMENT,
) -> bytes:
    """A JSON document (manifest, index, config) checked against its descriptor, into memory."""
    check_document_size(size, what, where, limit)
    with verified(open_raw(), digest, size, what, where) as f:
        data = f.read(size)
        if f.read(1):  # pragma: no cover - the verifying stream raises first
            raise _mismatch(what, where, "?", digest)
    return data


def check_document_size(size: int, what: str, where: str, limit: int = MAX_DOCUMENT) -> None:
    if size > limit:
        raise UnsafeContentError(
            f"{what} in {where} claims {size} bytes; imagelock reads JSON documents of at most "
            f"{limit} bytes",
            hint="no real manifest, index or config is this large: do not use this image",
        )


def read_limited(f: BinaryIO, what: str, where: str, limit: int = MAX_DOCUMENT) -> bytes:
    """A document with no descriptor (index.json, manifest.json): read, up to `limit` bytes."""
    data = f.read(limit + 1)
    if len(data) > limit:
        raise UnsafeContentError(
            f"{what} in {where} is larger than {limit} bytes",
            hint="no real index is this large: do not use this image",
        )
    return data


def hash_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the key {k!r} appears twice")
        out[k] = v
    return out


def parse_json(data: bytes, what: str, where: str) -> Any:
    """JSON that every reader reads the same way: UTF-8, no duplicate keys (a duplicate would let
    two tools see two different images in one document)."""
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{what} in {where} is not valid JSON: {e}",
                         hint="the image is damaged or was not written by an OCI tool") from e


def parse_model(model: type[M], data: bytes, what: str, where: str) -> M:
    """A document parsed into its model; the reason it does not fit is named."""
    value = parse_json(data, what, where)
    if not isinstance(value, dict):
        raise InputError(f"{what} in {where} is not a JSON object",
                         hint="the image is damaged or was not written by an OCI tool")
    # One document must be one kind: a manifest that also lists manifests is ambiguous.
    if "manifests" in value and ("layers" in value or "config" in value):
        raise InputError(f"{what} in {where} is both a manifest and an index",
                         hint="the document was crafted to be read two ways: do not use it")
    _refuse_path_digests(value, what)
    try:
        return model.model_validate(value)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()
        )
        raise InputError(f"{what} in {where} is not a valid {model.__name__}: {problems}",
                         hint="the image is damaged or was not written by an OCI tool") from e


def _refuse_path_digests(value: Any, what: str, depth: int = 0) -> None:
    """Name a digest that would escape the blob directory as what it is (not just "invalid")."""
    if depth > 8:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "digest" and isinstance(v, str):
                if "/" in v or "\\" in v or ".." in v:
                    digest_hex(v, f"a descriptor in {what}")
            else:
                _refuse_path_digests(v, what, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _refuse_path_digests(v, what, depth + 1)
