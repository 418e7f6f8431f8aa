"""What applying maintainer-script effects costs: the python-base build with its lock's effects,
against the same lock with the effects section removed (what the build did before imagelock
derived them: the same pins, files only).

Three rows, each the median of RUNS builds (alternated, so that load on a shared machine hits
both alike), wall-clock and CPU seconds (user + system of the build and its children):
- without effects (the lock as before);
- with effects, bytecode cache warm: every build after `imagelock lock`, which fills it;
- with effects, bytecode cache cold: a first build on a new machine, where the image's own
  interpreter compiles the standard library in the sandbox.
The ratios to the first row are printed.

Run: ./bench/run debian-scripts [RUNS]   (network, unless IMAGELOCK_STORE already holds
python-base's inputs: its downloads are linked into the bench's private store)
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGELOCK = str(Path(sys.executable).parent / "imagelock")
CACHE = "derived/debian-bytecode"


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _build(spec_dir: Path, out: Path, env: dict[str, str], *, matches: bool) -> tuple[float, float]:
    """One build's wall and CPU seconds; `matches`: whether it must give the lock's digests
    (the lock without effects keeps the digests of the build with them, so it may not)."""
    shutil.rmtree(out, ignore_errors=True)
    cpu, wall = _children_cpu(), time.perf_counter()
    r = subprocess.run([IMAGELOCK, "build", str(spec_dir), "-o", str(out), "--offline", "-q"],
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - wall, _children_cpu() - cpu
    if r.returncode not in ((0,) if matches else (0, 1)):
        raise SystemExit(f"build of {spec_dir} failed: {r.stderr}")
    return took


def _link_downloads(shared: str | None, store: Path) -> None:
    """Hard links (else copies) of a shared store's downloaded inputs, none of its derived files."""
    if not shared or not (Path(shared) / "sha256").is_dir():
        return
    dest = store / "sha256"
    for src in (Path(shared) / "sha256").rglob("*"):
        if src.is_file():
            target = dest / src.relative_to(Path(shared) / "sha256")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, target)
            except OSError:
                shutil.copyfile(src, target)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    work = Path(tempfile.mkdtemp(prefix="imagelock-bench-scripts-"))
    # A private store: the cold rows delete its bytecode cache, which must never happen to a
    # store that tests or other builds share. A given IMAGELOCK_STORE only lends its downloads.
    store = work / "store"
    _link_downloads(os.environ.get("IMAGELOCK_STORE"), store)
    env = {**os.environ, "IMAGELOCK_STORE": str(store)}
    example = REPO / "examples" / "python-base"
    subprocess.run([IMAGELOCK, "fetch", str(example)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    lock = json.loads((example / "imagelock.lock").read_text())
    effects = lock["debian"]["linux/amd64"].get("scripts")
    assert effects is not None, "examples/python-base/imagelock.lock has no maintainer-script effects"
    with_dir, without_dir = work / "with", work / "without"
    for d in (with_dir, without_dir):
        d.mkdir()
        shutil.copy(example / "imagelock.yaml", d / "imagelock.yaml")
    (with_dir / "imagelock.lock").write_text(json.dumps(lock, indent=2) + "\n")
    old = json.loads(json.dumps(lock))
    for pl in old["debian"].values():
        pl.pop("scripts", None)
        pl.pop("script_tools", None)
    (without_dir / "imagelock.lock").write_text(json.dumps(old, indent=2) + "\n")
    rows: dict[str, list[tuple[float, float]]] = {"without": [], "warm": [], "cold": []}
    _build(with_dir, work / "out", env, matches=True)  # fills the cache for the warm runs
    for _ in range(runs):
        rows["without"].append(_build(without_dir, work / "out", env, matches=False))
        rows["warm"].append(_build(with_dir, work / "out", env, matches=True))
        shutil.rmtree(store / CACHE, ignore_errors=True)
        rows["cold"].append(_build(with_dir, work / "out", env, matches=True))
    base_wall = statistics.median(w for w, _ in rows["without"])
    base_cpu = statistics.median(c for _, c in rows["without"])
    modules = sum(len(a["sources"]) for a in effects["actions"] if a["action"] == "python-compile")
    print(f"python-base: {len(lock['debian']['linux/amd64']['packages'])} packages, "
          f"{len(effects['actions'])} script actions ({modules} modules to byte-compile); "
          f"median of {runs} builds, {os.cpu_count()} CPUs")
    print(f"{'build':<44}{'wall s':>8}{'ratio':>8}{'CPU s':>8}{'ratio':>8}")
    labels = {"without": "without effects (files only, as before)",
              "warm": "with effects, bytecode cache warm",
              "cold": "with effects, bytecode cache cold"}
    for key, label in labels.items():
        wall = statistics.median(w for w, _ in rows[key])
        cpu = statistics.median(c for _, c in rows[key])
        print(f"{label:<44}{wall:>8.2f}{wall / base_wall:>8.2f}{cpu:>8.2f}{cpu / base_cpu:>8.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
