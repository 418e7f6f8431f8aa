"""Progress on the command line: the listener the CLI installs for `imagelock.core.progress`.

On a terminal, a live display on stderr (rich): each open phase with its counts, bytes, rate
and the mirror serving the current download; a line per phase stays when it ends. Elsewhere (a
CI log, a pipe) or with --json: one plain line per phase with its duration, no control
characters. --quiet: nothing. --verbose adds a line per input, layer or blob as it finishes.
stdout is never touched: it belongs to the command's result (pure JSON with --json).
"""

from __future__ import annotations

import os
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import TextIO

from imagelock.cli_display.lines import LineDisplay


def show_progress(*, quiet: bool, verbose: bool, json_out: bool,
                  stream: TextIO | None = None) -> AbstractContextManager[object]:
    """The display the options ask for, as a context manager that listens while it is open."""
    if quiet:
        return nullcontext()
    out = stream if stream is not None else sys.stderr
    if not json_out and _is_terminal(out):
        # lazy: rich costs tens of ms to import; only a terminal needs it
        from imagelock.cli_display.live import LiveDisplay

        return LiveDisplay(out, verbose=verbose)
    return LineDisplay(out, verbose=verbose)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except ValueError:  # closed
        return False
