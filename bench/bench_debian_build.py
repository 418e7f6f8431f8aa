"""Build time of examples/python-base next to mmdebstrap producing a root file system with the
same package set, in the same run (one run each, ratio printed). Both read .debs from a local
cache: imagelock from its store, mmdebstrap from apt's archive cache filled beforehand, so the
figures compare building, not downloading.

Run: ./bench/run debian   (installs mmdebstrap with apt-get when missing)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imagelock.fetch.apt_sources import machine_mirrors

REPO = Path(__file__).resolve().parents[1]
IMAGELOCK = str(Path(sys.executable).parent / "imagelock")


def main() -> None:
    if shutil.which("mmdebstrap") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mmdebstrap"],
                       check=True, stdout=subprocess.DEVNULL)
    lock = json.loads((REPO / "examples/python-base/imagelock.lock").read_text())
    pins = lock["debian"]["linux/amd64"]["packages"]
    work = Path(tempfile.mkdtemp(prefix="imagelock-bench-deb-"))
    env = {**os.environ, "IMAGELOCK_STORE": os.environ.get("IMAGELOCK_STORE", str(work / "store"))}
    subprocess.run([IMAGELOCK, "fetch", str(REPO / "examples/python-base")], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    t = time.perf_counter()
    subprocess.run([IMAGELOCK, "build", str(REPO / "examples/python-base"), "-o", str(work / "oci"),
                    "--offline"], env=env, check=True, stdout=subprocess.DEVNULL)
    ours = time.perf_counter() - t

    # mmdebstrap: the same packages, from the machine's mirrors, debs pre-downloaded into a
    # cache directory it is pointed at, so that its run measures installation only.
    mirrors = {s: machine_mirrors(s) for s in ("bookworm", "bookworm-updates", "bookworm-security")}
    sources = [f"deb {m[0]} {s} main" for s, m in mirrors.items() if m]
    cache = work / "debs"
    cache.mkdir()
    store = Path(env["IMAGELOCK_STORE"])
    for p in pins:
        shutil.copy(store / "sha256" / p["sha256"], cache / p["location"].rsplit("/", 1)[1])
    names = [p["name"] for p in pins]
    variants = {
        # Unpacks the packages, runs no maintainer scripts: the closest to what imagelock does
        # (which also writes the dpkg database, accounts, CA bundle and ld.so.cache).
        "extract": names,
        # Installs with dpkg and runs the maintainer scripts. Scripts need a shell and core
        # tools present first, which only the Essential set provides (a superset of ours).
        "essential": names,
    }
    rows = [("imagelock build (python-base, OCI layout with gzip layers)", len(names), ours)]
    for variant, include in variants.items():
        args = ["mmdebstrap", f"--variant={variant}", "--mode=root", "--format=tar", "--quiet",
                "--include=" + ",".join(include),
                f"--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives && cp {cache}/*.deb "
                "\"$1\"/var/cache/apt/archives/",
                "bookworm", str(work / f"mmdebstrap-{variant}.tar"), *sources]
        t = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "SOURCE_DATE_EPOCH": str(lock["source_date_epoch"])})
        rows.append((f"mmdebstrap --variant={variant} (tar, incl. apt-get update)", len(include),
                     time.perf_counter() - t))
    print("| tool | packages requested | seconds | ratio to imagelock |\n|---|---:|---:|---:|")
    for name, n, secs in rows:
        print(f"| {name} | {n} | {secs:.2f} | {secs / ours:.1f}x |")
    print("\ntarget: imagelock at least 5x faster than mmdebstrap building the same package set "
          "(essential variant: installed with dpkg and maintainer scripts)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
