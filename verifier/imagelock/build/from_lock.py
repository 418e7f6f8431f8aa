"""The `build` command's job: lock -> fetched inputs -> image -> output, compared with the lock."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagelock.build.expected import expected_of
from imagelock.core.errors import InputError
from imagelock.build.image import build_images
from imagelock.fetch.mirrors import parse_cli_mirrors
from imagelock.fetch.store import Store
from imagelock.formats.files import read_lock
from imagelock.formats.lock import Lock
from imagelock.inputs.fetching import fetch_lock
from imagelock.lock.staleness import check_fresh
from imagelock.oci.docker_archive import write_docker_archive
from imagelock.oci.layout import write_layout
from imagelock.tar.compress import current as current_compression


@dataclass
class BuildResult:
    lock: Lock
    output: Path
    fmt: str
    verdict: str  # reproduced | reproduced-content | mismatch
    platforms: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"image": f"{self.lock.image.name}:{self.lock.image.tag}", "output": str(self.output),
                "format": self.fmt, "verdict": self.verdict, "platforms": self.platforms,
                "notes": self.notes}

    def human(self) -> str:
        lines = [f"built {self.lock.image.name}:{self.lock.image.tag} -> {self.output} ({self.fmt})"]
        for plat, d in self.platforms.items():
            lines.append(f"  {plat}")
            lines.append(f"    config   {d['config_digest']}")
            lines.append(f"    manifest {d['manifest_digest']}")
            for layer in d["layers"]:
                lines.append(f"    layer    {layer['digest']}  {layer['name']} ({layer['size']} bytes)")
        verdicts = {
            "reproduced": "matches the lock: yes (config and manifest digests)",
            "reproduced-content": "matches the lock: content only (config digest); the compressed "
            "blobs differ",
            "mismatch": "matches the lock: NO. Run `imagelock rebuild` to see why",
        }
        lines.append(verdicts[self.verdict])
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def build_lock(
    lock_path: Path,
    *,
    output: Path,
    fmt: str,
    store: Store,
    cli_mirrors: Sequence[str],
    offline: bool,
    platform: str | None = None,
) -> BuildResult:
    """Build every platform of the lock; a docker-archive holds `platform` (default the first)."""
    lock = read_lock(lock_path)
    if platform is not None and platform not in lock.platforms:
        raise InputError(f"--platform {platform}: the lock has no such platform",
                         field="--platform", hint="the lock's platforms: " + ", ".join(lock.platforms))
    notes = []
    if check_fresh(lock, lock_path) is None:
        notes.append(f"spec {lock.spec} not found beside the lock: staleness not checked")
    fetch_lock(lock, lock_path, store, cli_mirrors=parse_cli_mirrors(cli_mirrors), offline=offline)
    comp = current_compression()
    if comp.implementation != lock.compression.implementation:
        notes.append(f"compressing with {comp.implementation}; the lock was made with "
                     f"{lock.compression.implementation}, so blob digests may differ")
    context = lock_path.parent / lock.context
    with tempfile.TemporaryDirectory(prefix="imagelock-build-") as tmp:
        images = build_images(lock, context=context, store=store, workdir=Path(tmp),
                              keep_tars=fmt == "docker-archive", notes=notes)
        if fmt == "oci":
            write_layout(images, output)
        else:
            chosen = next(i for i in images if i.platform == (platform or lock.platforms[0]))
            write_docker_archive(chosen, output, mtime=lock.source_date_epoch)
            if len(images) > 1:
                notes.append("a docker-archive holds one platform: wrote " + chosen.platform)
        got = expected_of(images)
    verdict = "reproduced"
    for plat, exp in lock.expected.items():
        g = got.get(plat)
        if g is None or g.config_digest != exp.config_digest:
            verdict = "mismatch"
        elif g.manifest_digest != exp.manifest_digest and verdict == "reproduced":
            verdict = "reproduced-content"
    return BuildResult(lock, output, fmt, verdict,
                       {k: v.model_dump() for k, v in got.items()}, notes)
