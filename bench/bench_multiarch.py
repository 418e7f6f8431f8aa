"""A two-platform build of python-base (linux/amd64 + linux/arm64, one lock, one OCI layout) as a
ratio to two one-platform builds (one lock each), inputs already in the store, so the figures
compare building, not downloading. Also the store bytes each way needs: `Architecture: all`
packages are one file in the sha256-addressed store, whichever platforms use them.

Run: ./bench/run multiarch [LOCK]   (network: locks copies of examples/python-base and fills the
store; LOCK, a two-platform lock of it made before, default tests/fixtures/multiarch/, spares
running the arm64 maintainer scripts under qemu again)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGELOCK = str(Path(sys.executable).parent / "imagelock")


def _copy(dest: Path, platforms: str) -> Path:
    shutil.copytree(REPO / "examples/python-base", dest)
    (dest / "imagelock.lock").unlink()
    spec = dest / "imagelock.yaml"
    spec.write_text(spec.read_text().replace('  tag: "3.11-bookworm"\n',
                                             f'  tag: "3.11-bookworm"\n  platforms: [{platforms}]\n'))
    return dest


def _build(ex: Path, out: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run([IMAGELOCK, "build", str(ex), "-o", str(out), "--offline"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="imagelock-bench-multiarch-"))
    env = {**os.environ, "IMAGELOCK_STORE": os.environ.get("IMAGELOCK_STORE", str(work / "store"))}
    both = _copy(work / "both", "linux/amd64, linux/arm64")
    singles = [_copy(work / "amd64", "linux/amd64"), _copy(work / "arm64", "linux/arm64")]
    # A two-platform lock of python-base made before (default: the tests' one): its pins and
    # maintainer-script effects are kept, so the arm64 scripts (minutes under qemu) do not run
    # again while the archive still lists its pins.
    seed = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "tests/fixtures/multiarch/python-base.lock"
    shutil.copy(seed, both / "imagelock.lock")
    subprocess.run([IMAGELOCK, "lock", str(both)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for ex in singles:
        # The two-platform lock as the previous one: the same pins, and the maintainer scripts'
        # effects reused (arm64's ran once, under qemu, for `both`), so only the platforms differ.
        shutil.copy(both / "imagelock.lock", ex / "imagelock.lock")
        subprocess.run([IMAGELOCK, "lock", str(ex)], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _build(both, work / "warm", env)  # page cache warm for both
    # Interleaved rounds, medians: the machine is shared, one pair of runs is noise.
    rounds = int(os.environ.get("IMAGELOCK_BENCH_ROUNDS", "5"))
    both_times, single_times = [], []
    for r in range(rounds):
        both_times.append(_build(both, work / f"out-both-{r}", env))
        single_times.append(sum(_build(ex, work / f"out-{ex.name}-{r}", env) for ex in singles))
    t_both, t_single = statistics.median(both_times), statistics.median(single_times)

    lock = json.loads((both / "imagelock.lock").read_text())
    shared = lock.get("debian_all", [])
    pins = [p for pl in lock["debian"].values() for p in pl["packages"]]
    per_platform = sum(p["size"] for p in pins) + len(lock["debian"]) * sum(p["size"] for p in shared)
    stored = sum({p["sha256"]: p["size"] for p in [*pins, *shared]}.values())
    for ex, name in ((both, "both"), *((ex, ex.name) for ex in singles)):
        pl = json.loads((ex / "imagelock.lock").read_text())
        assert name != "both" or shared, "the two-platform lock pins Architecture: all packages once"
        print(f"{name}: expected manifests " + ", ".join(
            f"{p} {e['manifest_digest'][7:19]}" for p, e in pl["expected"].items()))
    print(f"{'':44}{'median s':>10}{'min s':>8}  ({rounds} interleaved rounds)")
    print(f"{'two-platform build (one lock, one index)':44}{t_both:10.1f}{min(both_times):8.1f}")
    print(f"{'two one-platform builds':44}{t_single:10.1f}{min(single_times):8.1f}")
    ratios = sorted(b / s for b, s in zip(both_times, single_times, strict=True))
    print(f"ratio: {t_both / t_single:.2f}x of medians, {min(both_times) / min(single_times):.2f}x "
          f"of minima; per round {', '.join(f'{x:.2f}' for x in ratios)}  (target at most 1.0x)")
    print(f".deb bytes pinned per platform, summed: {per_platform / 1e6:.1f} MB; fetched into "
          f"the store for the two-platform lock ({len(shared)} Architecture: all packages "
          f"pinned once, in debian_all): {stored / 1e6:.1f} MB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
