"""Rebuild from a reference alone, with the inputs from the image's bundle: examples/keystone (53
Debian packages, 96 wheels) is locked, built, signed, pushed to a registry on loopback with its
recipe and input bundle; then `imagelock rebuild REF` runs on a machine with an empty store whose
mirrors answer 404 for everything (pip's configuration switched off), so every input comes from
the bundle. Reported as a ratio to a build of the same lock with a warm store.

This is also the team-vanishes drill for keystone, which is too slow for the test suite: the
rebuild must say `reproduced`.

Run: ./bench/run rebuild-ref   (network: the vendor's lock reads the Debian archive's indexes)
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from registry_fixture import start_registry  # noqa: E402  (the tests' loopback registry)
from tiny_archive import nothing, serve  # noqa: E402  (a mirror that lost every file)

IMAGELOCK = str(Path(sys.executable).parent / "imagelock")


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run([IMAGELOCK, *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"imagelock {args[0]} failed ({r.returncode}): {r.stdout}\n{r.stderr}")
    return time.perf_counter() - t, r.stdout


def main() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "verifier" / "imagelock")],
                   check=True)
    work = Path(tempfile.mkdtemp(prefix="imagelock-bench-rebuild-ref-"))
    vendor = work / "keystone"
    shutil.copytree(REPO / "examples/keystone", vendor)
    store = os.environ.get("IMAGELOCK_STORE", str(work / "vendor-store"))
    env = {**os.environ, "IMAGELOCK_STORE": store}
    run(["keygen", "-o", str(work / "vendor.key"), "--no-passphrase"], env)
    run(["lock", str(vendor)], env)  # today's signed indexes, kept in the store
    run(["build", str(vendor), "-o", str(work / "warm")], env)  # warms the store
    build, _ = run(["build", str(vendor), "-o", str(work / "out" / "keystone"), "--offline",
                    "--sign", str(work / "vendor.key")], env)
    with start_registry(work / "registry") as reg, serve(nothing) as (gone, _):
        _, out = run(["push", str(work / "out" / "keystone"), f"{reg.host}/bench/keystone:1",
                      "--json"], env)
        ref = f"{reg.host}/bench/keystone@{json.loads(out)['digest']}"
        attach, out = run(["attach", ref, str(work / "out" / "keystone.intoto.jsonl"),
                           "--recipe", str(vendor), "--inputs", "--json"], env)
        pushed = json.loads(out)["inputs"]
        shutil.rmtree(vendor)
        stranger = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        stranger.update({"IMAGELOCK_STORE": str(work / "stranger-store"),
                         "PIP_CONFIG_FILE": os.devnull, "IMAGELOCK_HTTP_BACKOFF": "0.05"})
        rebuild, out = run(["rebuild", ref, "--vendor-key", str(work / "vendor.key.pub"),
                            "--mirror", f"bookworm={gone}/debian",
                            "--mirror", f"security={gone}/debian-security",
                            "--mirror", f"pypi={gone}/simple", "--json"], stranger)
    res = json.loads(out)
    if res["verdict"] != "reproduced":
        raise SystemExit(f"keystone from its reference: {res['verdict']}")
    sources = res["reference"]["inputs"]
    print("| step (examples/keystone) | seconds | ratio to build |\n|---|---:|---:|")
    print(f"| imagelock build, warm store | {build:.2f} | 1.00 |")
    print(f"| imagelock attach --recipe --inputs ({pushed['uploaded']} blobs, "
          f"{pushed['bytes_uploaded'] / 1e6:.0f} MB uploaded) | {attach:.2f} | "
          f"{attach / build:.2f} |")
    print(f"| imagelock rebuild REF, empty store, mirrors 404 (inputs: "
          f"{', '.join(f'{n} from {k}' for k, n in sources.items())}) | {rebuild:.2f} | "
          f"{rebuild / build:.2f} |")
    print(f"\nverdict: {res['verdict']}; target: rebuild REF under 1.5x build")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
