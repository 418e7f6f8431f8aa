"""Places a pinned input's bytes may come from, tried in order, each byte checked.

A rebuild from a reference alone fetches every input from, in this order: the local store, the
configured mirrors, the input bundle beside the image, a snapshot archive. This module knows
nothing of what the places are: a `Place` either fetches a wanted object into the store, says it
does not have it, or fails. A place that serves other bytes than the pin is named, its bytes are
discarded, and the next place is tried; only when no place has the input is the fetch an error
(exit 3), which names every place and why each failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from imagelock.core.errors import FetchError, IntegrityError
from imagelock.fetch.http import fetch_to_store, is_absent, probe
from imagelock.fetch.store import Store

LOCAL_STORE = "local store"


@dataclass(frozen=True)
class Wanted:
    """One pinned object: its sha256 (hex), size if the lock knows it, and what to call it."""

    sha256: str
    size: int | None
    what: str
    limit: int | None = None  # for an object of unknown size (an InRelease): at most this


@dataclass(frozen=True)
class Availability:
    """Whether a place has an object now (for the rot monitor), and how it was told."""

    available: bool
    detail: str


class Place:
    """Somewhere an object may be fetched from. Subclasses say where."""

    label: str = "?"
    kind: str = "?"  # mirror, bundle, snapshot
    network: bool = True

    def __init__(self) -> None:
        # What the place served that was not the pin, even when a later URL of it had the
        # right bytes: named in the report, so a lying mirror is noticed.
        self.discarded: list[str] = []

    def fetch(self, store: Store, w: Wanted) -> bool:
        """Fetch `w` into the store (hash-checked); False when the place does not have it.

        Raises IntegrityError when the place served other bytes, FetchError when it could not
        be asked."""
        raise NotImplementedError

    def probe(self, w: Wanted) -> Availability:
        """Whether the place has `w` now, without downloading it."""
        raise NotImplementedError


class UrlPlace(Place):
    """A list of URLs per object (mirrors, snapshot archives); `urls` may raise FetchError when
    the place cannot name any (e.g. no mirror configured)."""

    def __init__(self, label: str, kind: str, urls: Callable[[Wanted], list[str]], *,
                 replaced_ok: bool = False) -> None:
        super().__init__()
        self.label = label
        self.kind = kind
        self._urls = urls
        # Mirrors replace a suite's InRelease and indexes as the archive moves on: other bytes
        # at the same path are then no sign of a hostile mirror, only of a newer index.
        self.replaced_ok = replaced_ok

    def urls(self, w: Wanted) -> list[str]:
        return self._urls(w)

    def fetch(self, store: Store, w: Wanted) -> bool:
        urls = self.urls(w)
        wrong: list[str] = []
        failed: list[str] = []
        for url in urls:
            try:
                fetch_to_store(store, [url], sha256=w.sha256, size=w.size, what=w.what,
                               limit=w.limit)
                self.discarded += [f"{w.what}: {self.label} served other bytes than the pin: {x}"
                                   for x in wrong]
                return True
            except IntegrityError as e:
                if not self.replaced_ok:
                    wrong.append(f"{url}: {e.message}")
            except FetchError as e:
                if not is_absent(e):
                    failed.append(e.message)
        if wrong:
            raise IntegrityError(f"{self.label} served other bytes than the pin: " + "; ".join(wrong),
                                 hint="the mirror is damaged or hostile; the bytes were discarded")
        if failed:
            raise FetchError("; ".join(failed[-3:]))
        return False

    def probe(self, w: Wanted) -> Availability:
        try:
            urls = self.urls(w)
        except FetchError as e:
            return Availability(False, e.message)
        seen = []
        for url in urls:
            ok, length, why = probe(url)
            if ok and (length is None or w.size is None or length == w.size):
                return Availability(True, url)
            seen.append(f"{url}: {why if not ok else f'{length} bytes, not {w.size}'}")
        return Availability(False, "; ".join(seen[-3:]) or "no URL")


@dataclass
class Fetched:
    """Where each object came from, and what went wrong on the way (named places)."""

    place: dict[str, str] = field(default_factory=dict)  # sha256 -> place label
    warnings: list[str] = field(default_factory=list)

    def count(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for label in self.place.values():
            out[label] = out.get(label, 0) + 1
        return out


def fetch_in_order(
    store: Store, w: Wanted, places: Sequence[Place], *, offline: bool, log: Fetched
) -> str:
    """Make `w` present in the store from the first place that has it; returns that place."""
    if store.has(w.sha256):
        try:
            store.verify(w.sha256, w.size, w.what)
            log.place[w.sha256] = LOCAL_STORE
            return LOCAL_STORE
        except IntegrityError as e:
            log.warnings.append(f"{LOCAL_STORE}: {e.message}")
    problems = [f"{LOCAL_STORE}: not there"]
    wrong = False
    for place in places:
        if offline and place.network:
            problems.append(f"{place.label}: not asked (--offline)")
            continue
        try:
            got = place.fetch(store, w)
            log.warnings += place.discarded
            place.discarded.clear()
            if got:
                log.place[w.sha256] = place.label
                return place.label
            problems.append(f"{place.label}: not there")
        except IntegrityError as e:
            wrong = True
            log.warnings.append(f"{w.what}: {e.message}")
            problems.append(e.message)
        except FetchError as e:
            problems.append(f"{place.label}: {e.message}")
    cls = IntegrityError if wrong else FetchError
    raise cls(f"{w.what} (sha256 {w.sha256}) could not be fetched: " + "; ".join(problems),
              hint="configure a mirror that still has it (--mirror NAME=URL), a snapshot "
              "archive (--snapshot NAME=URL), or use the image's input bundle")
