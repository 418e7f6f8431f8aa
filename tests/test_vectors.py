"""The conformance vectors in spec/vectors/: inputs plus the digests any conforming
implementation must produce. Set IMAGELOCK_UPDATE_VECTORS=1 to rewrite the expected values
(only when the format is changed on purpose: the spec's version must change with them)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers import REPO
from imagelock.api import resolve

VECTORS = sorted((REPO / "spec" / "vectors").glob("*/vector.json"))


def generated(size: int, seed: str) -> bytes:
    """spec/vectors/README.md: sha256(seed || counter as 8-byte big-endian), concatenated."""
    out = bytearray()
    counter = 0
    s = seed.encode()
    while len(out) < size:
        out += hashlib.sha256(s + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def materialise(vector: dict, root: Path) -> Path:  # type: ignore[type-arg]
    for item in vector["context"]:
        p = root / item["path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        if item["type"] == "dir":
            p.mkdir(exist_ok=True)
        elif item["type"] == "symlink":
            os.symlink(item["target"], p)
        else:
            if "generate" in item:
                data = generated(item["generate"]["size"], item["generate"]["seed"])
            elif "content_base64" in item:
                data = base64.b64decode(item["content_base64"])
            else:
                data = item["content"].encode()
            p.write_bytes(data)
            os.chmod(p, int(item.get("mode", "0644"), 8))
    spec = root / "imagelock.yaml"
    spec.write_text(json.dumps(vector["spec"], ensure_ascii=False))  # JSON is YAML
    return spec


def test_there_are_enough_vectors() -> None:
    assert len(VECTORS) >= 5


@pytest.mark.parametrize("path", VECTORS, ids=[p.parent.name for p in VECTORS])
def test_vector(path: Path, tmp_path: Path) -> None:
    vector = json.loads(path.read_text())
    spec = materialise(vector, tmp_path / "ctx")
    lock = resolve(spec, store=tmp_path / "store")
    got = {
        plat: {
            "diff_ids": [layer.diff_id for layer in exp.layers],
            "config_digest": exp.config_digest,
            "manifest_digest": exp.manifest_digest,
        }
        for plat, exp in lock.expected.items()
    }
    if os.environ.get("IMAGELOCK_UPDATE_VECTORS") == "1":
        vector["expected"] = got
        path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n")
    assert vector["expected"], "vector has no expected values"
    assert got == vector["expected"]
