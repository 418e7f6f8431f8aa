"""Progress events: what a long stage is doing now, for whoever listens.

Locking a large spec, fetching a hundred inputs or pulling a big image takes a while; a person
at a terminal must be able to tell working from hung. Stages say what they do with one or two
calls per loop (`phase`, `planned`, `item`, `moved`, `working`), and know nothing of screens:
the CLI installs a listener (`imagelock.cli_display`) that draws them.

Nobody listens by default: every call returns after one global read, so library callers and
tests pay nothing. The listener is process-wide rather than a context variable on purpose: the
layer writer and the HTTP pool report from worker threads, which do not inherit a context.
Events never carry secrets: a download's source is reduced to its mirror's host (`source_of`).
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import ContextDecorator
from dataclasses import dataclass
from typing import Literal

Phase = Literal["resolve", "fetch", "layers", "compare", "sign", "push", "pull"]
# What happened to one unit of work. `downloaded`, `written` and `uploaded` moved bytes;
# `present` found them already there (in the store, or in the registry).
State = Literal["present", "downloaded", "written", "uploaded", "resolved", "done"]
MOVED: frozenset[State] = frozenset({"downloaded", "written", "uploaded"})


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    phase: Phase


@dataclass(frozen=True, slots=True)
class PhaseEnded:
    phase: Phase
    ok: bool  # False when the phase ended with an exception


@dataclass(frozen=True, slots=True)
class Planned:
    """How much the current phase will do, once the stage knows."""

    items: int
    bytes: int | None = None
    unit: str = "items"  # what an item is, for people: "inputs", "layers", "blobs"


@dataclass(frozen=True, slots=True)
class Working:
    """What the stage is busy with now, when that is not a download (e.g. pip resolving)."""

    what: str


@dataclass(frozen=True, slots=True)
class ItemDone:
    """One unit of work finished: an input fetched or found, a layer written, a blob sent."""

    name: str
    state: State
    size: int | None = None
    source: str | None = None  # the mirror or registry host that served it


@dataclass(frozen=True, slots=True)
class BytesMoved:
    """Bytes of the unit in flight just went through (downloaded, hashed, compressed)."""

    n: int
    name: str | None = None
    source: str | None = None


Event = PhaseStarted | PhaseEnded | Planned | Working | ItemDone | BytesMoved
Listener = Callable[[Event], None]

_listener: Listener | None = None
_lock = threading.Lock()


def emit(event: Event) -> None:
    listener = _listener
    if listener is not None:
        listener(event)


def active() -> bool:
    """True when someone listens: lets a stage skip work done only to report."""
    return _listener is not None


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send every event to `listener` while the block runs (one listener at a time)."""
    global _listener
    with _lock:
        previous, _listener = _listener, listener
    try:
        yield
    finally:
        with _lock:
            _listener = previous


class phase(ContextDecorator):  # noqa: N801 - used as a decorator, reads like one
    """A phase of the pipeline, as a `with` block or a function decorator; a phase may hold
    others (a build fetches, then writes layers)."""

    def __init__(self, name: Phase) -> None:
        self.name: Phase = name

    def __enter__(self) -> phase:
        emit(PhaseStarted(self.name))
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        emit(PhaseEnded(self.name, ok=exc_type is None))


def planned(items: int, nbytes: int | None = None, unit: str = "items") -> None:
    if _listener is not None:
        emit(Planned(items, nbytes, unit))


def working(what: str) -> None:
    if _listener is not None:
        emit(Working(what))


def item(name: str, state: State, size: int | None = None, source: str | None = None) -> None:
    if _listener is not None:
        emit(ItemDone(name, state, size, source))


def moved(n: int, name: str | None = None, source: str | None = None) -> None:
    if _listener is not None:
        emit(BytesMoved(n, name, source))


def counted(chunks: Iterable[bytes], name: str, source: str | None) -> Iterator[bytes]:
    """`chunks` unchanged, reporting each as bytes moved for `name` from `source`."""
    for chunk in chunks:
        if _listener is not None:
            emit(BytesMoved(len(chunk), name, source))
        yield chunk


def source_of(url: str) -> str:
    """Who serves `url`, for people: the host (and port) of a mirror or registry, never the
    user or password a URL may carry, nor its path; `local files` for file:// URLs."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file" or not parts.hostname:
        return "local files"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname}:{port}" if port else parts.hostname
