"""Run imagelock in a child process and measure what it cost: peak resident memory and time.

The peak comes from the kernel's own accounting of that one process (`wait4`'s
rusage.ru_maxrss), not from sampling. The kernel's figure for a process also covers the memory it
had before its exec, which for a child of the test runner is the test runner's own (hundreds of
MB after generating a bomb). So imagelock is started by a small launcher process, which forks
it from its own small memory and reports the rusage of that grandchild.

A child that runs past `timeout`, or whose resident memory passes `kill_above` (sampled, to spare
the machine when a bound is missing), is killed, and the result says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import IMAGELOCK

# argv: REPORT_FILE PROGRAM ARGS...; writes {"status", "maxrss"} of PROGRAM's process.
_LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"status": status, "maxrss": usage.ru_maxrss}, f)
"""


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes
    seconds: float
    killed: str | None  # why the child was killed, if it was

    def summary(self) -> str:
        return (f"exit {self.returncode}, peak RSS {self.peak_rss / (1 << 20):.0f} MiB, "
                f"{self.seconds:.1f} s" + (f", killed: {self.killed}" if self.killed else ""))


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _child_of(pid: int) -> int | None:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def run_measured(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 60,
                 kill_above: int = 1 << 30) -> Measured:
    """`imagelock ARGS` in a child; its exit code, output, peak RSS and wall time."""
    full_env = {**os.environ, **(env or {})}
    with (tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err,
          tempfile.TemporaryDirectory() as tmp):
        report = Path(tmp) / "rusage.json"
        start = time.monotonic()
        launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(report), IMAGELOCK,
                                     *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env=full_env, start_new_session=True)
        killed = None
        while launcher.poll() is None:
            child = _child_of(launcher.pid)
            if killed is None and child is not None:
                if time.monotonic() - start > timeout:
                    killed = f"ran past {timeout} s"
                elif _rss(child) > kill_above:
                    killed = f"resident memory passed {kill_above >> 20} MiB"
                if killed is not None:
                    os.killpg(launcher.pid, signal.SIGKILL)
            time.sleep(0.02)
        seconds = time.monotonic() - start
        if killed is not None or not report.is_file():
            return Measured(-9, "", "", 0, seconds, killed or "the launcher failed")
        got = json.loads(report.read_text())
        out.seek(0)
        err.seek(0)
        return Measured(os.waitstatus_to_exitcode(got["status"]),
                        out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                        got["maxrss"] * 1024, seconds, None)
