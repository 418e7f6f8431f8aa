"""A rebuilder fleet's throughput on this machine: images per hour for python-base-sized images,
and the share of the workers' time spent fetching, building and comparing.

The vendor locks examples/python-base (52 Debian packages, about 100 MB unpacked) against
today's signed indexes, builds it, signs it and publishes it, with its provenance, recipe and
input bundle, in N repositories of a registry on loopback (N copies of one image: each is
rebuilt in full, its referrers are its own). The fleet then runs as docs/rebuilder.md has it: `imagelock watch` lists
the work, and W workers (`xargs -P W`, each item its own `imagelock rebuild REF --sign
--push-attestation --skip-if-vouched` process) share one store that starts empty, so the first
images fetch their inputs from the input bundle (the mirrors given answer 404, so the figures
measure this machine, not the network) and the later ones find them in the store.

Phases come from each worker's progress lines on stderr (`fetch: ... in 3.2 s`): `fetch` (the
signed indexes checked, the inputs from the store, mirrors or the bundle), `layers` (the
build), `compare` with `pull` (reading the published image and comparing); the rest of a
worker's wall time is the process starting, finding the provenance and recipe, signing and
pushing the VSA.

Run: ./bench/run fleet [IMAGES] [WORKERS]   (network: the vendor's lock reads the Debian indexes)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from registry_fixture import start_registry  # noqa: E402  (the tests' loopback registry)
from tiny_archive import nothing, serve  # noqa: E402  (a mirror that lost every file)

IMAGELOCK = str(Path(sys.executable).parent / "imagelock")
PHASE = re.compile(r"^(\w+): .*?in (?:(\d+) min )?([\d.]+) s")


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run([IMAGELOCK, *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"imagelock {args[0]} failed ({r.returncode}): {r.stdout}\n{r.stderr}")
    return time.perf_counter() - t, r.stdout


def phases(log: Path) -> dict[str, float]:
    """Seconds per top-level phase, from the lines a worker wrote on stderr."""
    out: dict[str, float] = defaultdict(float)
    for line in log.read_text().splitlines():
        m = PHASE.match(line)
        if m:
            out[m.group(1)] += int(m.group(2) or 0) * 60 + float(m.group(3))
    return out


def main() -> None:
    images = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "verifier" / "imagelock")],
                   check=True)
    work = Path(tempfile.mkdtemp(prefix="imagelock-bench-fleet-"))
    vendor = work / "python-base"
    shutil.copytree(REPO / "examples/python-base", vendor)
    env = {**os.environ}
    env.setdefault("IMAGELOCK_STORE", str(Path.home() / ".cache/imagelock/store"))
    for who in ("vendor", "fleet"):
        run(["keygen", "-o", str(work / f"{who}.key"), "--no-passphrase"], env)
    run(["lock", str(vendor)], env)  # today's signed indexes, kept in the store for the bundle
    build, _ = run(["build", str(vendor), "-o", str(work / "out" / "image"),
                    "--sign", str(work / "vendor.key")], env)
    fleet_env = {**os.environ, "IMAGELOCK_STORE": str(work / "fleet-store"),
                 "IMAGELOCK_HTTP_BACKOFF": "0.05",
                 "PATH": str(Path(IMAGELOCK).parent) + ":" + os.environ.get("PATH", "")}
    with start_registry(work / "registry") as reg, serve(nothing) as (gone, _):
        for i in range(images):
            _, out = run(["push", str(work / "out" / "image"), f"{reg.host}/vendor/app{i}:1",
                          "--json"], env)
            ref = f"{reg.host}/vendor/app{i}@{json.loads(out)['digest']}"
            run(["attach", ref, str(work / "out" / "image.intoto.jsonl"), "--recipe",
                 str(vendor), "--inputs"], env)
        sources = [f"{reg.host}/vendor/app{i}" for i in range(images)]
        watch_args = ["watch", *sources, "--rebuilder", str(work / "fleet.key.pub"),
                      "--vendor-key", str(work / "vendor.key.pub")]
        watch, lines = run(watch_args, fleet_env)
        (work / "work.jsonl").write_text(lines)
        assert len(lines.splitlines()) == images, lines
        logs = work / "logs"
        logs.mkdir()
        rebuild = " ".join(shlex.quote(a) for a in [
            IMAGELOCK, "rebuild", "--vendor-key", str(work / "vendor.key.pub"),
            "--mirror", f"bookworm={gone}/debian", "--mirror", f"security={gone}/debian-security",
            "--sign",
            str(work / "fleet.key"), "--push-attestation", "--sign-failures",
            "--skip-if-vouched", "--attestation-out", str(work / "fleet.intoto.jsonl"),
            "--json"])
        item = (f'n=$(echo "$1" | tr -c "a-z0-9" _); s=$(date +%s.%N); {rebuild} "$1" '
                f'> "{logs}/$n.json" 2> "{logs}/$n.log"; rc=$?; '
                f'echo "$(date +%s.%N) $s" > "{logs}/$n.time"; exit $rc')
        script = (f"jq -r .reference < {shlex.quote(str(work / 'work.jsonl'))} | "
                  f"xargs -P{workers} -I{{}} sh -c {shlex.quote(item)} _ {{}}")
        t = time.perf_counter()
        r = subprocess.run(["bash", "-c", script], env=fleet_env)
        wall = time.perf_counter() - t
        if r.returncode != 0:
            raise SystemExit(f"a worker failed: see {logs}")
        (work / "logs-again").mkdir()
        t = time.perf_counter()
        subprocess.run(["bash", "-c", script.replace(str(logs), str(work / "logs-again"))],
                       env=fleet_env, check=True)
        rerun = time.perf_counter() - t
        _, again = run(watch_args, fleet_env)
    results = [json.loads(p.read_text()) for p in sorted(logs.glob("*.json"))]
    if sorted(r["verdict"] for r in results) != ["reproduced"] * images:
        raise SystemExit(f"verdicts: {[r['verdict'] for r in results]}")
    skipped = [json.loads(p.read_text()) for p in sorted((work / "logs-again").glob("*.json"))]
    if not (len(skipped) == images and all(s.get("skipped") for s in skipped)) or again.strip():
        raise SystemExit("the rerun did not skip every image, or watch still lists work")
    spent: dict[str, float] = defaultdict(float)
    busy = 0.0
    for log in logs.glob("*.log"):
        for k, v in phases(log).items():
            spent[k] += v
        end, start = map(float, log.with_suffix(".time").read_text().split())
        busy += end - start
    print(f"| fleet of {workers} workers, {images} python-base images, one shared store "
          f"(empty at start) | seconds | ratio to one build |\n|---|---:|---:|")
    print(f"| imagelock build (the vendor's, warm store) | {build:.1f} | 1.00 |")
    print(f"| imagelock watch ({images} repositories, {images} items) | {watch:.1f} | "
          f"{watch / build:.2f} |")
    print(f"| all {images} rebuilt, signed, attached (wall) | {wall:.1f} | {wall / build:.2f} |")
    print(f"| rerun of all {images} items: each skipped (wall) | {rerun:.1f} | "
          f"{rerun / build:.2f} |")
    print(f"\nthroughput: {images / wall * 3600:.0f} images/hour with {workers} workers on "
          f"{os.cpu_count()} cores ({wall / images:.1f} s of wall time per image)\n")
    print("| share of the workers' time | seconds (sum over workers) | share |\n|---|---:|---:|")
    spent["compare"] += spent.pop("pull", 0.0)  # reading the published image is comparing
    named = {"fetch": "fetch (signed indexes checked, inputs from the bundle or the shared "
             "store)", "layers": "build (layers, in the sandbox)",
             "compare": "compare (published image read and compared)"}
    for key, label in named.items():
        print(f"| {label} | {spent[key]:.1f} | {spent[key] / busy:.0%} |")
    rest = busy - sum(spent[k] for k in named)
    print(f"| the rest (process start-up, provenance and recipe, sign, push the VSA) | "
          f"{rest:.1f} | {rest / busy:.0%} |")
    print(f"| total worker time | {busy:.1f} | 100% |")
    if not os.environ.get("IMAGELOCK_BENCH_KEEP"):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
