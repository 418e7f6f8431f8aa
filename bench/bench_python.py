"""Python wheels: lock and install time for a keystone-sized set vs `python -m venv` + `pip install`.

Run: .venv/bin/python bench/bench_python.py [--requirement keystone] [--python-version 3.11]
Uses pip's configured indexes. One run of each; the imagelock lock starts from an empty store
and pip from an empty cache, so both download everything once.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from imagelock.fetch.store import Store
from imagelock.formats.python import PythonContents, WheelPin
from imagelock.inputs.python.wheels import wheel_entries
from imagelock.lock.python import lock_python
from imagelock.tar.entry import Entry

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def digest(entries: list[Entry]) -> str:
    h = hashlib.sha256()
    for e in entries:
        h.update(f"{e.path}\0{e.mode:o}\0".encode())
        if e.content is not None:
            with e.content.open() as f:
                h.update(f.read())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requirement", action="append", default=None)
    ap.add_argument("--python-version", default=f"{sys.version_info[0]}.{sys.version_info[1]}")
    args = ap.parse_args()
    reqs: list[str] = args.requirement or ["keystone"]
    py: str = args.python_version
    contents = PythonContents(requirements=reqs, python_version=py)
    rows: list[tuple[str, str]] = []
    label = " ".join(reqs)

    with tempfile.TemporaryDirectory(prefix="imagelock-bench-py-") as tmp:
        t = Path(tmp)
        store = Store(t / "store")
        (t / "ctx").mkdir()

        def lock() -> list[WheelPin]:
            return lock_python(contents, t / "ctx", store)

        cold, pins = timed(lock)
        warm, again = timed(lock)
        assert again == pins, "the lock changed between two runs"
        mb = sum(p.size for p in pins) / 1e6
        rows.append((f"imagelock lock {label}: {len(pins)} wheels, {mb:.0f} MB, empty store",
                     f"{cold:.1f} s"))
        rows.append(("imagelock lock again (store filled; same pins: yes)", f"{warm:.1f} s"))

        def install(n: int) -> tuple[list[Entry], list[str]]:
            return wheel_entries(pins, store, t / f"staging-{n}",
                                 site_packages=contents.site_packages_dir(),
                                 scripts_dir=contents.scripts_dir,
                                 interpreter=contents.interpreter_path(),
                                 python_version=py, compile=contents.compile)

        inst1, (entries, notices) = timed(lambda: install(1))
        inst2, (entries2, _) = timed(lambda: install(2))
        same = digest(entries) == digest(entries2)
        pycs = sum(e.path.endswith(".pyc") for e in entries)
        rows.append((f"imagelock install into staging: {len(entries)} files ({pycs} pyc)",
                     f"{inst1:.1f} s"))
        rows.append((f"imagelock install again (identical bytes: {'yes' if same else 'NO'})",
                     f"{inst2:.1f} s"))
        ours = cold + inst1
        rows.append(("imagelock total: lock (empty store) + install", f"{ours:.1f} s"))

        env = {**os.environ, "PIP_CACHE_DIR": str(t / "pip-cache")}
        venv_s, _ = timed(lambda: subprocess.run(
            [sys.executable, "-m", "venv", str(t / "venv")], check=True, env=env))
        vpy = str(t / "venv" / "bin" / "python")
        pip_s, _ = timed(lambda: subprocess.run(
            [vpy, "-m", "pip", "install", "--quiet", "--only-binary", ":all:", *reqs],
            check=True, env=env, capture_output=True))
        rows.append(("python -m venv", f"{venv_s:.1f} s"))
        rows.append((f"pip install {label} into it (empty pip cache)", f"{pip_s:.1f} s"))
        theirs = venv_s + pip_s
        rows.append(("venv + pip total", f"{theirs:.1f} s"))
        rows.append(("ratio imagelock / (venv + pip)", f"{ours / theirs:.2f}"))

        wheels = t / "wheel-files"
        wheels.mkdir()
        for p in pins:
            os.link(store.path_for(p.sha256), wheels / p.filename)
        subprocess.run([sys.executable, "-m", "venv", str(t / "venv2")], check=True, env=env)
        only_s, _ = timed(lambda: subprocess.run(
            [str(t / "venv2" / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
             "--no-index", *sorted(str(w) for w in wheels.iterdir())], check=True, env=env,
            capture_output=True))
        rows.append((f"pip install --no-deps of the {len(pins)} pinned wheel files (install only)",
                     f"{only_s:.1f} s"))
        rows.append(("ratio imagelock install / pip install-only", f"{inst1 / only_s:.2f}"))

    width = max(len(r[0]) for r in rows)
    print(f"{'step'.ljust(width)}  time")
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")
    for n in notices:
        print(f"notice: {n}")


if __name__ == "__main__":
    main()
