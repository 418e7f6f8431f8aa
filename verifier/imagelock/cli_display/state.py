"""What the progress display knows: the open phases and their counts, and the words for them.

Pure bookkeeping and formatting, shared by the live display and the one-line-per-phase log;
the clock is passed in so the words can be tested.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from imagelock.core.progress import (
    MOVED,
    BytesMoved,
    Event,
    ItemDone,
    Phase,
    PhaseEnded,
    PhaseStarted,
    Planned,
    State,
    Working,
)

# States in the order a summary names them.
ORDER: tuple[State, ...] = ("downloaded", "written", "uploaded", "present", "resolved", "done")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """Text safe for a terminal or a log: no control character reaches it (names come from
    locks and registries, and an escape sequence in one must not drive the terminal)."""
    return _CONTROL.sub("?", text)


def size(n: float) -> str:
    """Bytes for people, in SI units as pip and apt show them."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


@dataclass
class PhaseState:
    """One open (or just closed) phase."""

    phase: Phase
    started: float
    unit: str = "items"
    planned_items: int | None = None
    planned_bytes: int | None = None
    items: int = 0
    by_state: Counter[str] = field(default_factory=Counter)
    bytes_by_state: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)  # bytes moved per mirror
    source: str | None = None  # who serves the current download
    inflight: int = 0  # bytes of the unit in flight
    inflight_name: str | None = None
    current: str | None = None  # what is being done now
    ended: float | None = None
    ok: bool = True

    @property
    def done_bytes(self) -> int:
        return sum(self.bytes_by_state.values()) + self.inflight

    @property
    def moved_bytes(self) -> int:
        return sum(self.bytes_by_state[s] for s in MOVED) + self.inflight

    def elapsed(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started

    def rate(self, now: float) -> float | None:
        t = self.elapsed(now)
        return self.moved_bytes / t if self.moved_bytes and t > 0.05 else None

    def summary(self) -> str:
        """The phase in one line, once it has ended: what, how much, from where, how long."""
        t = self.elapsed(self.started)
        if not self.ok:
            done = (f" ({self.items} of {self.planned_items} {self.unit} done)"
                    if self.planned_items is not None else "")
            return f"{self.phase}: failed after {duration(t)}{done}"
        parts = []
        for state in ORDER:
            n = self.by_state[state]
            if not n:
                continue
            nbytes = self.bytes_by_state[state]
            notes = [size(nbytes)] if nbytes else []
            if state in MOVED and self.sources:
                word = "to" if state == "uploaded" else "from"
                notes.append(f"{word} " + ", ".join(s for s, _ in self.sources.most_common(3)))
            parts.append((n, state, f" ({', '.join(notes)})" if notes else ""))
        listed = ", ".join(f"{k} {st}{d}" for k, st, d in parts)
        if parts and self.planned_items is None:  # no unit to count in: "3 downloaded (...)"
            what = listed + " "
        elif len(parts) == 1:  # "52 inputs downloaded (19.4 MB, from HOST)"
            n, state, detail = parts[0]
            what = f"{count(n, self.unit)} {state}{detail} "
        elif parts:  # "52 inputs: 32 downloaded (...), 20 present (...)"
            what = f"{count(self.items, self.unit)}: {listed} "
        else:
            what = f"{count(self.planned_items, self.unit)} " if self.planned_items == 0 else ""
        rate = self.rate(self.started)
        took = f"in {duration(t)}" + (f" ({size(rate)}/s)" if rate else "")
        return f"{self.phase}: {what}{took}"


def count(n: int | None, unit: str) -> str:
    """`1 layer`, `4 layers`."""
    return f"{n} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


class Phases:
    """The stack of open phases, fed with events; returns what should be said about them."""

    def __init__(self) -> None:
        self.open: list[PhaseState] = []

    def feed(self, event: Event, now: float) -> tuple[PhaseState | None, ItemDone | None]:
        """Apply `event`; returns the phase that just ended and the item that just finished."""
        if isinstance(event, PhaseStarted):
            self.open.append(PhaseState(event.phase, now))
            return None, None
        if not self.open:
            return None, None  # an event outside any phase: nothing to count it in
        top = self.open[-1]
        if isinstance(event, PhaseEnded):
            # Phases nest as blocks do; the innermost of that name is the one that ends.
            for i in range(len(self.open) - 1, -1, -1):
                if self.open[i].phase == event.phase:
                    ended = self.open.pop(i)
                    ended.ended, ended.ok = now, event.ok
                    return ended, None
            return None, None
        if isinstance(event, Planned):
            top.planned_items, top.planned_bytes, top.unit = event.items, event.bytes, event.unit
        elif isinstance(event, Working):
            top.current, top.source = event.what, None
        elif isinstance(event, BytesMoved):
            if event.name != top.inflight_name:
                top.inflight, top.inflight_name = 0, event.name
            top.inflight += event.n
            if event.name is not None:
                top.current = event.name
            if event.source is not None:
                top.source = event.source
                top.sources[event.source] += event.n
        elif isinstance(event, ItemDone):
            top.items += 1
            top.by_state[event.state] += 1
            top.bytes_by_state[event.state] += event.size or 0
            if event.state in MOVED and event.source is not None:
                if top.inflight_name != event.name:  # no byte events came for it
                    top.sources[event.source] += event.size or 0
                top.source = event.source
            top.inflight, top.inflight_name = 0, None
            return None, event
        return None, None


def item_line(phase: Phase | None, item: ItemDone) -> str:
    """One finished unit, for --verbose."""
    where = ""
    if item.source is not None and item.state in MOVED:
        where = f" {'to' if item.state == 'uploaded' else 'from'} {item.source}"
    amount = f" ({size(item.size)})" if item.size else ""
    return clean(f"{phase or 'progress'}: {item.state} {item.name}{amount}{where}")
