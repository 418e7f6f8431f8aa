"""Running a conformance vector of spec/vectors/ the way spec/vectors/README.md describes it:
create its context and served files, lock, build both outputs, and read every digest back from
the files written (not from the builder's own bookkeeping)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from helpers import REPO
from imagelock.build.from_lock import build_lock
from imagelock.api import resolve as make_lock
from imagelock.formats.files import write_lock
from imagelock.fetch.store import Store

VECTORS = sorted((REPO / "spec" / "vectors").glob("*/vector.json"))
Vector = dict[str, Any]


def load(name: str) -> Vector:
    return json.loads((REPO / "spec" / "vectors" / name / "vector.json").read_text())  # type: ignore[no-any-return]


def generated(size: int, seed: str, form: str = "sha256") -> bytes:
    """spec/vectors/README.md: the two generator forms, `sha256` (incompressible) and `lines`
    (text that deflate finds matches in)."""
    out = bytearray()
    counter = 0
    s = seed.encode()
    while len(out) < size:
        digest = hashlib.sha256(s + counter.to_bytes(8, "big"))
        if form == "sha256":
            out += digest.digest()
        elif form == "lines":
            out += b"%08d %s\n" % (counter, digest.hexdigest()[: 8 + counter % 57].encode())
        else:
            raise ValueError(f"unknown generator form {form!r}")
        counter += 1
    return bytes(out[:size])


def _content(item: dict[str, Any]) -> bytes:
    if "generate" in item:
        g = item["generate"]
        return generated(g["size"], g["seed"], g.get("form", "sha256"))
    if "content_base64" in item:
        return base64.b64decode(item["content_base64"])
    return item["content"].encode()  # type: ignore[no-any-return]


def materialise(vector: Vector, root: Path) -> tuple[Path, dict[str, list[str]]]:
    """The vector's context (with its spec) under `root/ctx`, its served files under
    `root/served/SOURCE/`; returns the spec path and the mirror of each source."""
    ctx = root / "ctx"
    ctx.mkdir(parents=True)
    for item in vector["context"]:
        p = ctx / item["path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        if item["type"] == "dir":
            p.mkdir(exist_ok=True)
        elif item["type"] == "symlink":
            os.symlink(item["target"], p)
        else:
            p.write_bytes(_content(item))
            os.chmod(p, int(item.get("mode", "0644"), 8))
    mirrors: dict[str, list[str]] = {}
    for item in vector.get("served", []):
        base = root / "served" / item["source"]
        p = base / item["path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_content(item))
        mirrors[item["source"]] = [base.as_uri()]
    spec = ctx / "imagelock.yaml"
    spec.write_text(json.dumps(vector["spec"], ensure_ascii=False))  # JSON is YAML
    return spec, mirrors


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def blob(layout: Path, digest: str) -> Path:
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    assert sha256_file(path) == digest, f"{path} does not hash to its name"
    return path


def read_layout(layout: Path) -> dict[str, Any]:
    """Every digest of an OCI layout, read from its files: index.json, then manifests, configs."""
    index = layout / "index.json"
    out: dict[str, Any] = {"platforms": {}, "index_json_digest": sha256_file(index)}
    for m in json.loads(index.read_bytes())["manifests"]:
        p = m["platform"]
        name = "/".join([p["os"], p["architecture"], *([p["variant"]] if "variant" in p else [])])
        manifest = json.loads(blob(layout, m["digest"]).read_bytes())
        config = json.loads(blob(layout, manifest["config"]["digest"]).read_bytes())
        layers = [layer["digest"] for layer in manifest["layers"]]
        for digest in layers:
            blob(layout, digest)
        out["platforms"][name] = {
            "diff_ids": config["rootfs"]["diff_ids"],
            "layers": layers,
            "config_digest": manifest["config"]["digest"],
            "manifest_digest": m["digest"],
        }
    return out


def read_archive(archive: Path) -> dict[str, str]:
    """The docker-archive's digests; manifest.json is taken out with GNU tar, an independent reader."""
    manifest = subprocess.run(["tar", "-xOf", str(archive), "manifest.json"], capture_output=True,
                              check=True).stdout
    return {"manifest_json_digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
            "archive_digest": sha256_file(archive)}


def run_vector(vector: Vector, root: Path) -> dict[str, Any]:
    """Lock the vector's spec, build the lock as an OCI layout and as a docker-archive, and
    return the digests those files have, in the shape of the vector's `expected`."""
    spec, mirrors = materialise(vector, root)
    store = Store(root / "store")
    lock = make_lock(spec, store=store, mirrors=mirrors)
    lock_path = spec.parent / "imagelock.lock"
    write_lock(lock, lock_path)
    for fmt, output in (("oci", root / "oci"), ("docker-archive", root / "image.tar")):
        res = build_lock(lock_path, output=output, fmt=fmt, store=store, cli_mirrors=[], offline=True)
        assert res.verdict == "reproduced", f"{fmt}: {res.verdict} {res.notes}"
    got = read_layout(root / "oci")
    got["docker_archive"] = read_archive(root / "image.tar")
    return got


def lock_digests(root: Path) -> dict[str, Any]:
    """The digests the lock written by `run_vector` expects, in the shape of `platforms`."""
    lock = json.loads((root / "ctx" / "imagelock.lock").read_text())
    return {p: {"diff_ids": [x["diff_id"] for x in e["layers"]],
                "layers": [x["digest"] for x in e["layers"]],
                "config_digest": e["config_digest"], "manifest_digest": e["manifest_digest"]}
            for p, e in lock["expected"].items()}
