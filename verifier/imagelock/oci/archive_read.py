"""Reading a docker-archive (`docker save`, `podman save`, `skopeo copy docker-archive:`) into
the `Image` model, trusting none of it.

Two formats share the name. The classic one holds manifest.json, the config and each layer as an
uncompressed tar (`<x>.tar`, or `<id>/layer.tar`, often a symlink to another member). The newer
one (Docker 25 and later) also embeds an OCI layout (oci-layout, index.json, blobs/sha256/...):
when it is there it is read as a layout, since it carries the real manifest.

The archive is never extracted: it is indexed once, and each member is read in place by offset,
so nothing is written to disk and no member name is ever used as a path. Member names that are
absolute or climb out with `..`, links that leave the archive, duplicate names and device nodes
are refused.

What a classic archive gives the model. It has no distribution manifest, only the config and the
layer tars, so:
- `Image.config` is the archive's config (its digest is the image ID, the content identity);
- each layer is `Blob(digest=<diff_id>, size=<tar size>, media_type=MT_LAYER_TAR)`, its bytes
  streamed from the archive and checked against the diff_id as they are read: a comparer gets
  diff_ids and layer contents directly;
- `Image.manifest` is made up: canonical JSON of an OCI manifest over the config and those tar
  layers. Its digest is not a published identity; compare configs and diff_ids instead.
- `Blob.path` is None and `Image.layer_tars` is empty (the tars live inside the archive).
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from dataclasses import dataclass
from pathlib import Path

from imagelock.core.digest import canonical_json, is_sha256_hex
from imagelock.core.errors import InputError, IntegrityError, UnsafeContentError
from imagelock.formats.oci import MT_CONFIG, MT_LAYER_TAR, MT_MANIFEST, ConfigDoc, Platform
from imagelock.oci.blobio import (
    MAX_DOCUMENT,
    Region,
    check_stream,
    hash_digest,
    parse_json,
    parse_model,
    read_limited,
    verified,
)
from imagelock.oci.image import Blob, Image
from imagelock.oci.layout_read import IMAGE_NAME, choose, read_entry, read_index
from imagelock.oci.platform import describe, matches, platform_string

MAX_MEMBERS = 100_000
MAX_LINK_HOPS = 8
_COMPRESSED = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ": "xz", b"BZh": "bzip2"}


@dataclass(frozen=True)
class _Member:
    offset: int
    size: int
    link: str | None = None  # for a link: the member it points to, archive-relative


class TarSource:
    """The members of an uncompressed tar, by name, readable in place."""

    def __init__(self, path: Path) -> None:
        self.file = path
        self.where = f"docker-archive {path}"
        self._members = _index(path, self.where)

    def _resolve(self, name: str) -> _Member | None:
        seen = 0
        m = self._members.get(name)
        while m is not None and m.link is not None:
            seen += 1
            if seen > MAX_LINK_HOPS:
                raise UnsafeContentError(f"{name} in {self.where} is a loop of links",
                                         hint="the archive was crafted: do not use it")
            m = self._members.get(m.link)
        return m

    def size(self, name: str) -> int | None:
        m = self._resolve(name)
        return m.size if m is not None else None

    def open_raw(self, name: str) -> io.RawIOBase:
        m = self._resolve(name)
        if m is None:
            raise InputError(f"{name} is missing from {self.where}")
        return Region(self.file, m.offset, m.size)

    def path(self, name: str) -> Path | None:
        return None


def read_docker_archive(
    path: str | os.PathLike[str], *, ref: str | None = None, platform: str | None = None
) -> Image:
    """Read the image tagged `ref` (`name:tag`, or the only one) from the archive at `path`."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file} is not a file", hint="give the tar `docker save` wrote")
    src = TarSource(file)
    if src.size("oci-layout") is not None and src.size("index.json") is not None:
        return _read_embedded_layout(src, ref=ref, platform=platform)
    return _read_classic(src, ref=ref, platform=platform)


def _read_embedded_layout(src: TarSource, *, ref: str | None, platform: str | None) -> Image:
    index = read_index(src)
    entries = index.manifests
    if ref is not None:
        # docker save names images by their full name; the short tag is kept as ref.name.
        named = [d for d in entries if _same_name((d.annotations or {}).get(IMAGE_NAME, ""), ref)]
        if named:
            entries, ref = named, None
    desc = choose(entries, ref=ref, platform=platform, where=src.where)
    return read_entry(src, desc, platform=platform)


def _read_classic(src: TarSource, *, ref: str | None, platform: str | None) -> Image:
    if src.size("manifest.json") is None:
        raise InputError(f"{src.where} has no manifest.json",
                         hint="is this a docker-archive (`docker save`, `skopeo copy docker-archive:`)?")
    with io.BufferedReader(src.open_raw("manifest.json")) as f:
        entries = parse_json(read_limited(f, "manifest.json", src.where), "manifest.json", src.where)
    entry = _choose_entry(entries, ref, src.where)
    config_name = _member_name(entry.get("Config"), "manifest.json Config", src.where)
    config = _config(src, config_name)
    cfg = parse_model(ConfigDoc, config, f"config {config_name}", src.where)
    variant = parse_json(config, "config", src.where).get("variant")
    got = Platform(os=cfg.os, architecture=cfg.architecture,
                   variant=variant if isinstance(variant, str) else None)
    if platform is not None and not matches(got, platform):
        raise InputError(f"the image in {src.where} is for {describe(got)}, not {platform}",
                         hint="ask for the platform the image has (--platform)")
    names = entry.get("Layers")
    if not isinstance(names, list):
        raise InputError(f"manifest.json in {src.where} has no Layers list",
                         hint="the archive is damaged: save it again")
    diff_ids = cfg.rootfs.diff_ids
    if len(names) != len(diff_ids):
        raise InputError(
            f"manifest.json in {src.where} lists {len(names)} layers but the config has "
            f"{len(diff_ids)} diff_ids",
            hint="the archive is inconsistent: do not use it",
        )
    layers = [
        _layer(src, _member_name(n, f"manifest.json layer {i}", src.where), d, i)
        for i, (n, d) in enumerate(zip(names, diff_ids, strict=True))
    ]
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": hash_digest(config), "size": len(config)},
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": b.size} for b in layers],
    })
    tags = entry.get("RepoTags")
    first = tags[0] if isinstance(tags, list) and tags else None
    name, tag = _split_tag(first) if isinstance(first, str) else ("", "")
    return Image(manifest=manifest, config=config, layers=layers, name=name, tag=tag,
                 platform=platform_string(got.os, got.architecture, got.variant))


def _choose_entry(entries: object, ref: str | None, where: str) -> dict[str, object]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) or not entries:
        raise InputError(f"manifest.json in {where} is not a list of images",
                         hint="the archive is damaged: save it again")
    if ref is not None:
        found = [e for e in entries
                 if any(isinstance(t, str) and _same_name(t, ref) for t in e.get("RepoTags") or [])]
    else:
        found = entries
    if len(found) == 1:
        return found[0]  # type: ignore[no-any-return]
    tags = sorted(t for e in entries for t in e.get("RepoTags") or [] if isinstance(t, str))
    raise InputError(
        f"{where} holds {'no image tagged ' + repr(ref) if not found else f'{len(found)} images'}",
        hint="name one of its images: " + (", ".join(tags) or "(none are tagged)")
        + " (docker-archive:FILE:NAME:TAG)",
    )


def _config(src: TarSource, name: str) -> bytes:
    size = src.size(name)
    if size is None:
        raise InputError(f"the config {name} is missing from {src.where}",
                         hint="the archive is incomplete: save it again")
    if size > MAX_DOCUMENT:
        raise UnsafeContentError(
            f"the config {name} in {src.where} has {size} bytes; imagelock reads JSON documents "
            f"of at most {MAX_DOCUMENT} bytes", hint="no real config is this large: do not use it")
    with io.BufferedReader(src.open_raw(name)) as f:
        data = f.read()
    # The name is the image ID (sha256 of the config) in every writer: hold it to that.
    stem = posixpath.basename(name).removesuffix(".json")
    if is_sha256_hex(stem) and hash_digest(data) != "sha256:" + stem:
        raise IntegrityError(
            f"the config {name} in {src.where} has digest {hash_digest(data)}, not the one "
            "its name says", hint="the archive was altered: do not use it")
    return data


def _layer(src: TarSource, name: str, diff_id: str, i: int) -> Blob:
    what = f"layer {i} ({name})"
    size = src.size(name)
    if size is None:
        raise InputError(f"{what} is missing from {src.where}",
                         hint="the archive is incomplete: save it again")
    # The layer's descriptor is its diff_id: the config pins the uncompressed tar.
    try:
        check_stream(lambda: src.open_raw(name), diff_id, size, what, src.where)
    except IntegrityError:
        with src.open_raw(name) as raw:
            magic = raw.read(4) or b""
        for prefix, kind in _COMPRESSED.items():
            if magic.startswith(prefix):
                raise InputError(
                    f"{what} in {src.where} is {kind}-compressed; imagelock reads "
                    "docker-archives with uncompressed layers",
                    hint="save it again with docker save or skopeo copy docker-archive:",
                ) from None
        raise
    return Blob(diff_id, size, MT_LAYER_TAR,
                opener=lambda: verified(src.open_raw(name), diff_id, size, what, src.where))


def _split_tag(repo_tag: str) -> tuple[str, str]:
    name, sep, tag = repo_tag.rpartition(":")
    if not sep or "/" in tag:
        return repo_tag, ""
    return name, tag


def _short(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "localhost/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _same_name(a: str, b: str) -> bool:
    return a == b or _short(a) == _short(b)


def _member_name(value: object, what: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{what} in {where} is not a member name",
                         hint="the archive is damaged: save it again")
    return _safe(value, what, where)


def _safe(name: str, what: str, where: str) -> str:
    """An archive-relative member name, or UnsafeContentError for one that climbs out."""
    if name.startswith("/") or "\0" in name or ".." in name.split("/"):
        raise UnsafeContentError(
            f"{what} in {where} has the name {name!r}, which leaves the archive",
            hint="the archive was crafted to write outside where it is unpacked: do not use it",
        )
    return posixpath.normpath(name).lstrip("/") if name not in (".", "./") else ""


def _index(path: Path, where: str) -> dict[str, _Member]:
    """Every member of the tar by name, links resolved to archive-relative names."""
    with open(path, "rb") as f:
        head = f.read(6)
    for prefix, kind in _COMPRESSED.items():
        if head.startswith(prefix):
            raise InputError(f"{where} is {kind}-compressed",
                             hint="decompress it first; docker-archives are plain tars")
    members: dict[str, _Member] = {}
    try:
        with tarfile.open(path, "r:") as tf:
            for n, ti in enumerate(tf):
                if n >= MAX_MEMBERS:
                    raise UnsafeContentError(f"{where} has more than {MAX_MEMBERS} members",
                                             hint="no image archive has this many: do not use it")
                name = _safe(ti.name, f"member {ti.name!r}", where)
                if not name or ti.isdir():
                    continue
                if name in members:
                    raise UnsafeContentError(
                        f"{where} holds {name!r} twice",
                        hint="readers disagree about which copy counts: do not use this archive",
                    )
                if ti.isreg() and not ti.issparse():
                    members[name] = _Member(ti.offset_data, ti.size)
                elif ti.issym():
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(name), ti.linkname))
                    members[name] = _Member(0, 0, _safe(target, f"the link {name!r}", where))
                elif ti.islnk():
                    members[name] = _Member(0, 0, _safe(ti.linkname, f"the link {name!r}", where))
                else:
                    raise UnsafeContentError(
                        f"member {name!r} of {where} is a device, fifo or sparse file",
                        hint="an image archive holds only files, directories and links")
    except tarfile.TarError as e:
        raise InputError(f"{where} is not a readable tar: {e}",
                         hint="is this a docker-archive? It may be truncated") from e
    return members

