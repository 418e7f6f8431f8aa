"""Producing attestations for images we built or rebuilt, and keeping them beside the image.

An image at PATH (an OCI layout directory or a docker-archive file) has its attestations in
`PATH.intoto.jsonl`: one DSSE envelope per line, appended by whoever attests (the vendor's
provenance, each rebuilder's VSA). Sigstore bundles go to `PATH.<n>.sigstore.json`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from imagelock.core.atomic import atomic_file
from imagelock.trust.provenance import Pin

if TYPE_CHECKING:
    from imagelock.formats.lock import Lock


def attestations_path(image: Path) -> Path:
    return image.with_name(image.name + ".intoto.jsonl")


def lock_digest(lock_path: Path) -> str:
    """The lock's identity: sha256 of its exact bytes (hex)."""
    return hashlib.sha256(lock_path.read_bytes()).hexdigest()


def lock_pins(lock: Lock) -> list[Pin]:
    """Every pinned input of the lock, as SLSA resolvedDependencies (names stable across runs):
    each input kind says what its pins are called (`InputKind.dependencies`)."""
    # lazy: `verify` imports this module for attestations_path; the input kinds load only to sign
    from imagelock.inputs.registry import dependencies

    return [Pin(d.name, d.sha256, d.uri) for d in dependencies(lock)]


def append_line(path: Path, line: bytes) -> None:
    """Add one envelope line to an attestations file, atomically (never a half-written file)."""
    old = path.read_bytes() if path.is_file() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    with atomic_file(path) as tmp:
        tmp.write_bytes(old + line.rstrip(b"\n") + b"\n")


def utc_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC).replace(microsecond=0)
