"""`imagelock verify` with 10 attestations (a vendor's provenance and 9 rebuilders' VSAs, each
signed with its own key), timed as a whole process: what a consumer's pipeline step costs; and
`imagelock --version`, next to the floor of the libraries every such command loads.

Run: ./bench/run verify
"""

from __future__ import annotations

import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from imagelock.trust.dsse import envelope_json, sign_envelope
from imagelock.trust.keys import generate
from imagelock.trust.provenance import build_provenance
from imagelock.trust.statement import statement_bytes
from imagelock.trust.vsa import build_vsa

REPO = Path(__file__).resolve().parents[1]
IMAGELOCK = str(Path(sys.executable).parent / "imagelock")
# What any imagelock command that reads a document pays before imagelock's own code runs: the
# CLI framework, pydantic with its first model built (which loads importlib.metadata for
# pydantic's plugins), the YAML parser and the crypto library.
FLOOR = """
import typer, yaml
from pydantic import BaseModel
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
class First(BaseModel):
    name: str
First(name="x")
"""


def main() -> None:
    # An installed package carries its bytecode; an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 would recompile imagelock on every run.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "verifier" / "imagelock")],
                   check=True)
    work = Path(tempfile.mkdtemp(prefix="imagelock-bench-verify-"))
    env = {**os.environ, "IMAGELOCK_STORE": str(work / "store")}
    subprocess.run([IMAGELOCK, "build", str(REPO / "examples/hello"), "-o", str(work / "img")],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    index = (work / "img" / "index.json").read_text()
    import json

    digest = json.loads(index)["manifests"][0]["digest"]
    lock_hex = hashlib.sha256((REPO / "examples/hello/imagelock.lock").read_bytes()).hexdigest()
    now = datetime.now(UTC).replace(microsecond=0)
    lines = []
    vendor = generate()
    (work / "vendor.pub").write_bytes(vendor.public.pem())
    st = build_provenance(subject_name="imagelock/hello", manifest_digest=digest,
                          lock_digest=lock_hex, pins=[("context:hello", "0" * 64)], finished_on=now)
    lines.append(envelope_json(sign_envelope(statement_bytes(st), [vendor])))
    trusted = []
    for i in range(9):
        k = generate()
        (work / f"r{i}.pub").write_bytes(k.public.pem())
        trusted.append(f"    - {{name: r{i}, key: r{i}.pub}}")
        vsa = build_vsa(subject_name="imagelock/hello", manifest_digest=digest, lock_digest=lock_hex,
                        lock_uri="imagelock.lock", time_verified=now, match="distribution")
        lines.append(envelope_json(sign_envelope(statement_bytes(vsa), [k])))
    (work / "img.intoto.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (work / "policy.yaml").write_text(
        "version: 1\nvendors:\n  - {name: vendor, key: vendor.pub}\nrebuilders:\n  threshold: 9\n"
        "  trusted:\n" + "\n".join(trusted) + "\nmax_age: 1d\n")
    runs = {
        "imagelock verify, 10 attestations, whole process":
            [IMAGELOCK, "verify", str(work / "img"), "--policy", str(work / "policy.yaml")],
        "imagelock --version": [IMAGELOCK, "--version"],
        "floor: python + typer + pydantic's first model + yaml + cryptography":
            [sys.executable, "-c", FLOOR],
        "python -c pass (interpreter start, for scale)": [sys.executable, "-c", "pass"],
    }
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(11):  # interleaved, so a busy moment of a shared machine hits every row
        for name, cmd in runs.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall[name].append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
            assert r.returncode == 0, r.stdout + r.stderr
    print("| measurement | median (ms) | min (ms) | CPU median (ms) |\n|---|---:|---:|---:|")
    for name in runs:
        print(f"| {name} | {statistics.median(wall[name]) * 1000:.0f} | "
              f"{min(wall[name]) * 1000:.0f} | {statistics.median(cpu[name]) * 1000:.0f} |")
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: on a shared machine "
          "wall times follow the load; CPU time (user + sys) does less")
    print("target: verify with 10 attestations under 200 ms, --version under 150 ms")

if __name__ == "__main__":
    main()
