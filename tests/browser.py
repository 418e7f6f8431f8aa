"""Looking at what imagelock shows a person: pages in headless Chromium, terminals in a
pseudo-terminal read through a VT100 emulator (pyte).

Chromium is Debian's package (scripts/setup installs it). It runs as root here, so without its
own sandbox, with a fresh profile, and with every background fetch turned off: a page under test
gets nothing from the network. Screenshots are written where the test says; with
IMAGELOCK_SCREENSHOTS=DIR they are also copied there (that is how docs/img is refreshed).
"""

from __future__ import annotations

import fcntl
import html
import html.parser
import os
import pty
import select
import shutil
import struct
import subprocess
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyte
from helpers import need

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]


def chromium(page: Path, *, dump_dom: bool = False, screenshot: Path | None = None,
             size: tuple[int, int] = (1000, 1000)) -> str:
    """Load `page` in headless Chromium; return the DOM after load (scripts, had any run, have
    run by then) and/or write a PNG screenshot."""
    exe = need("chromium")
    with tempfile.TemporaryDirectory(prefix="imagelock-chromium-") as profile:
        args = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}"]
        if dump_dom:
            args.append("--dump-dom")
        if screenshot is not None:
            args.append(f"--screenshot={screenshot}")
        r = subprocess.run([*args, page.absolute().as_uri()], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    if screenshot is not None:
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "chromium wrote no PNG"
        keep = os.environ.get("IMAGELOCK_SCREENSHOTS")
        if keep:
            shutil.copy(screenshot, Path(keep) / screenshot.name)
    return r.stdout


@dataclass
class Page:
    """A DOM as a reader sees it: the title, the visible text, and which elements exist."""

    title: str = ""
    text: str = ""
    tags: set[str] = field(default_factory=set)


class _Reader(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._stack: list[str] = []
        self._parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.add(tag)
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self._stack and self._stack.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        where = self._stack[-1] if self._stack else ""
        if where == "title":
            self.page.title += data
        elif where not in ("style", "script"):
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        self.page.text = " ".join(" ".join(self._parts).split())


def read_dom(dom: str) -> Page:
    reader = _Reader()
    reader.feed(dom)
    reader.close()
    return reader.page


# --- terminals -------------------------------------------------------------------------------

@dataclass
class TerminalRun:
    returncode: int
    output: bytes
    screens: list[list[str]]  # the screen's lines after each read, in order
    final: pyte.Screen
    ends: list[int] = field(default_factory=list)  # where in `output` each read ended
    size: tuple[int, int] = (110, 30)

    def screen_at(self, i: int) -> pyte.Screen:
        """The screen (with its colours) as it was after read `i`."""
        screen = pyte.Screen(*self.size)
        pyte.ByteStream(screen).feed(self.output[: self.ends[i]])
        return screen


def run_in_terminal(argv: list[str], *, env: dict[str, str], cwd: Path | None = None,
                    cols: int = 110, rows: int = 30, timeout: float = 600) -> TerminalRun:
    """Run `argv` with stdin, stdout and stderr on a pseudo-terminal of `cols` x `rows`, as a
    person at a terminal would; every read is fed to a VT100 emulator and the screen kept."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, **env, "TERM": "xterm-256color"}, cwd=cwd,
                            start_new_session=True)
    os.close(slave)
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    out = bytearray()
    screens: list[list[str]] = []
    ends: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            out += data
            stream.feed(data)
            screens.append([line.rstrip() for line in screen.display])
            ends.append(len(out))
        else:
            raise AssertionError(f"{argv} did not finish in {timeout} s")
        returncode = proc.wait(timeout=30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return TerminalRun(returncode, bytes(out), screens, screen, ends, (cols, rows))


_COLOURS = {"black": "#1b1f24", "red": "#cf222e", "green": "#1a7f37", "brown": "#9a6700",
            "blue": "#0969da", "magenta": "#8250df", "cyan": "#1b7c83", "white": "#6e7781",
            "default": "#e6edf3", "brightblack": "#6e7781"}


def screen_html(screens: list[tuple[str, pyte.Screen]], replace: dict[str, str] | None = None
                ) -> str:
    """Terminal screens as a page (dark background, the emulator's colours and bold), one
    titled box per screen: how docs/ shows a terminal. `replace` swaps words of the text (the
    repository names no mirror, so a picture for docs/ must not either)."""
    boxes = []
    for caption, scr in screens:
        rows: list[str] = []
        for y in range(scr.lines):
            cells: list[tuple[str, str]] = []  # (character, style)
            for x in range(scr.columns):
                ch = scr.buffer[y][x]
                # pyte names the 16 basic colours and gives 256-colour ones as hex.
                colour = _COLOURS.get(ch.fg, f"#{ch.fg}" if len(ch.fg) == 6 else "#e6edf3")
                cells.append((ch.data, f"color:{colour}" + (";font-weight:bold" if ch.bold else "")))
            for old, new in (replace or {}).items():
                text = "".join(c for c, _ in cells)
                while (at := text.find(old)) >= 0:
                    cells[at: at + len(old)] = [(c, cells[at][1]) for c in new]
                    text = "".join(c for c, _ in cells)
            rows.append("".join(f'<span style="{st}">{html.escape(c)}</span>' for c, st in cells)
                        if "".join(c for c, _ in cells).strip() else "")
        while rows and not rows[-1]:
            rows.pop()
        boxes.append(f"<p>{html.escape(caption)}</p><pre>{chr(10).join(rows)}</pre>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><style>"
            "body{margin:12px;background:#fff;font:14px sans-serif}"
            "pre{background:#0d1117;color:#e6edf3;padding:10px 12px;border-radius:6px;"
            "font:13px/1.35 'DejaVu Sans Mono',monospace;margin:4px 0 14px}"
            "</style></head><body>" + "".join(boxes) + "</body></html>")
