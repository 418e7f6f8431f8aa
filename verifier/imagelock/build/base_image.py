"""A base image outside the set, as the bottom of a child's build: its blobs, checked, are the
child's first layers byte for byte, and its layers' entries are the tree the child is placed on.

Each layer blob is checked against its pinned digest before it is read, and the tar inside
against its pinned diff_id while it is read; members are staged under the build's scratch
directory and never written outside it. Refused, naming the base and the member: `..` or
absolute paths, links leaving the root, device nodes, whiteouts (a base that deletes a lower
layer's files is not supported), more than MAX_ENTRIES members in a layer, more than
MAX_LAYER_BYTES of tar in a layer.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from pathlib import Path
from typing import BinaryIO

from imagelock.core.digest import CHUNK
from imagelock.core.errors import InputError, IntegrityError, UnsafeContentError
from imagelock.fetch.store import Store
from imagelock.formats.lock import BaseImagePin
from imagelock.formats.oci import MT_LAYER_GZIP
from imagelock.oci.blobio import digest_hex
from imagelock.oci.image import Blob, Image
from imagelock.tar.entry import Entry, FileContent, symlink_stays_inside

MAX_ENTRIES = 1_000_000
MAX_LAYER_BYTES = 32 << 30
_TAR_TYPES = {"application/vnd.oci.image.layer.v1.tar",
              "application/vnd.docker.image.rootfs.diff.tar"}
_GZIP_TYPES = {MT_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar.gzip"}


class _Hashing:
    """A reader that hashes and counts what passes through it, up to a bound."""

    def __init__(self, f: BinaryIO, what: str) -> None:
        self.f, self.h, self.n, self.what = f, hashlib.sha256(), 0, what

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.n += len(data)
        if self.n > MAX_LAYER_BYTES:
            raise UnsafeContentError(f"{self.what} holds more than {MAX_LAYER_BYTES} bytes of tar")
        self.h.update(data)
        return data


def base_built(pin: BaseImagePin, store: Store, workdir: Path,
               platforms: list[str]) -> tuple[list[Image], dict[str, dict[str, list[Entry]]]]:
    """The base image for each of `platforms`, and its layers' entries (see the module doc)."""
    images, entries = [], {}
    for platform in platforms:
        p = pin.platforms.get(platform)
        if p is None:
            raise InputError(f"base image {pin.ref} has no {platform}", field="parent",
                             hint="build the image for the base's platforms: "
                             + ", ".join(pin.platforms))
        what = f"base image {pin.ref}"
        manifest = store.verify(digest_hex(p.manifest_digest, what), p.manifest_size,
                                f"manifest of {what}").read_bytes()
        config = store.verify(digest_hex(p.config_digest, what), p.config_size,
                              f"config of {what}").read_bytes()
        blobs, per_layer = [], {}
        for i, la in enumerate(p.layers):
            lwhat = f"layer {i} ({la.digest}) of {what}"
            path = store.verify(digest_hex(la.digest, lwhat), la.size, lwhat)
            blobs.append(Blob(la.digest, la.size, la.media_type, path=path))
            per_layer[f"base-layer-{i}"] = _entries(path, la.media_type, la.diff_id,
                                                    workdir / f"base-{platform.replace('/', '-')}-{i}",
                                                    lwhat)
        images.append(Image(manifest=manifest, config=config, layers=blobs, name=pin.ref,
                            tag="", platform=platform))
        entries[platform] = per_layer
    return images, entries


def base_layer_names(pin: BaseImagePin) -> list[str]:
    """The names a base's layers have in a child's lock (`base-layer-0`, ...)."""
    n = len(next(iter(pin.platforms.values())).layers) if pin.platforms else 0
    return [f"base-layer-{i}" for i in range(n)]


def _entries(blob: Path, media_type: str, diff_id: str, staging: Path, what: str) -> list[Entry]:
    if media_type not in _GZIP_TYPES | _TAR_TYPES:
        raise InputError(f"{what} is {media_type}: a base's layers must be tar or tar+gzip")
    staging.mkdir(parents=True, exist_ok=True)
    out: list[Entry] = []
    files: set[str] = set()
    with open(blob, "rb") as raw:
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if media_type in _GZIP_TYPES \
            else raw  # type: ignore[assignment]
        hashing = _Hashing(stream, what)
        try:
            with tarfile.open(fileobj=hashing, mode="r|") as tf:  # type: ignore[call-overload]
                for m in tf:
                    if len(out) >= MAX_ENTRIES:
                        raise UnsafeContentError(f"{what} has more than {MAX_ENTRIES} members")
                    out.append(_entry(tf, m, staging, len(out), files, what))
            while hashing.read(CHUNK):  # the tar's padding after its end counts in the diff_id
                pass
        except (tarfile.TarError, OSError, EOFError) as e:
            raise InputError(f"{what} is not a readable layer: {e}") from None
    if f"sha256:{hashing.h.hexdigest()}" != diff_id:
        raise IntegrityError(f"{what}: its tar hashes to sha256:{hashing.h.hexdigest()}, not to "
                             f"the diff_id {diff_id} its config pins")
    return out


def _entry(tf: tarfile.TarFile, m: tarfile.TarInfo, staging: Path, n: int, files: set[str],
           what: str) -> Entry:
    parts = [p for p in m.name.split("/") if p not in ("", ".")]
    if m.name.startswith("/") or ".." in parts or not parts:
        raise UnsafeContentError(f"{what}: member {m.name!r} is not a path inside the image")
    if parts[-1].startswith(".wh."):
        raise InputError(f"{what}: member {m.name!r} is a whiteout; a base image that deletes "
                         "files of its lower layers is not supported", field="parent")
    path = "/".join(parts)
    mode = m.mode & 0o7777
    if m.isdir():
        return Entry(path=path, type="dir", mode=mode, uid=m.uid, gid=m.gid)
    if m.issym():
        if not symlink_stays_inside(path, m.linkname):
            raise UnsafeContentError(f"{what}: symlink {m.name!r} -> {m.linkname!r} escapes the root")
        return Entry(path=path, type="symlink", mode=0o777, uid=m.uid, gid=m.gid,
                     linkname=m.linkname)
    if m.islnk():
        target = "/".join(p for p in m.linkname.split("/") if p not in ("", "."))
        if target not in files:
            raise UnsafeContentError(f"{what}: hardlink {m.name!r} -> {m.linkname!r} names no "
                                     "earlier file of the layer")
        return Entry(path=path, type="hardlink", mode=mode, uid=m.uid, gid=m.gid, linkname=target)
    if m.isreg():
        staged = staging / f"{n:08d}"
        src = tf.extractfile(m)
        assert src is not None
        with open(staged, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
        os.chmod(staged, 0o600)
        files.add(path)
        return Entry(path=path, type="file", mode=mode, uid=m.uid, gid=m.gid,
                     content=FileContent(staged, m.size))
    raise UnsafeContentError(f"{what}: member {m.name!r} is a device node or special file")
