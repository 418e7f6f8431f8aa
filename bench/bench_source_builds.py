"""Time to lock and build glance and nova-compute (OpenStack 2025.1, upper-constraints), and the
share of it spent building wheels from source in the sandbox (issue 15).

Every source build runs (IMAGELOCK_SOURCE_BUILDS=always: no wheel is taken from the cache of
built wheels), in the lock and again in the build, as a rebuilder's build would. Downloads are
not timed apart: a first run on an empty store includes them; run twice for warm figures.

Usage: python bench/bench_source_builds.py [--only glance|nova-compute] [--store DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import imagelock.inputs.python.source_build as source_build
from imagelock import api

HERE = Path(__file__).resolve().parent / "source-builds"
SERVICES = ("glance", "nova-compute")


class BuildTimer:
    """Wraps the build stage's one entry point and adds up the time spent in it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.builds: list[tuple[str, float]] = []
        self._real = source_build.build_plan

    def __enter__(self) -> BuildTimer:
        def timed(plan: Any, *args: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return self._real(plan, *args, **kw)
            finally:
                dt = time.perf_counter() - t
                self.seconds += dt
                self.builds.append((plan.sdist.filename, dt))

        source_build.build_plan = timed
        return self

    def __exit__(self, *exc: object) -> None:
        source_build.build_plan = self._real


def one(service: str, store: Path, work: Path) -> dict[str, Any]:
    root = work / service
    shutil.copytree(HERE, root)
    spec = root / f"{service}.yaml"
    lock_path = root / f"{service}.lock"
    out: dict[str, Any] = {"service": service}
    with BuildTimer() as t:
        start = time.perf_counter()
        api.lock(spec, output=lock_path, store=store)
        out["lock_s"] = round(time.perf_counter() - start, 1)
        out["lock_source_builds_s"] = round(t.seconds, 1)
        out["built"] = [f"{name} ({dt:.1f} s)" for name, dt in t.builds]
    lock = json.loads(lock_path.read_text())
    out["wheels"] = len(lock["python"]["linux/amd64"])
    out["source_builds"] = len((lock.get("python_builds") or {}).get("linux/amd64", []))
    with BuildTimer() as t:
        start = time.perf_counter()
        result = api.build(lock_path, output=work / f"{service}-oci", store=store, offline=True)
        out["build_s"] = round(time.perf_counter() - start, 1)
        out["build_source_builds_s"] = round(t.seconds, 1)
    out["verdict"] = result.verdict
    for phase in ("lock", "build"):
        total = out[f"{phase}_s"]
        out[f"{phase}_share"] = f"{100 * out[f'{phase}_source_builds_s'] / total:.0f}%" if total else "-"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", choices=SERVICES)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ["IMAGELOCK_SOURCE_BUILDS"] = "always"
    store = args.store or Path(os.environ.get("IMAGELOCK_STORE", tempfile.mkdtemp(prefix="bench-store-")))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-source-builds-") as tmp:
        for service in [args.only] if args.only else SERVICES:
            rows.append(one(service, store, Path(tmp)))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'service':<14}{'wheels':>7}{'sdists':>7}{'lock s':>9}{'in builds':>11}"
          f"{'build s':>9}{'in builds':>11}  verdict")
    for r in rows:
        print(f"{r['service']:<14}{r['wheels']:>7}{r['source_builds']:>7}{r['lock_s']:>9}"
              f"{r['lock_share']:>11}{r['build_s']:>9}{r['build_share']:>11}  {r['verdict']}")
        print(f"{'':<14}built: {', '.join(r['built'])}")


if __name__ == "__main__":
    main()
