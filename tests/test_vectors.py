"""The conformance vectors in spec/vectors/: inputs plus every digest any conforming
implementation must produce (layer diff_ids and blobs, config, manifest, index.json, and the
docker-archive). Set IMAGELOCK_UPDATE_VECTORS=1 to rewrite the expected values (only when the
format is changed on purpose: the spec's version must change with them)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from vector_runner import VECTORS, Vector, lock_digests, run_vector

DIGEST_KEYS = {"diff_ids", "layers", "config_digest", "manifest_digest"}
# Content identity first: a diff_id that differs explains everything after it.
ORDER = {"diff_ids": 1, "config_digest": 2, "layers": 3, "manifest_digest": 4,
         "platforms": 1, "index_json_digest": 2, "docker_archive": 3}


@pytest.fixture(scope="module", params=VECTORS, ids=[p.parent.name for p in VECTORS])
def built(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Vector, dict[str, Any], Path]:
    """Each vector locked and built once: (vector file, vector, digests read back, work dir)."""
    path: Path = request.param
    root = tmp_path_factory.mktemp(path.parent.name)
    vector = json.loads(path.read_text())
    return path, vector, run_vector(vector, root), root


def test_there_are_enough_vectors_and_each_lists_every_digest() -> None:
    assert len(VECTORS) >= 12
    for path in VECTORS:
        expected = json.loads(path.read_text())["expected"]
        assert set(expected) == {"platforms", "index_json_digest", "docker_archive"}, path
        assert expected["platforms"], path
        for plat in expected["platforms"].values():
            assert set(plat) == DIGEST_KEYS, path
            assert len(plat["diff_ids"]) == len(plat["layers"]) > 0, path
        assert set(expected["docker_archive"]) == {"manifest_json_digest", "archive_digest"}, path


def _differences(got: Any, want: Any, where: str = "") -> list[str]:
    """Each digest that differs, by its place in `expected` (what an implementer needs first)."""
    if isinstance(want, dict) and isinstance(got, dict):
        return [d for k in sorted(set(want) | set(got), key=lambda k: (ORDER.get(k, 0), k))
                for d in _differences(got.get(k), want.get(k), f"{where}.{k}" if where else k)]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True))
                for d in _differences(g, w, f"{where}[{i}]")]
    return [] if got == want else [f"{where}: got {got}, expected {want}"]


def test_vector_gives_exactly_the_expected_digests(
    built: tuple[Path, Vector, dict[str, Any], Path],
) -> None:
    path, vector, got, root = built
    assert lock_digests(root) == got["platforms"]  # the lock expects what the build wrote
    if os.environ.get("IMAGELOCK_UPDATE_VECTORS") == "1":
        vector["expected"] = got
        path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n")
    differences = _differences(got, vector["expected"])
    assert not differences, f"{path.parent.name}:\n  " + "\n  ".join(differences)


def _tar_list(data: bytes, what: str) -> list[str]:
    """GNU tar's member names; it must read the stream without a warning."""
    r = subprocess.run(["tar", "--numeric-owner", "-tvf", "-"], input=data, capture_output=True)
    assert r.returncode == 0 and not r.stderr, f"GNU tar on {what}: {r.stderr.decode()}"
    r = subprocess.run(["tar", "-tf", "-"], input=data, capture_output=True, check=True)
    return r.stdout.decode().splitlines()


def test_gnu_gzip_and_gnu_tar_read_every_layer_and_the_docker_archive(
    built: tuple[Path, Vector, dict[str, Any], Path],
) -> None:
    """Independent readers: GNU gzip checks each blob's CRC-32 and size trailer and gives the
    diff_id's bytes; GNU tar reads each layer and the archive, whose members carry the config and
    the uncompressed layers."""
    _, _, got, root = built
    for plat in got["platforms"].values():
        for digest, diff_id in zip(plat["layers"], plat["diff_ids"], strict=True):
            blob = root / "oci" / "blobs" / "sha256" / digest.split(":", 1)[1]
            r = subprocess.run(["gzip", "-dc", str(blob)], capture_output=True)
            assert r.returncode == 0 and not r.stderr, r.stderr
            assert "sha256:" + hashlib.sha256(r.stdout).hexdigest() == diff_id
            assert gzip.decompress(blob.read_bytes()) == r.stdout
            _tar_list(r.stdout, f"layer {diff_id}")
    first = next(iter(got["platforms"].values()))  # a docker-archive holds the first platform
    archive = root / "image.tar"
    names = _tar_list(archive.read_bytes(), "the docker-archive")
    config = first["config_digest"].split(":", 1)[1] + ".json"
    tars = sorted({d.split(":", 1)[1] + ".tar" for d in first["diff_ids"]})
    assert names == sorted([config, *tars, "manifest.json"], key=str.encode)
    manifest = json.loads(subprocess.run(["tar", "-xOf", str(archive), "manifest.json"],
                                         capture_output=True, check=True).stdout)
    assert manifest[0]["Config"] == config
    assert manifest[0]["Layers"] == [d.split(":", 1)[1] + ".tar" for d in first["diff_ids"]]
    for name in [config, *tars]:
        data = subprocess.run(["tar", "-xOf", str(archive), name], capture_output=True,
                              check=True).stdout
        assert hashlib.sha256(data).hexdigest() == name.rsplit(".", 1)[0]
