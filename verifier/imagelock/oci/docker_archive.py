"""The docker-archive format (`docker save` / `podman load`): one tar holding manifest.json, the
config as `<hex>.json` and each layer as an uncompressed `<diff_id hex>.tar`.

Layers are stored uncompressed, as `docker save` does, so every reader (podman, skopeo, docker)
takes them and the config digest (the image ID) is the same as in the OCI layout. The archive
itself is written with the canonical tar writer, so it too is deterministic.
"""

from __future__ import annotations

from pathlib import Path

from imagelock.core.atomic import atomic_file
from imagelock.core.digest import CHUNK, canonical_json
from imagelock.core.errors import InputError
from imagelock.oci.image import Image
from imagelock.tar.entry import BytesContent, Entry, FileContent
from imagelock.tar.writer import END_OF_ARCHIVE, entry_header, padding


def archive_entries(image: Image) -> list[Entry]:
    if len(image.layer_tars) != len(image.layers):
        raise InputError("internal: docker-archive output needs the uncompressed layer tars")
    cfg_hex = image.config_digest.split(":", 1)[1]
    import json

    diff_ids: list[str] = json.loads(image.config)["rootfs"]["diff_ids"]
    layer_names = [d.split(":", 1)[1] + ".tar" for d in diff_ids]
    repo_tag = f"{image.name}:{image.tag}" if image.name else None
    manifest = [
        {
            "Config": f"{cfg_hex}.json",
            "RepoTags": [repo_tag] if repo_tag else [],
            "Layers": layer_names,
        }
    ]
    entries = [
        Entry("manifest.json", "file", 0o644, content=BytesContent(canonical_json(manifest))),
        Entry(f"{cfg_hex}.json", "file", 0o644, content=BytesContent(image.config)),
    ]
    seen = set()
    for name, tar in zip(layer_names, image.layer_tars, strict=True):
        if name in seen:  # two identical layers are stored once
            continue
        seen.add(name)
        entries.append(Entry(name, "file", 0o644, content=FileContent(tar, tar.stat().st_size)))
    return sorted(entries, key=lambda e: e.path.encode())


def write_docker_archive(image: Image, dest: Path, *, mtime: int) -> None:
    """Write a docker-archive tar at `dest`, atomically."""
    with atomic_file(dest) as tmp, open(tmp, "wb") as out:
        for e in archive_entries(image):
            out.write(entry_header(path=e.path, type="file", mode=e.mode, uid=0, gid=0,
                                   size=e.size, mtime=mtime))
            assert e.content is not None
            with e.content.open() as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)
            out.write(padding(e.size))
        out.write(END_OF_ARCHIVE)
