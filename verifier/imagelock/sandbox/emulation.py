"""Running an image's programs for a foreign architecture: qemu-user, inside the sandbox.

No foreign code runs on the host: an image's program for another architecture runs in the same
bubblewrap sandbox as a native one, interpreted by qemu-user. Two ways, for two needs:

- `prefix(machine)`: the argv prefix and bind that run ONE foreign binary under the host's
  `qemu-<machine>-static`, bound read-only into the sandbox and named explicitly. Needs no root
  and changes nothing machine-wide, so it is what single programs use (the image's ldconfig,
  the image's Python compiling bytecode). A program started this way that itself executes
  another foreign program (a shell running a script) needs binfmt as well.
- `ensure_binfmt(machine)`: the kernel's binfmt_misc registration of the emulator, with the
  `F` flag (the kernel opens the emulator once, so it works inside a sandbox whose root is the
  image). Registration is machine-wide and needs root; build steps, which run shells and their
  children, need it.

Callers ask `foreign(machine)` first: None when the host runs that architecture itself.
"""

from __future__ import annotations

import functools
import os
import platform as _host
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from imagelock.core.errors import InputError, ToolUnavailable

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF_DIRS = (Path("/usr/lib/binfmt.d"), Path("/etc/binfmt.d"))
INSIDE_DIR = "/.imagelock-qemu"
INSTALL_HINT = "install qemu-user-static: `apt-get install qemu-user-static` (./scripts/setup does it)"

# OCI platform -> the kernel's machine name (what `uname -m` prints and qemu's binaries are named by).
_PLATFORM_MACHINE = {
    "linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm64/v8": "aarch64",
    "linux/arm/v7": "arm", "linux/arm/v6": "arm", "linux/arm/v5": "arm", "linux/386": "i386",
    "linux/ppc64le": "ppc64le", "linux/s390x": "s390x", "linux/riscv64": "riscv64",
}
# Debian architecture -> machine name.
_DEBIAN_MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "arm", "armel": "arm",
                   "i386": "i386", "ppc64el": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def machine_of_platform(platform: str) -> str:
    """The machine name of an OCI platform (`linux/arm64` -> `aarch64`)."""
    try:
        return _PLATFORM_MACHINE[platform]
    except KeyError:
        raise InputError(f"no known machine for platform {platform!r}",
                         hint="use one of " + ", ".join(sorted(_PLATFORM_MACHINE))) from None


def machine_of_debian_arch(arch: str) -> str | None:
    """The machine name of a Debian architecture; None for `all` or an unknown one."""
    return _DEBIAN_MACHINE.get(arch)


def host_machine() -> str:
    m = _host.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def _native(machine: str) -> bool:
    host = host_machine()
    return machine == host or (host == "x86_64" and machine == "i386")


@dataclass(frozen=True)
class Emulator:
    """qemu-user for one machine: where it is on the host and where it is bound inside."""

    machine: str
    host_path: Path
    version: str  # e.g. "7.2.22", from `--version`

    @property
    def inside_path(self) -> str:
        return f"{INSIDE_DIR}/{self.host_path.name}"

    @property
    def label(self) -> str:
        """What the lock records: the emulator and its version."""
        return f"{self.host_path.name} {self.version}".strip()


def foreign(machine: str) -> Emulator | None:
    """The emulator for `machine`, or None when this host runs it natively.

    Raises ToolUnavailable (exit 4) naming the package when no emulator is installed.
    """
    if _native(machine):
        return None
    return _emulator(machine)


@functools.cache
def _emulator(machine: str) -> Emulator:
    found = shutil.which(f"qemu-{machine}-static")
    if found is None:
        raise ToolUnavailable(f"building for {machine} on this {host_machine()} host needs "
                              f"qemu-{machine}-static, which is not installed", hint=INSTALL_HINT)
    path = Path(found).resolve()
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, timeout=30,
                             check=False).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolUnavailable(f"{path} does not run: {e}", hint=INSTALL_HINT) from None
    words = out.split()
    version = words[words.index("version") + 1] if "version" in words[:-1] else ""
    return Emulator(machine, path, version)


def prefix(emu: Emulator) -> tuple[list[str], list[tuple[Path, str]]]:
    """The argv prefix and read-only bind that run one foreign binary under `emu` in a sandbox.

    The emulator is statically linked, so it needs nothing of the host but itself; the guest's
    dynamic loader and libraries come from the sandbox's root (the image).
    """
    return [emu.inside_path], [(emu.host_path, emu.inside_path)]


def binfmt_registered(machine: str) -> bool:
    """True when the kernel runs `machine`'s binaries through a registered, enabled qemu."""
    entry = BINFMT_DIR / f"qemu-{machine}"
    try:
        text = entry.read_text()
    except OSError:
        return False
    return text.startswith("enabled") and any(
        ln.startswith("flags:") and "F" in ln for ln in text.splitlines())


def ensure_binfmt(machine: str) -> None:
    """Register qemu-user for `machine` with binfmt_misc, unless it is already (idempotent).

    Machine-wide and root-only. When it cannot be done, ToolUnavailable (exit 4) says how.
    """
    if _native(machine) or binfmt_registered(machine):
        return
    conf = next((d / f"qemu-{machine}.conf" for d in BINFMT_CONF_DIRS
                 if (d / f"qemu-{machine}.conf").is_file()), None)
    how = (f"as root: `mount -t binfmt_misc binfmt_misc {BINFMT_DIR}` (if not mounted), then "
           f"`cat /usr/lib/binfmt.d/qemu-{machine}.conf > {BINFMT_DIR}/register`")
    if conf is None:
        raise ToolUnavailable(f"no binfmt configuration for qemu-{machine} "
                              "(/usr/lib/binfmt.d/qemu-{machine}.conf)".replace("{machine}", machine),
                              hint=INSTALL_HINT)
    if os.geteuid() != 0:
        raise ToolUnavailable(f"running {machine} programs needs qemu-{machine} registered with "
                              "binfmt_misc, and it is not", hint=how)
    try:
        if not (BINFMT_DIR / "register").exists():
            r = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                               capture_output=True, timeout=30, check=False)
            if r.returncode != 0:
                raise OSError(r.stderr.decode(errors="replace").strip() or f"mount exit {r.returncode}")
        if not (BINFMT_DIR / f"qemu-{machine}").exists():
            (BINFMT_DIR / "register").write_bytes(conf.read_bytes().strip())
    except OSError as e:
        raise ToolUnavailable(f"could not register qemu-{machine} with binfmt_misc: {e}",
                              hint=how) from None
    if not binfmt_registered(machine):
        raise ToolUnavailable(f"qemu-{machine} is registered with binfmt_misc but disabled or "
                              "without the F flag", hint=f"echo 1 > {BINFMT_DIR}/qemu-{machine}; " + how)
