"""The digests a lock's build produces, recorded in the lock's `expected` section.

`imagelock lock` resolves pins (the lock stage), then builds once (this stage) to record what
every later build and rebuild must match.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from imagelock.build.image import build_images
from imagelock.fetch.store import Store
from imagelock.formats.lock import ExpectedImage, ExpectedLayer, Lock
from imagelock.oci.image import Image
from imagelock.sandbox import emulation


def record_expected(lock: Lock, *, context: Path, store: Store) -> Lock:
    """`lock` with its `expected` section filled by building it once (inputs already in `store`)."""
    with tempfile.TemporaryDirectory(prefix="imagelock-lock-") as tmp:
        images = build_images(lock, context=context, store=store, workdir=Path(tmp))
        expected = {platform: exp.model_copy(update={"emulation": emulation_used(lock, platform)})
                    for platform, exp in expected_of(images).items()}
        return lock.model_copy(update={"expected": expected})


def emulation_used(lock: Lock, platform: str) -> str | None:
    """The emulator that ran this platform's image programs on this host, or None (native, or none ran).

    The image's own programs run for build steps, for ldconfig (when libc-bin is installed) and,
    at lock time, for the Debian maintainer scripts whose effects the lock records.
    """
    deb = lock.debian.get(platform)
    runs = bool(lock.steps) or (deb is not None and (
        any(p.name == "libc-bin" for p in deb.packages)
        or (deb.scripts is not None and bool(deb.scripts.ran))))
    if not runs:
        return None
    emu = emulation.foreign(emulation.machine_of_platform(platform))
    return emu.label if emu is not None else None


def expected_of(images: list[Image]) -> dict[str, ExpectedImage]:
    out = {}
    for img in images:
        diff_ids = json.loads(img.config)["rootfs"]["diff_ids"]
        out[img.platform] = ExpectedImage(
            config_digest=img.config_digest,
            manifest_digest=img.manifest_digest,
            layers=[
                ExpectedLayer(name=name, diff_id=d, digest=b.digest, size=b.size)
                for name, d, b in zip(_layer_names(img), diff_ids, img.layers, strict=True)
            ],
        )
    return out


def _layer_names(img: Image) -> list[str]:
    history = json.loads(img.config).get("history", [])
    return [str(h.get("created_by", "")).removeprefix("imagelock layer ") for h in history]
