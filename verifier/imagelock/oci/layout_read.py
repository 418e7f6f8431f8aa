"""Reading an OCI image layout (`oci:DIR[:NAME]`) into the `Image` model, trusting none of it.

The layout is read through a `BlobSource`, so the same code reads a layout directory and the
layout that newer `docker save` embeds in its archive. The image is chosen by its
`org.opencontainers.image.ref.name`, or is the only one; an image index is followed to the
platform asked for. Every document and blob is checked against its descriptor (media type, size,
sha256) before the image is returned, and the returned blobs check themselves again as they are
read, so a blob changed afterwards is still caught.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from imagelock.core.errors import InputError, UnsafeContentError
from imagelock.formats.oci import REF_NAME, ConfigDoc, Descriptor, Index, Manifest, Platform
from imagelock.oci.blobio import (
    CONFIG_TYPES,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    check_media_type,
    check_size,
    check_stream,
    digest_hex,
    parse_json,
    parse_model,
    read_document,
    read_limited,
    verified,
)
from imagelock.oci.image import Blob, Image
from imagelock.oci.platform import DEFAULT_PLATFORM, describe, matches, pick, platform_string

# How deep an index may nest indexes before we call it a loop.
MAX_INDEX_DEPTH = 4
IMAGE_NAME = "io.containerd.image.name"


class BlobSource(Protocol):
    """Files of a layout by their names relative to its root (`index.json`, `blobs/sha256/X`)."""

    where: str  # for messages: "OCI layout /srv/img"

    def size(self, name: str) -> int | None:
        """The stored size of `name`, or None when it is missing."""

    def open_raw(self, name: str) -> io.RawIOBase:
        """An unbuffered stream of `name`'s bytes."""

    def path(self, name: str) -> Path | None:
        """A file holding exactly `name`'s bytes, when there is one (lets writers hardlink)."""


class DirSource:
    """A layout directory. Names resolve inside it or not at all."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.where = f"OCI layout {root}"

    def _file(self, name: str) -> Path | None:
        p = (self.root / name).resolve()
        if not p.is_relative_to(self.root):
            raise UnsafeContentError(
                f"{name} in {self.where} leads outside the layout (to {p})",
                hint="a layout's blobs must be files inside it: do not use this layout",
            )
        return p if p.is_file() else None

    def size(self, name: str) -> int | None:
        p = self._file(name)
        return p.stat().st_size if p is not None else None

    def open_raw(self, name: str) -> io.RawIOBase:
        p = self._file(name)
        if p is None:
            raise InputError(f"{name} is missing from {self.where}")
        return io.FileIO(p, "r")

    def path(self, name: str) -> Path | None:
        return self._file(name)


def read_layout(
    path: str | os.PathLike[str], *, ref: str | None = None, platform: str | None = None
) -> Image:
    """Read the image named `ref` (or the only one) for `platform` from the layout at `path`.

    `platform` None means linux/amd64 when the layout offers a choice, and whatever the single
    image is otherwise; a platform given explicitly must be the image's.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root} is not a directory holding an OCI layout",
                         hint="give the directory `imagelock build -o DIR` or `skopeo copy oci:DIR` wrote")
    return read_oci(DirSource(root), ref=ref, platform=platform)


def read_oci(source: BlobSource, *, ref: str | None, platform: str | None) -> Image:
    """The generic layout reader: marker, index.json, choice, then the checked image."""
    index = read_index(source)
    desc = choose(index.manifests, ref=ref, platform=platform, where=source.where)
    return read_entry(source, desc, platform=platform)


def read_entry(source: BlobSource, desc: Descriptor, *, platform: str | None) -> Image:
    """The image an entry of index.json leads to, through nested indexes to the platform."""
    annotations = desc.annotations or {}
    tag, name = annotations.get(REF_NAME, ""), annotations.get(IMAGE_NAME, "")
    for _ in range(MAX_INDEX_DEPTH):
        if desc.media_type not in INDEX_TYPES:
            break
        what = f"image index {desc.digest}"
        sub = parse_model(Index, document(source, desc, what), what, source.where)
        desc = pick(sub.manifests, platform or DEFAULT_PLATFORM, f"{what} in {source.where}")
    else:
        raise InputError(f"image indexes in {source.where} nest deeper than {MAX_INDEX_DEPTH}",
                         hint="the layout loops or was crafted: do not use it")
    check_media_type(desc.media_type, MANIFEST_TYPES, f"manifest {desc.digest}")
    manifest = document(source, desc, f"manifest {desc.digest}")
    return image_from_manifest(source, manifest, desc, platform=platform, name=name, tag=tag)


def choose(
    descriptors: list[Descriptor], *, ref: str | None, platform: str | None, where: str
) -> Descriptor:
    """The index entry named `ref`, or the only one, or the one for the platform."""
    if ref is not None:
        found = [d for d in descriptors if (d.annotations or {}).get(REF_NAME) == ref]
        if not found:
            names = sorted({(d.annotations or {}).get(REF_NAME, "") for d in descriptors} - {""})
            raise InputError(
                f"{where} holds no image named {ref!r}",
                hint="it holds: " + (", ".join(names) or "images without names")
                + " (name one as oci:DIR:NAME)",
            )
    else:
        found = list(descriptors)
    if len(found) == 1:
        return found[0]
    images = [d for d in found if d.media_type in MANIFEST_TYPES | INDEX_TYPES]
    if not images:
        raise InputError(f"{where} holds no image manifest or index",
                         hint="is this the layout of an image (not of an artifact)?")
    if len(images) == 1:
        return images[0]
    return pick(images, platform or DEFAULT_PLATFORM, where)


def image_from_manifest(
    source: BlobSource,
    manifest: bytes,
    desc: Descriptor,
    *,
    platform: str | None,
    name: str = "",
    tag: str = "",
) -> Image:
    """Check a manifest's config and layers in `source` and return the image they make."""
    what = f"manifest {desc.digest}"
    m = parse_model(Manifest, manifest, what, source.where)
    if m.media_type is not None and m.media_type != desc.media_type:
        raise InputError(
            f"{what} in {source.where} says it is {m.media_type} but is listed as "
            f"{desc.media_type}",
            hint="the image was crafted or damaged: do not use it",
        )
    check_media_type(m.config.media_type, CONFIG_TYPES, f"config {m.config.digest}")
    config = document(source, m.config, f"config {m.config.digest}")
    cfg = parse_model(ConfigDoc, config, f"config {m.config.digest}", source.where)
    if len(cfg.rootfs.diff_ids) != len(m.layers):
        raise InputError(
            f"{what} in {source.where} lists {len(m.layers)} layers but its config has "
            f"{len(cfg.rootfs.diff_ids)} diff_ids",
            hint="the image is inconsistent: do not use it",
        )
    variant = parse_json(config, "config", source.where).get("variant")
    got = Platform(os=cfg.os, architecture=cfg.architecture,
                   variant=variant if isinstance(variant, str) else None)
    check_platform(got, desc.platform, platform, what, source.where)
    layers = [layer_blob(source, d, f"layer {i} ({d.digest})") for i, d in enumerate(m.layers)]
    return Image(manifest=manifest, config=config, layers=layers, name=name, tag=tag,
                 platform=platform_string(got.os, got.architecture, got.variant))


def check_platform(
    got: Platform, listed: Platform | None, wanted: str | None, what: str, where: str
) -> None:
    """The config's platform must be the one the index promised and the one asked for."""
    if listed is not None and (listed.os, listed.architecture) != (got.os, got.architecture):
        raise InputError(
            f"{what} in {where} is listed for {describe(listed)} but its config is for "
            f"{describe(got)}",
            hint="the index was crafted or damaged: do not use it",
        )
    if wanted is not None and not matches(got, wanted):
        raise InputError(f"{what} in {where} is for {describe(got)}, not {wanted}",
                         hint="ask for the platform the image has (--platform)")


def blob_name(digest: str, what: str) -> str:
    return f"blobs/sha256/{digest_hex(digest, what)}"


def document(source: BlobSource, desc: Descriptor, what: str) -> bytes:
    """A manifest, index or config blob: present, of its descriptor's size and digest."""
    name = _present(source, desc, what)
    return read_document(lambda: source.open_raw(name), desc.digest, desc.size, what, source.where)


def layer_blob(source: BlobSource, desc: Descriptor, what: str) -> Blob:
    """A layer, hashed now (streamed) and again whenever it is opened."""
    check_media_type(desc.media_type, LAYER_TYPES, what)
    name = _present(source, desc, what)
    check_stream(lambda: source.open_raw(name), desc.digest, desc.size, what, source.where)
    return Blob(desc.digest, desc.size, desc.media_type, path=source.path(name),
                opener=_opener(source, name, desc.digest, desc.size, what))


def _opener(
    source: BlobSource, name: str, digest: str, size: int, what: str
) -> Callable[[], BinaryIO]:
    return lambda: verified(source.open_raw(name), digest, size, what, source.where)


def _present(source: BlobSource, desc: Descriptor, what: str) -> str:
    name = blob_name(desc.digest, what)
    size = source.size(name)
    if size is None:
        raise InputError(
            f"{what} is missing from {source.where} ({name})",
            hint="the image is incomplete: copy it again from its source (skopeo copy, "
            "imagelock pull)",
        )
    check_size(size, desc.size, what, source.where)
    return name


def read_index(source: BlobSource) -> Index:
    """index.json of a layout whose oci-layout marker is one we read."""
    _check_marker(source)
    return parse_model(Index, _root_doc(source, "index.json"), "index.json", source.where)


def _root_doc(source: BlobSource, name: str) -> bytes:
    if source.size(name) is None:
        raise InputError(f"{source.where} has no {name}",
                         hint="is this an OCI image layout (oci-layout, index.json, blobs/)?")
    with io.BufferedReader(source.open_raw(name)) as f:
        return read_limited(f, name, source.where)


def _check_marker(source: BlobSource) -> None:
    doc = parse_json(_root_doc(source, "oci-layout"), "oci-layout", source.where)
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith("1."):
        raise InputError(f"{source.where} has image layout version {version!r}; imagelock reads 1.x",
                         hint="convert it with skopeo copy to oci:DIR")
