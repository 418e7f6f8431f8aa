"""The cost of verification: `rebuild` of examples/python-base (fetch check, bubblewrap sandbox,
build, comparison) as a ratio to its plain `build`, and a rebuild against the image in a
registry on loopback (pull with every blob checked, then compare). One run each, after a warm-up
that fills the store.

Run: ./bench/run rebuild   (network: fills the store from the Debian mirror)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from registry_fixture import start_registry  # noqa: E402  (the tests' loopback registry)

IMAGELOCK = str(Path(sys.executable).parent / "imagelock")


def timed(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{args[1]} failed: {r.stderr}")
    return time.perf_counter() - t


def main() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "verifier" / "imagelock")],
                   check=True)
    work = Path(tempfile.mkdtemp(prefix="imagelock-bench-rebuild-"))
    ex = str(REPO / "examples/python-base")
    env = {**os.environ, "IMAGELOCK_STORE": os.environ.get("IMAGELOCK_STORE", str(work / "store"))}
    subprocess.run([IMAGELOCK, "fetch", ex], env=env, check=True, stdout=subprocess.DEVNULL)
    timed([IMAGELOCK, "build", ex, "-o", str(work / "warm"), "--offline"], env)
    build = timed([IMAGELOCK, "build", ex, "-o", str(work / "published"), "--offline"], env)
    rebuild = timed([IMAGELOCK, "rebuild", ex, "--image", f"oci:{work / 'published'}", "--offline"], env)
    with start_registry(work / "registry") as reg:
        ref = f"{reg.host}/bench/python-base:1"
        timed([IMAGELOCK, "push", str(work / "published"), ref], env)
        remote = timed([IMAGELOCK, "rebuild", ex, "--image", ref, "--offline"], env)
        pull = timed([IMAGELOCK, "pull", ref, "-o", str(work / "pulled")], env)
    print("| step (examples/python-base) | seconds | ratio to build |\n|---|---:|---:|")
    print(f"| imagelock build (OCI layout) | {build:.2f} | 1.00 |")
    print(f"| imagelock rebuild --image oci:DIR (sandboxed build + compare) | {rebuild:.2f} "
          f"| {rebuild / build:.2f} |")
    print(f"| imagelock rebuild --image REGISTRY/REPO:TAG (pull + sandboxed build + compare) "
          f"| {remote:.2f} | {remote / build:.2f} |")
    print(f"| imagelock pull from the loopback registry alone | {pull:.2f} | {pull / build:.2f} |")
    print("\ntarget: rebuild under 1.2x build")


if __name__ == "__main__":
    main()
