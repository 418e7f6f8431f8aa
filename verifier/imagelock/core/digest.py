"""Digests and canonical JSON: the pure functions every identity in imagelock is computed with.

Canonical JSON (spec/README.md, "Canonical JSON"): UTF-8, keys sorted by code point, no
insignificant whitespace, non-ASCII characters written as themselves, no trailing newline.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def canonical_json(value: Any) -> bytes:
    """The exact bytes of `value` as canonical JSON."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>` of `data`, the OCI digest form."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> tuple[str, int]:
    """Hex sha256 and size of a file, read in chunks (never whole into memory)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def iter_file(f: BinaryIO, chunk: int = CHUNK) -> Iterator[bytes]:
    while data := f.read(chunk):
        yield data


def is_sha256_hex(value: str) -> bool:
    return bool(SHA256_HEX.match(value))


def hex_of(digest: str) -> str:
    """The hex part of `sha256:<hex>`; raises ValueError for anything else."""
    if not DIGEST.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest[len("sha256:") :]
