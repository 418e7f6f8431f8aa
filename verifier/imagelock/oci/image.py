"""The one image model the rest of imagelock works with, whatever the image came from.

Comparison and signing take an `Image` and never know whether it was read from a layout, an
archive or a registry. Blobs are referenced, not loaded: `open()` streams them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from imagelock.core.digest import sha256_digest


@dataclass(frozen=True)
class Blob:
    """A blob of the image: its descriptor and a way to read its bytes."""

    digest: str
    size: int
    media_type: str
    path: Path | None = None
    opener: Callable[[], BinaryIO] | None = None

    def open(self) -> BinaryIO:
        if self.opener is not None:
            return self.opener()
        assert self.path is not None
        return open(self.path, "rb")


@dataclass(frozen=True)
class Image:
    """One platform's image: manifest and config bytes plus layer blobs, bottom first."""

    manifest: bytes
    config: bytes
    layers: list[Blob]
    name: str = ""
    tag: str = ""
    platform: str = "linux/amd64"
    # Uncompressed layer tars, when the writer kept them (needed for docker-archive output).
    layer_tars: list[Path] = field(default_factory=list)

    @property
    def manifest_digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256_digest(self.config)
