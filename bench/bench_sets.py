"""Building the OpenStack set (examples/openstack): the whole set serially (IMAGELOCK_JOBS=1) and
in parallel (every core), the speedup, and the whole set as a ratio to its largest image alone
(target under 1.5x: the shared base and openstack-base layers are built once).

Each timing is a whole `imagelock build` process from a filled store (`--offline`); the store is
filled once first, untimed (network). Each figure is the median of `--runs` builds.

Usage: python bench/bench_sets.py [--runs 3] [--example examples/openstack] [--largest keystone]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGELOCK = str(Path(sys.executable).parent / "imagelock")


def build(lock: Path, out: Path, jobs: int, select: str | None = None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "IMAGELOCK_JOBS": str(jobs)}
    cmd = [IMAGELOCK, "build", str(lock), "-o", str(out), "--offline", "-q"]
    if select is not None:
        cmd += ["--select", select]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"build failed ({' '.join(cmd)}):\n{r.stderr}{r.stdout}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--example", type=Path, default=Path("examples/openstack"))
    ap.add_argument("--largest", default="keystone", help="the set's largest image")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    lock = args.example / "imagelock.lock"
    with tempfile.TemporaryDirectory(prefix="imagelock-bench-sets-") as tmp:
        out = Path(tmp) / "out"
        for name in ("base", "openstack-base", "keystone", "placement"):
            subprocess.run([IMAGELOCK, "fetch", str(args.example / f"imagelock.{name}.lock")],
                           check=True, capture_output=True)
        build(lock, out, cores)  # warm the page cache, untimed
        serial = statistics.median(build(lock, out, 1) for _ in range(args.runs))
        parallel = statistics.median(build(lock, out, cores) for _ in range(args.runs))
        alone = statistics.median(build(lock, out, cores, f"^{args.largest}$")
                                  for _ in range(args.runs))
    print(f"OpenStack set ({args.example}), {cores} cores, median of {args.runs} builds, "
          "from a filled store:")
    print("| build | seconds |")
    print("|---|---|")
    print(f"| whole set, serial (IMAGELOCK_JOBS=1) | {serial:.1f} |")
    print(f"| whole set, parallel (IMAGELOCK_JOBS={cores}) | {parallel:.1f} |")
    print(f"| {args.largest} alone (with its parents), parallel | {alone:.1f} |")
    print(f"parallel speedup: {serial / parallel:.2f}x; whole set / {args.largest} alone: "
          f"{parallel / alone:.2f}x (target < 1.5x)")


if __name__ == "__main__":
    main()
