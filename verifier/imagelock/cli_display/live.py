"""Progress on a terminal: a live region on stderr, redrawn a few times a second (rich)."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from imagelock.cli_display.state import Phases, PhaseState, clean, item_line, size
from imagelock.core.progress import Event, listening

REFRESH_PER_SECOND = 8
BAR = 20  # characters of the progress bar


class LiveDisplay:
    """Listens to progress events; while a phase is open, shows every open phase as a line:
    spinner, phase, bar and counts, bytes, rate, the serving mirror and the current item. When
    a phase ends its summary line is printed above the live region and stays."""

    def __init__(self, out: TextIO, *, verbose: bool) -> None:
        self.console = Console(file=out, stderr=True, highlight=False, soft_wrap=False)
        self.verbose = verbose
        self.phases = Phases()
        self._lock = threading.Lock()  # the phases' state
        self._drawing = threading.Lock()  # starting, printing above and stopping the region
        self._live: Live | None = None
        self._spinners: dict[int, Spinner] = {}
        self._listening = listening(self)

    def __call__(self, event: Event) -> None:
        # The state lock is never held while rich draws: rich's refresh thread holds its own
        # lock while it asks `_render` (which takes the state lock) for the region.
        said: list[Text] = []
        with self._lock:
            top = self.phases.open[-1].phase if self.phases.open else None
            ended, item = self.phases.feed(event, time.monotonic())
            if ended is not None:
                mark = ("✓ ", "green") if ended.ok else ("✗ ", "red")
                name, _, rest = clean(ended.summary()).partition(": ")
                said.append(Text.assemble(mark, (name, "bold"), ": " + rest))
            elif item is not None and self.verbose:
                said.append(Text(item_line(top, item), style="dim"))
            running = bool(self.phases.open)
        with self._drawing:
            if running and self._live is None:
                self._live = Live(console=self.console, get_renderable=self._render,
                                  refresh_per_second=REFRESH_PER_SECOND, transient=True,
                                  redirect_stdout=False, redirect_stderr=False)
                self._live.start()
            for line in said:
                self.console.print(line)
            if not running:
                self._stop()

    def _stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _render(self) -> RenderableType:
        with self._lock:
            now = time.monotonic()
            width = self.console.width
            return Group(*(self._line(st, now, width) for st in self.phases.open))

    def _line(self, st: PhaseState, now: float, width: int) -> Text:
        """`⠹ fetch    ━━━━━━━━━━────────── 31/52 inputs  12.3/19.4 MB  4.1 MB/s  from HOST
        package x`, cut to the terminal's width (the current item gives way first)."""
        spinner = self._spinners.setdefault(id(st), Spinner("dots", style="cyan"))
        frame = spinner.render(now)
        line = Text.assemble(frame if isinstance(frame, Text) else Text(str(frame)), " ",
                             (f"{st.phase:<8}", "bold"), " ")
        if st.planned_items:
            done = round(BAR * min(st.items, st.planned_items) / st.planned_items)
            line.append("━" * done, style="magenta")
            line.append("─" * (BAR - done), style="bright_black")
            line.append(f" {st.items}/{st.planned_items} {st.unit}")
        elif st.items:
            line.append(f"{st.items} {st.unit}")
        if st.done_bytes:
            total = f"/{size(st.planned_bytes)}" if st.planned_bytes else ""
            line.append(f"  {size(st.done_bytes)}{total}", style="cyan")
        rate = st.rate(now)
        line.append(f"  {size(rate)}/s" if rate else f"  {st.elapsed(now):.0f} s", style="green")
        if st.source and st.current:  # the mirror first: a long item name is cut, not it
            line.append(f"  from {clean(st.source)}", style="yellow")
        if st.current:
            line.append(f"  {clean(st.current)}", style="dim")
        line.truncate(max(width - 1, 20), overflow="ellipsis")
        return line

    def __enter__(self) -> LiveDisplay:
        self._listening.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listening.__exit__(None, None, None)
        with self._drawing:
            self._stop()
