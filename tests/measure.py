"""Run a command in a child process and measure what it cost: peak resident memory and time.

Linux counts a process's peak RSS from before its exec: a child forked from the test process
starts with the test process's high-water mark (exec_mmap keeps the larger). So the command
runs under a small Python wrapper, itself forked from the test, and the wrapper reports its own
child's peak with getrusage(RUSAGE_CHILDREN): that child was forked from a process of a few
megabytes, so its figure is its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(f"{code} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
"""


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float
    seconds: float
    timed_out: bool


def run_measured(argv: list[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, timeout: float = 30) -> Measured:
    """Run `argv`, killing it after `timeout` seconds; its exit code, output, peak RSS and time."""
    with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
        out, err, result = (Path(tmp) / n for n in ("out", "err", "result"))
        with open(out, "wb") as o, open(err, "wb") as e:
            start = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-I", "-c", _WRAPPER, str(result), *argv],
                                    stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env,
                                    cwd=cwd, start_new_session=True)
            try:
                proc.wait(timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                timed_out = True
            seconds = time.monotonic() - start
        code, rss_kib = (int(x) for x in result.read_text().split()) if result.exists() else (-9, 0)
        return Measured(
            returncode=code,
            stdout=out.read_text("utf-8", "replace"),
            stderr=err.read_text("utf-8", "replace"),
            peak_rss_mb=rss_kib / 1024,  # Linux reports KiB
            seconds=seconds,
            timed_out=timed_out,
        )
