"""The fetch phase: make sure every pinned input of a lock is in the store, hash-checked.

Each input kind says where its pins' bytes come from (`InputKind.sources`); this loop asks every
kind in turn, and downloads only what the store lacks.

Network is used only here (and in `lock`); with `offline=True` nothing is downloaded and a
missing or corrupt object is an error (exit 3) that says which input and what to run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from imagelock.core import progress
from imagelock.core.confine import inside
from imagelock.core.errors import FetchError, IntegrityError
from imagelock.fetch.http import fetch_to_store
from imagelock.fetch.store import Store
from imagelock.formats.files import load_spec
from imagelock.formats.lock import Lock
from imagelock.inputs.kind import Mirrors
from imagelock.inputs.registry import KINDS


@dataclass
class FetchReport:
    present: int = 0
    downloaded: int = 0
    bytes_downloaded: int = 0


def sources_of(lock_path: Path, lock: Lock) -> dict[str, object]:
    """The spec's sources (for their mirrors), or none when the lock travels alone."""

    spec_path = inside(lock_path.parent, lock.spec, what="spec", path=lock_path, field="spec")
    if not spec_path.is_file():
        return {}
    return dict(load_spec(spec_path, lock.set_image).sources)


def _fetch_one(store: Store, report: FetchReport, *, sha256: str, size: int, what: str,
               urls: Callable[[], list[str]], offline: bool) -> None:
    if store.has(sha256):
        try:
            store.verify(sha256, size, what)
            report.present += 1
            progress.item(what, "present", size)
            return
        except IntegrityError:
            if offline:
                raise
            # The corrupt copy is deleted: online, fetch it again now, not on the next run.
    if offline:
        raise FetchError(
            f"{what} (sha256 {sha256}) is not in the store and --offline was given",
            hint="run `imagelock fetch` with network access first",
        )
    fetch_to_store(store, urls(), sha256=sha256, size=size, what=what)
    report.downloaded += 1
    report.bytes_downloaded += size


def fetch_lock(
    lock: Lock,
    lock_path: Path,
    store: Store,
    *,
    cli_mirrors: Mapping[str, list[str]],
    offline: bool,
) -> FetchReport:
    """Fetch every input of the lock at `lock_path`, with mirrors from the spec beside it."""
    return fetch_pins(lock, sources_of(lock_path, lock), store, cli_mirrors=cli_mirrors,
                      offline=offline)


@progress.phase("fetch")
def fetch_pins(
    lock: Lock,
    sources: Mapping[str, object],
    store: Store,
    *,
    cli_mirrors: Mapping[str, list[str]],
    offline: bool,
) -> FetchReport:
    """Make every pinned input of `lock` present and intact in the store, kind by kind."""
    report = FetchReport()
    mirrors = Mirrors(sources, cli_mirrors)
    chain = [lock]
    while (up := chain[-1].parent) is not None and up.lock is not None:
        chain.append(up.lock)  # an image of a set needs its parents' pins
    pending = [src for one in chain for kind in KINDS for src in kind.sources(one, mirrors)]
    if len(chain) > 1:
        pending = list({src.sha256: src for src in pending}.values())
    base = chain[-1].parent.base if chain[-1].parent is not None else None
    if base is not None:
        # lazy: the registry client loads only for an image built on a base outside its set
        from imagelock.oci.registry.base_image import fetch_base

        report.downloaded += fetch_base(base, store, offline=offline)
    progress.planned(len(pending), sum(src.size for src in pending), "inputs")
    for src in pending:
        _fetch_one(store, report, sha256=src.sha256, size=src.size, what=src.what,
                   urls=src.urls, offline=offline)
    return report
