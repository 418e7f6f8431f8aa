"""Progress for logs: one plain line per phase, when it ends, with its duration."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TextIO

from imagelock.cli_display.state import Phases, clean, item_line
from imagelock.core.progress import Event, listening


class LineDisplay:
    """Listens to progress events and writes a line per finished phase (and per finished item
    with `verbose`) to `out`."""

    def __init__(self, out: TextIO, *, verbose: bool) -> None:
        self.out = out
        self.verbose = verbose
        self.phases = Phases()
        self._lock = threading.Lock()
        self._listening = listening(self)

    def __call__(self, event: Event) -> None:
        with self._lock:
            top = self.phases.open[-1].phase if self.phases.open else None
            ended, item = self.phases.feed(event, time.monotonic())
            if ended is not None:
                self._say(clean(ended.summary()))
            elif item is not None and self.verbose:
                self._say(item_line(top, item))

    def _say(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed log must not fail the command
            print(line, file=self.out, flush=True)

    def __enter__(self) -> LineDisplay:
        self._listening.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listening.__exit__(None, None, None)
