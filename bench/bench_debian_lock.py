"""Debian lock timings: index parsing (python-debian vs our splitter) and lock cold vs cached.

Run: .venv/bin/python bench/bench_debian_lock.py [--suite bookworm]
Uses the machine's apt sources for the mirror; the cold runs use a fresh temporary store.
"""

from __future__ import annotations

import argparse
import lzma
import tempfile
import time
from collections.abc import Callable
from typing import TypeVar

from debian import deb822
from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianContents, DebianPackagePin, DebianSource
from imagelock.lock.debian import lock_debian
from imagelock.lock.debian.index import parse_packages
from imagelock.lock.debian.lock import source_mirrors
from imagelock.lock.debian.release import fetch_release

T = TypeVar("T")

SETS = {
    "python-base (python3, ca-certificates, tzdata)": ["python3", "ca-certificates", "tzdata"],
    "large (libreoffice-core, build-essential, python3-pip, git, apache2, curl, vim)": [
        "libreoffice-core", "build-essential", "python3-pip", "git", "apache2", "curl", "vim"],
}


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--suite", default="bookworm")
    args = ap.parse_args()
    source = DebianSource(kind="debian", suites=[args.suite])
    rows: list[tuple[str, str]] = []

    with tempfile.TemporaryDirectory(prefix="imagelock-bench-") as tmp:
        # Lock timings first: the first run of each set fills a fresh store (cold).
        for label, names in SETS.items():
            store = Store(f"{tmp}/{len(rows)}")
            contents = DebianContents(packages=names)
            def run(c: DebianContents = contents, s: Store = store) -> list[DebianPackagePin]:
                return lock_debian({"debian": source}, c, s)[1]

            cold, pins = timed(run)
            warm, _ = timed(run)
            n = len(pins)
            rows.append((f"lock {label}: {n} packages, cold", f"{cold:.2f} s"))
            rows.append((f"lock {label}: {n} packages, index cached", f"{warm:.2f} s"))

        mirrors = source_mirrors("debian", source, args.suite)
        rel = fetch_release(mirrors, args.suite, source.keyring).release
        entry = rel.files["main/binary-amd64/Packages.xz"]
        xz = store.path_for(entry.sha256).read_bytes()
        dt, raw = timed(lambda: lzma.decompress(xz))
        rows.insert(0, (f"xz decompress {len(xz) >> 20} MB -> {len(raw) >> 20} MB", f"{dt:.2f} s"))
        text = raw.decode()
        dt, recs = timed(lambda: parse_packages(text))
        rows.insert(1, (f"parse Packages, regex splitter ({len(recs)} stanzas)", f"{dt:.2f} s"))
        dt, n = timed(lambda: sum(1 for _ in deb822.Packages.iter_paragraphs(
            text.splitlines(keepends=True), use_apt_pkg=False)))
        rows.insert(2, (f"parse Packages, python-debian deb822 ({n} stanzas)", f"{dt:.2f} s"))

    w = max(len(r[0]) for r in rows)
    print(f"{'Debian lock (' + args.suite + ', amd64)':<{w}}  time")
    print("-" * (w + 10))
    for what, value in rows:
        print(f"{what:<{w}}  {value}")


if __name__ == "__main__":
    main()
