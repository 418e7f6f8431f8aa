"""Tampered copies of an image, for the comparison tests: change one thing, keep the rest.

A layer is read into members that keep their raw header bytes; an edit replaces only the header
fields it means to change (a raw header edit with a fresh checksum) or the content, so an
untouched member is written back byte for byte. The new tar is gzipped with Python's gzip
(another encoder than the builder's), and config and manifest are rewritten with the new
digests, so the only difference is the intended one. Test images are small: a layer is held in
memory here, which the code under test never does.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import zstandard
from imagelock.core.digest import canonical_json, sha256_digest
from imagelock.formats.oci import MT_LAYER_GZIP, MT_LAYER_TAR
from imagelock.oci.image import Blob, Image
from imagelock.tar.compress import gunzip_chunks
from imagelock.tar.writer import END_OF_ARCHIVE, entry_header, padding, pax_records, ustar_header

BLOCK = 512
# USTAR header fields: offset, width.
FIELDS = {"name": (0, 100), "mode": (100, 8), "uid": (108, 8), "gid": (116, 8),
          "size": (124, 12), "mtime": (136, 12), "typeflag": (156, 1), "linkname": (157, 100),
          "uname": (265, 32), "gname": (297, 32)}


@dataclass(frozen=True)
class Member:
    """One tar entry: its raw header block(s) and its content."""

    name: str  # as in the tar, e.g. `etc/passwd` (directories without the slash)
    header: bytes
    data: bytes


Edit = Callable[[list[Member]], list[Member]]


def layer_tar(blob: Blob) -> bytes:
    with blob.open() as f:
        return b"".join(gunzip_chunks(f))


def read_members(tar: bytes) -> list[Member]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        return [Member(m.name, tar[m.offset: m.offset_data],
                       tar[m.offset_data: m.offset_data + m.size] if m.isreg() else b"")
                for m in tf.getmembers()]


def write_tar(members: list[Member]) -> bytes:
    """Members as a tar ending the way the canonical writer ends one (two zero blocks)."""
    out = bytearray()
    for m in members:
        out += m.header + m.data + padding(len(m.data))
    return bytes(out + END_OF_ARCHIVE)


def patch_header(header: bytes, **values: int | str | bytes) -> bytes:
    """Rewrite fields of the (last, USTAR) header block and recompute its checksum."""
    block = bytearray(header[-BLOCK:])
    for name, value in values.items():
        off, width = FIELDS[name]
        if isinstance(value, int):
            raw = b"%0*o\0" % (width - 1, value)
        else:
            raw = (value.encode() if isinstance(value, str) else value).ljust(width, b"\0")
        assert len(raw) == width, (name, value)
        block[off: off + width] = raw
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return header[:-BLOCK] + bytes(block)


def _find(members: list[Member], path: str) -> int:
    name = path.lstrip("/")
    for i, m in enumerate(members):
        if m.name == name:
            return i
    raise KeyError(path)


def _edit_member(path: str, fn: Callable[[Member], Member]) -> Edit:
    def edit(members: list[Member]) -> list[Member]:
        i = _find(members, path)
        return [*members[:i], fn(members[i]), *members[i + 1:]]
    return edit


def change_byte(path: str, offset: int = 0) -> Edit:
    """Flip one bit of one byte of a file's content (same size, other sha256)."""
    def fn(m: Member) -> Member:
        data = bytearray(m.data)
        data[offset] ^= 0x01
        return replace(m, data=bytes(data))
    return _edit_member(path, fn)


def chmod(path: str, mode: int) -> Edit:
    return _edit_member(path, lambda m: replace(m, header=patch_header(m.header, mode=mode)))


def chown(path: str, uid: int, gid: int, uname: str = "", gname: str = "") -> Edit:
    return _edit_member(path, lambda m: replace(
        m, header=patch_header(m.header, uid=uid, gid=gid, uname=uname, gname=gname)))


def set_mtime(path: str, mtime: int) -> Edit:
    return _edit_member(path, lambda m: replace(m, header=patch_header(m.header, mtime=mtime)))


def add_file(path: str, data: bytes, *, mode: int = 0o644, mtime: int = 0) -> Edit:
    """Add a regular file, keeping the tar sorted by path as the canonical writer does."""
    name = path.lstrip("/")
    new = Member(name, entry_header(path=name, type="file", mode=mode, uid=0, gid=0,
                                    size=len(data), mtime=mtime), data)

    def edit(members: list[Member]) -> list[Member]:
        return sorted([*members, new], key=lambda m: m.name.encode())
    return edit


def remove(path: str) -> Edit:
    def edit(members: list[Member]) -> list[Member]:
        i = _find(members, path)
        return [*members[:i], *members[i + 1:]]
    return edit


def swap_entries(a: str, b: str) -> Edit:
    def edit(members: list[Member]) -> list[Member]:
        out = list(members)
        i, j = _find(out, a), _find(out, b)
        out[i], out[j] = out[j], out[i]
        return out
    return edit


def add_pax(path: str, records: dict[str, str]) -> Edit:
    """Put a PAX extended header with `records` before a member's header (e.g. an xattr)."""
    body = pax_records(records)
    ext = ustar_header(name=b"././@PaxHeader", mode=0, uid=0, gid=0, size=len(body), mtime=0,
                       typeflag=b"x") + body + padding(len(body))
    return _edit_member(path, lambda m: replace(m, header=ext + m.header))


def as_format(path: str, fmt: Literal[0, 1, 2]) -> Edit:
    """Rewrite one member's header with Python's tarfile in another format (GNU, PAX)."""
    def fn(m: Member) -> Member:
        info = tarfile.TarInfo.frombuf(m.header[-BLOCK:], "utf-8", "surrogateescape")
        info.name = m.name
        return replace(m, header=info.tobuf(fmt, "utf-8", "surrogateescape"))
    return _edit_member(path, fn)


# --- whole images ----------------------------------------------------------------------------

Encoding = Literal["gzip", "zstd", "none"]
MEDIA_TYPES = {"gzip": MT_LAYER_GZIP, "zstd": MT_LAYER_TAR + "+zstd", "none": MT_LAYER_TAR}


def _encode(tar: bytes, encoding: Encoding, level: int) -> bytes:
    if encoding == "gzip":
        return gzip.compress(tar, compresslevel=level, mtime=0)
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=level).compress(tar)
    return tar


def with_layers(image: Image, work: Path, layers: list[Blob | bytes], *,
                config_edit: Callable[[dict[str, Any]], None] | None = None,
                keep_diff_ids: bool = False, level: int = 6,
                encoding: Encoding = "gzip") -> Image:
    """`image` with these layers (a Blob is kept as is, bytes are an uncompressed tar encoded
    here), its config's diff_ids and its manifest's descriptors updated to match."""
    work.mkdir(parents=True, exist_ok=True)
    blobs, diff_ids = [], []
    old_ids = json.loads(image.config)["rootfs"]["diff_ids"]
    for _i, layer in enumerate(layers):
        if isinstance(layer, Blob):
            blobs.append(layer)
            diff_ids.append(old_ids[image.layers.index(layer)])
            continue
        data = _encode(layer, encoding, level)
        path = work / sha256_digest(data).split(":", 1)[1]
        path.write_bytes(data)
        blobs.append(Blob(sha256_digest(data), len(data), MEDIA_TYPES[encoding], path=path))
        diff_ids.append(sha256_digest(layer))
    config = json.loads(image.config)
    if not keep_diff_ids:
        config["rootfs"]["diff_ids"] = diff_ids
    if config_edit is not None:
        config_edit(config)
    config_b = canonical_json(config)
    manifest = json.loads(image.manifest)
    manifest["config"]["digest"] = sha256_digest(config_b)
    manifest["config"]["size"] = len(config_b)
    manifest["layers"] = [{"mediaType": b.media_type, "digest": b.digest, "size": b.size}
                          for b in blobs]
    return Image(manifest=canonical_json(manifest), config=config_b, layers=blobs,
                 name=image.name, tag=image.tag, platform=image.platform)


def edit_layer(image: Image, index: int, work: Path, *edits: Edit) -> Image:
    """`image` with layer `index` rewritten by `edits`, applied in order."""
    members = read_members(layer_tar(image.layers[index]))
    for edit in edits:
        members = edit(members)
    layers: list[Blob | bytes] = list(image.layers)
    layers[index] = write_tar(members)
    return with_layers(image, work, layers)


def edit_config(image: Image, work: Path, edit: Callable[[dict[str, Any]], None]) -> Image:
    return with_layers(image, work, list(image.layers), config_edit=edit)


def recompress(image: Image, work: Path, level: int = 9, encoding: Encoding = "gzip") -> Image:
    """The same layer tars compressed another way (by default Python's zlib at level 9): other
    blobs, same content."""
    return with_layers(image, work, [layer_tar(b) for b in image.layers], level=level,
                       encoding=encoding)


def swap_layers(image: Image, work: Path, i: int, j: int) -> Image:
    layers: list[Blob | bytes] = list(image.layers)
    layers[i], layers[j] = layers[j], layers[i]
    return with_layers(image, work, layers)


def replace_blob_keeping_config(image: Image, work: Path, index: int, *edits: Edit) -> Image:
    """A published image whose blob was swapped but whose config still claims the old diff_id:
    the config digest is unchanged, only the manifest names another blob."""
    members = read_members(layer_tar(image.layers[index]))
    for edit in edits:
        members = edit(members)
    layers: list[Blob | bytes] = list(image.layers)
    layers[index] = write_tar(members)
    return with_layers(image, work, layers, keep_diff_ids=True)


def with_blob_bytes(image: Image, work: Path, index: int, data: bytes) -> Image:
    """Layer `index` replaced by arbitrary stored bytes (not even gzip), config unchanged."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / sha256_digest(data).split(":", 1)[1]
    path.write_bytes(data)
    blobs = list(image.layers)
    blobs[index] = Blob(sha256_digest(data), len(data), MT_LAYER_GZIP, path=path)
    manifest = json.loads(image.manifest)
    manifest["layers"][index].update(digest=blobs[index].digest, size=len(data))
    return Image(manifest=canonical_json(manifest), config=image.config, layers=blobs,
                 name=image.name, tag=image.tag, platform=image.platform)
