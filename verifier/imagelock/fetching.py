"""The fetch phase: make sure every pinned input of a lock is in the store, hash-checked.

Network is used only here (and in `lock`); with `offline=True` nothing is downloaded and a
missing or corrupt object is an error (exit 3) that says which input and what to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import FetchError
from .fetch import fetch_to_store
from .formats.lock import Lock
from .formats.spec import HttpSource
from .lockfile import load_spec
from .resolve.downloads import urls_for
from .store import Store


@dataclass
class FetchReport:
    present: int = 0
    downloaded: int = 0
    bytes_downloaded: int = 0


def http_sources_of(lock_path: Path, lock: Lock) -> dict[str, HttpSource]:
    spec_path = lock_path.parent / lock.spec
    if not spec_path.is_file():
        return {}
    spec = load_spec(spec_path)
    return {k: v for k, v in spec.sources.items() if isinstance(v, HttpSource)}


def fetch_lock(
    lock: Lock,
    lock_path: Path,
    store: Store,
    *,
    cli_mirrors: Mapping[str, list[str]],
    offline: bool,
) -> FetchReport:
    report = FetchReport()
    sources = http_sources_of(lock_path, lock)
    for pin in lock.downloads:
        what = f"download {pin.location}"
        if store.has(pin.sha256):
            store.verify(pin.sha256, pin.size, what)
            report.present += 1
            continue
        if offline:
            raise FetchError(
                f"{what} (sha256 {pin.sha256}) is not in the store {store.root} and --offline was given",
                hint="run `imagelock fetch` with network access first",
            )
        fetch_to_store(store, urls_for(pin.location, sources, cli_mirrors), sha256=pin.sha256,
                       size=pin.size, what=what)
        report.downloaded += 1
        report.bytes_downloaded += pin.size
    return report
