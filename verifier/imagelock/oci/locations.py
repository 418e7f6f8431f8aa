"""One entry point for "an image, wherever it is": `oci:DIR[:NAME]`, `docker-archive:FILE[:NAME:TAG]`,
`docker://HOST/REPO[:TAG|@DIGEST]`, or a bare path (a directory is a layout, a file an archive).

The transports are written as skopeo writes them, so a user can pass the same string to both.
Whatever the source, the caller gets the same checked `Image`.
"""

from __future__ import annotations

import re
from pathlib import Path

from imagelock.core.errors import InputError
from imagelock.oci.image import Image
from imagelock.oci.layout_read import DirSource, read_index, read_layout
from imagelock.oci.platform import describe


def read_image(
    location: str | Path,
    *,
    platform: str | None = None,
    workdir: Path | None = None,
    insecure: bool = False,
) -> Image:
    """Read the image at `location`. A registry image is pulled into `workdir` (a new or empty
    directory: an OCI layout is written there and its blobs back the returned image), so
    `workdir` is needed for `docker://`."""
    text = registry_form(str(location))
    if text.startswith("docker://"):
        if workdir is None:
            raise InputError(f"reading {text} needs a directory to pull it into",
                             hint="internal: pass workdir= to read_image")
        # lazy: the registry client (requests) loads only for registry references
        from imagelock.oci.registry.transfer import (
            pull,  # the registry client is only loaded when it is used
        )

        return pull(text, workdir, platform=platform, insecure=insecure)
    transport, sep, rest = text.partition(":")
    if sep and transport == "oci":
        path, _, ref = rest.partition(":")
        return read_layout(path, ref=ref or None, platform=platform)
    if sep and transport == "docker-archive":
        path, _, ref = rest.partition(":")
        return _read_archive(Path(path), ref=ref or None, platform=platform)
    p = Path(text)
    if p.is_dir():
        return read_layout(p, platform=platform)
    if p.is_file():
        return _read_archive(p, ref=None, platform=platform)
    raise InputError(
        f"{text!r} is neither an image path nor a reference imagelock reads",
        hint="write oci:DIR[:NAME], docker-archive:FILE[:NAME:TAG] or docker://HOST/REPO:TAG",
    )


def _read_archive(path: Path, *, ref: str | None, platform: str | None) -> Image:
    # lazy: tarfile and the archive reader load only for docker-archives (not for a layout)
    from imagelock.oci.archive_read import read_docker_archive

    return read_docker_archive(path, ref=ref, platform=platform)


_REGISTRY_REF = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]+)?/[^:@]+(?::[A-Za-z0-9_][A-Za-z0-9_.-]*|@sha256:[0-9a-f]{64})$")


def registry_form(text: str) -> str:
    """`HOST[:PORT]/REPO:TAG` or `...@sha256:...` without a transport means the registry, unless
    a file or directory of that name exists."""
    if text.startswith(("docker://", "oci:", "docker-archive:")) or Path(text).exists():
        return text
    host = text.split("/", 1)[0]
    if _REGISTRY_REF.match(text) and ("." in host or ":" in host or host == "localhost"):
        return "docker://" + text
    return text


def local_path(location: str) -> Path | None:
    """The file or directory of a local image reference (for attestations kept beside it)."""
    text = registry_form(location)
    if text.startswith("docker://"):
        return None
    transport, sep, rest = text.partition(":")
    if sep and transport in ("oci", "docker-archive"):
        return Path(rest.partition(":")[0])
    return Path(text)


def index_platforms(location: str | Path) -> list[str]:
    """The platforms of a local OCI layout that holds one image per platform (what a
    multi-platform `build` writes: its index.json lists each platform's manifest), in index
    order; [] for a layout of one image, an archive, or a registry reference."""
    text = registry_form(str(location))
    transport, sep, rest = text.partition(":")
    if sep and transport == "oci":
        path, _, ref = rest.partition(":")
        if ref:
            return []  # a named image is one image
        root = Path(path)
    elif not sep and Path(text).is_dir():
        root = Path(text)
    else:
        return []
    listed = [describe(d.platform) for d in read_index(DirSource(root)).manifests
              if d.platform is not None]
    return listed if len(listed) > 1 and len(set(listed)) == len(listed) else []
