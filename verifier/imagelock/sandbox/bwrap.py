"""Bubblewrap sandboxes: run a build, or a step inside an image root, with no network, a clean
environment and nothing of the host but what was declared.

Two modes share one `Sandbox` description (docs/isolation.md has the full guarantees):

- **build** (`build_sandbox`, `build_in_sandbox`): imagelock's own Python build runs in a user
  namespace on an empty read-only root that holds only read-only binds of the interpreter, the
  installed package and its dependencies, `/usr`, the store and the build inputs, plus the output
  directory read-write. Works for any user bwrap works for.
- **rootfs** (`rootfs_sandbox`, `overlay_run`): a command runs with an image root filesystem as `/`,
  as real root without a user namespace (bubblewrap 0.8 maps only uid 0 in one, so `chown 1234`
  would fail) and with a reduced capability set (no mount, no mknod, no raw network). Needs root.

Both: `--unshare-net` (only `lo`), new pid/ipc/uts/cgroup namespaces, hostname `imagelock`,
`--die-with-parent`, `--new-session`, `--clearenv` plus a fixed environment, umask 022, a private
empty `/tmp`, a fresh `/proc` and a minimal `/dev`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from imagelock.core.errors import InputError, ToolUnavailable

HOSTNAME = "imagelock"
FIXED_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
INSTALL_HINT = "install bubblewrap: `apt-get install bubblewrap` (./scripts/setup does it)"

# Docker's default set minus CAP_MKNOD (no device cgroup here: a block-device node would reach
# the host's disks) and CAP_NET_RAW. Enough for package scripts: chown, setuid helpers, chroot.
ROOTFS_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_SETFCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE",
)

# Set inside the build-mode sandbox: code that would start a sandbox of its own (which cannot
# nest there) knows it is confined already.
IN_SANDBOX = "IMAGELOCK_IN_SANDBOX"

# Real root in rootfs mode could otherwise write kernel settings (core_pattern runs a program as
# host root) or read kernel memory: these are read-only or hidden, as container runtimes do.
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
PROC_MASKED = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/kallsyms")

# Build mode binds a host path at its own path, except one under a mount point the sandbox makes
# itself (its private /tmp, /proc, /dev): bwrap would create the way down to it inside that mount,
# so a clone, venv or store under /tmp would show in the sandbox's /tmp. Those are bound below
# this prefix instead (docs/field-notes.md, "The sandbox and where the project lives").
HOST_PREFIX = "/run/imagelock/host"
_OWN_MOUNTS = ("/tmp", "/proc", "/dev")

_NAMESPACES = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
               "--unshare-cgroup", "--hostname", HOSTNAME, "--die-with-parent", "--new-session"]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StepFailed(InputError):
    """A command run in a sandbox exited non-zero or ran out of time."""


# --- availability ------------------------------------------------------------------------------

def bwrap_path() -> str | None:
    """The bwrap executable on PATH, or None."""
    return shutil.which("bwrap")


@functools.cache
def _probe(rootfs: bool) -> str | None:
    """Why a sandbox of this mode cannot start here, or None when it can (checked once)."""
    bwrap = bwrap_path()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    if rootfs and os.geteuid() != 0:
        return "running a command inside an image root needs root (uids other than 0 must exist)"
    probe = Sandbox(root=Path("/"), as_root=rootfs, writable_root=False) if rootfs else Sandbox(
        ro_binds=[(p, str(p)) for p in _system_dirs()], symlinks=_system_symlinks())
    try:
        r = subprocess.run(probe.argv(["true"], "/", bwrap=bwrap), check=False,
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap could not run: {e}"
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip()
        return f"bwrap cannot create its namespaces here: {err}"
    return None


def available(*, rootfs: bool = False) -> bool:
    """Whether a sandbox of this mode can start here (bwrap installed and namespaces allowed)."""
    return _probe(rootfs) is None


def require(*, rootfs: bool = False) -> str:
    """The bwrap path; raises ToolUnavailable (exit 4) saying why a sandbox cannot start here."""
    why = _probe(rootfs)
    if why is None:
        path = bwrap_path()
        assert path is not None
        return path
    if "not installed" in why:
        hint = INSTALL_HINT
    elif rootfs and os.geteuid() != 0:
        hint = "run as root (build steps need kernel overlayfs and real uids)"
    else:
        hint = ("allow user namespaces (sysctl kernel.unprivileged_userns_clone=1; in a container, "
                "a seccomp profile that permits unshare), or build with --no-sandbox, which the "
                "result then reports")
    raise ToolUnavailable(why, hint=hint)


# --- the sandbox description -------------------------------------------------------------------

@dataclass
class Sandbox:
    """What a sandboxed process sees. Paths inside are absolute strings; host paths are Paths.

    With `root` None the sandbox's `/` is an empty tmpfs, made read-only once the binds are in
    place, so nothing of the host is visible but the binds.
    """

    root: Path | None = None
    writable_root: bool = True
    as_root: bool = False  # rootfs mode: no user namespace, real root with ROOTFS_CAPS
    ro_binds: list[tuple[Path, str]] = field(default_factory=list)
    rw_binds: list[tuple[Path, str]] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=lambda: ["/tmp"])
    symlinks: list[tuple[str, str]] = field(default_factory=list)  # (target, path inside)
    env: dict[str, str] = field(default_factory=dict)  # added to (and overriding) the fixed set
    # Capabilities kept in build mode, within its user namespace only (none reach the host).
    caps: tuple[str, ...] = ()
    source_date_epoch: int | None = None
    home: str = "/nonexistent"

    def environment(self) -> dict[str, str]:
        """The whole environment the command gets (bwrap adds PWD, the working directory)."""
        env = {"PATH": FIXED_PATH, "TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "HOME": self.home}
        if self.source_date_epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(self.source_date_epoch)
        for k, v in self.env.items():
            if not _ENV_NAME.fullmatch(k) or "\0" in v:
                raise InputError(f"invalid environment variable for a sandbox: {k!r}",
                                 hint="names are letters, digits and _; values hold no NUL byte")
            env[k] = v
        return env

    def mount_points(self) -> list[str]:
        """Every path inside at which something is mounted, parents first."""
        dests = [d for _, d in self.ro_binds + self.rw_binds] + self.tmpfs + ["/proc", "/dev"]
        return sorted(set(dests), key=_depth_key)

    def argv(self, command: Sequence[str], cwd: str, *, bwrap: str = "bwrap") -> list[str]:
        """The bwrap command line (mounts are ordered parents first, so nesting works)."""
        # Build mode keeps no capability even inside its user namespace (as root, bwrap would
        # keep them all); rootfs mode keeps what package scripts need.
        a = [bwrap, *_NAMESPACES, "--cap-drop", "ALL"]
        if self.as_root:
            for cap in ROOTFS_CAPS:
                a += ["--cap-add", cap]
        else:
            a.append("--unshare-user")
            for cap in self.caps:
                a += ["--cap-add", cap]
        if self.root is not None:
            a += ["--bind" if self.writable_root else "--ro-bind", str(self.root), "/"]
        for target, dest in self.symlinks:
            a += ["--symlink", target, dest]
        mounts: list[tuple[str, list[str]]] = [("/proc", ["--proc", "/proc"]),
                                               ("/dev", ["--dev", "/dev"])]
        mounts += [(d, ["--ro-bind", str(src), d]) for src, d in self.ro_binds]
        mounts += [(d, ["--bind", str(src), d]) for src, d in self.rw_binds]
        mounts += [(d, ["--tmpfs", d]) for d in self.tmpfs]
        if self.as_root:
            mounts += [(d, ["--ro-bind", d, d]) for d in PROC_READ_ONLY if os.path.exists(d)]
            mounts += [(d, ["--ro-bind", "/dev/null", d]) for d in PROC_MASKED if os.path.exists(d)]
        for _, opts in sorted(mounts, key=lambda m: _depth_key(m[0])):
            a += opts
        if self.root is None:
            a += ["--remount-ro", "/"]
        a += ["--clearenv"]
        for k, v in self.environment().items():
            a += ["--setenv", k, v]
        a += ["--chdir", cwd, "--", *command]
        return a

    def run(
        self,
        argv: Sequence[str],
        cwd: str = "/",
        stdin: bytes | None = None,
        capture: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `argv` inside; returns its exit status and (with `capture`) its output.

        A non-zero exit of the command is returned, not raised. bwrap failing to set the sandbox
        up raises ToolUnavailable; running out of time raises StepFailed.
        """
        return run_bwrap(self.argv(argv, cwd, bwrap=require(rootfs=self.as_root)), [],
                          stdin=stdin, capture=capture, timeout=timeout, what=argv[0])


def run_bwrap(
    argv: list[str],
    prefix: list[str],
    *,
    stdin: bytes | None,
    capture: bool,
    timeout: float | None,
    what: str,
) -> subprocess.CompletedProcess[bytes]:
    """Run bwrap (optionally behind `prefix`), telling its own failures from the command's.

    bwrap reports the command's exit on --json-status-fd; no such record means bwrap itself
    failed before the command started.
    """
    rfd, wfd = os.pipe()
    full = [*prefix, argv[0], "--json-status-fd", str(wfd), *argv[1:]]
    try:
        try:
            r = subprocess.run(full, check=False, input=stdin,
                               stdin=None if stdin is not None else subprocess.DEVNULL,
                               capture_output=capture, timeout=timeout, pass_fds=(wfd,),
                               umask=0o022)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"{what} did not finish within {timeout} s in the sandbox: killed",
                             hint="raise the timeout, or look for a hang: there is no network "
                             "inside, so a download waits until its own timeout") from None
        except OSError as e:
            raise ToolUnavailable(f"cannot start {full[0]}: {e}", hint=INSTALL_HINT) from None
        os.close(wfd)
        wfd = -1
        with os.fdopen(rfd, "rb") as f:
            rfd = -1
            status = f.read().decode(errors="replace")
    finally:
        for fd in (rfd, wfd):
            if fd >= 0:
                os.close(fd)
    if '"exit-code"' not in status:
        err = (r.stderr or b"").decode(errors="replace").strip()
        raise ToolUnavailable(f"the sandbox could not start: {err or f'exit {r.returncode}'}",
                              hint="check that the bound paths exist; " + INSTALL_HINT)
    return r


def _depth_key(path: str) -> tuple[int, str]:
    return (len([p for p in path.split("/") if p]), path)


# --- build mode --------------------------------------------------------------------------------

def _system_symlinks() -> list[tuple[str, str]]:
    """The host's merged-/usr links (/bin -> usr/bin, ...), recreated so ld.so and #! resolve."""
    return [(os.readlink(p), str(p)) for p in _top_level() if p.is_symlink()]


def _system_dirs() -> list[Path]:
    """/usr, plus /lib* and /bin directories on hosts that have not merged /usr."""
    return [Path("/usr"), *(p for p in _top_level() if not p.is_symlink() and p.is_dir())]


def _top_level() -> list[Path]:
    return [Path("/", n) for n in ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
            if os.path.lexists(Path("/", n))]


def python_binds() -> list[Path]:
    """Host directories the running interpreter needs to import imagelock (read-only binds).

    The interpreter and stdlib (`sys.base_prefix`), the venv (`sys.prefix`), the source tree of
    an editable install (the package directory only) and wherever imagelock's direct
    dependencies are installed. Not `sys.path` as a whole: under pytest it holds test dirs.
    """
    import imagelock

    paths = [Path(sys.base_prefix), Path(sys.prefix), Path(os.path.realpath(sys.executable)).parent,
             Path(imagelock.__file__).parent]
    for req in importlib.metadata.requires("imagelock") or []:
        if "extra ==" in req:
            continue
        name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]
        try:
            paths.append(Path(str(importlib.metadata.distribution(name).locate_file(""))))
        except importlib.metadata.PackageNotFoundError:
            continue
    return _outermost(paths)


def inside_path(host: str | os.PathLike[str]) -> str:
    """Where the build-mode sandbox shows the host path `host` (see HOST_PREFIX)."""
    path = os.path.abspath(host)
    if any(path == m or path.startswith(m + "/") for m in _OWN_MOUNTS):
        return HOST_PREFIX + path
    return path


def outside_paths(value: Any) -> Any:
    """`value` from inside (JSON), with each relocated path written as the host path it is."""
    if isinstance(value, str):
        return value.replace(HOST_PREFIX + "/", "/")
    if isinstance(value, list):
        return [outside_paths(v) for v in value]
    if isinstance(value, dict):
        return {k: outside_paths(v) for k, v in value.items()}
    return value


def _outermost(paths: Sequence[Path]) -> list[Path]:
    """Absolute, de-duplicated paths, dropping any that lies inside another."""
    absolute = sorted({Path(os.path.abspath(p)) for p in paths}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for p in absolute:
        if not any(p == k or k in p.parents for k in kept):
            kept.append(p)
    return kept


def build_sandbox(
    *,
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    tmp: Path | None = None,
    source_date_epoch: int | None = None,
    extra_binds: Sequence[tuple[Path, str]] = (),
) -> Sandbox:
    """A build-mode sandbox: Python + imagelock + `/usr` and `inputs` read-only, `outputs` writable.

    Every path is bound at `inside_path(path)`: its own host path, so paths in messages and
    results read the same inside and out, unless it lies under the sandbox's own /tmp, /proc or
    /dev. `tmp`, when given, is a fresh host directory bound as `/tmp` (disk-backed, for large
    layers); otherwise `/tmp` is a tmpfs. Either way `/tmp` starts empty.
    """
    ro = [(p, inside_path(p)) for p in _outermost([*_system_dirs(), *python_binds()])]
    ro += [(Path(os.path.abspath(p)), inside_path(p)) for p in inputs]
    ro += [(src, dest) for src, dest in extra_binds]
    rw = [(Path(os.path.abspath(p)), inside_path(p)) for p in outputs]
    tmpfs = ["/tmp"]
    if tmp is not None:
        rw.append((tmp, "/tmp"))
        tmpfs = []
    return Sandbox(ro_binds=ro, rw_binds=rw, tmpfs=tmpfs, symlinks=_system_symlinks(),
                   source_date_epoch=source_date_epoch, env={IN_SANDBOX: "1"},
                   caps=("CAP_SYS_CHROOT",))










# --- rootfs mode -------------------------------------------------------------------------------

def rootfs_sandbox(
    root: Path,
    *,
    env: Mapping[str, str] | None = None,
    source_date_epoch: int | None = None,
    ro_binds: Sequence[tuple[Path, str]] = (),
    writable: bool = True,
    tmpfs: Sequence[str] = ("/run", "/tmp"),
) -> Sandbox:
    """A rootfs-mode sandbox: `root` as `/`, real uids, no network, fixed env, /tmp and /run tmpfs.

    bwrap creates missing mount points (/dev, /proc, /run, /tmp and bind targets) in `root`;
    overlay_run removes them from its result. `tmpfs=()` keeps what a command writes under /run
    and /tmp in its result (maintainer scripts make /run/lock, which an image keeps).
    """
    return Sandbox(root=Path(os.path.abspath(root)), writable_root=writable, as_root=True,
                   ro_binds=list(ro_binds), tmpfs=list(tmpfs), env=dict(env or {}),
                   source_date_epoch=source_date_epoch)


def overlay_run(
    lower_root: Path,
    argv: Sequence[str],
    *,
    cwd: str = "/",
    env: Mapping[str, str] | None = None,
    source_date_epoch: int | None = None,
    ro_binds: Sequence[tuple[Path, str]] = (),
    stdin: bytes | None = None,
    timeout: float | None = None,
    scratch: Path | None = None,
) -> Path:
    """Run `argv` in `lower_root` through kernel overlayfs; return the upper dir: what changed.

    Raises StepFailed on a non-zero exit (`overlay_try` returns it instead); see `overlay_try`.
    """
    upper, r = overlay_try(lower_root, argv, cwd=cwd, env=env, source_date_epoch=source_date_epoch,
                           ro_binds=ro_binds, stdin=stdin, timeout=timeout, scratch=scratch)
    if r.returncode != 0:
        shutil.rmtree(upper, ignore_errors=True)
        raise StepFailed(f"{' '.join(argv)} exited with {r.returncode} in the image root"
                         + _output_tail(r.stdout, r.stderr),
                         hint="fix the step; nothing was written (no partial image)")
    return upper


def overlay_try(
    lower_root: Path,
    argv: Sequence[str],
    *,
    cwd: str = "/",
    env: Mapping[str, str] | None = None,
    source_date_epoch: int | None = None,
    ro_binds: Sequence[tuple[Path, str]] = (),
    stdin: bytes | None = None,
    timeout: float | None = None,
    scratch: Path | None = None,
    tmpfs: Sequence[str] = ("/run", "/tmp"),
) -> tuple[Path, subprocess.CompletedProcess[bytes]]:
    """Run `argv` in `lower_root` through kernel overlayfs; the upper dir and the exit, whatever it is.

    `lower_root` is never modified. The overlay is mounted in a private mount namespace
    (`unshare --mount`), so it disappears with the command even if this process is killed.
    `redirect_dir` and `metacopy` are off, so every changed file is whole in the upper dir and a
    renamed directory is copied. The caller owns (and removes) the returned directory, which
    lives under `scratch` (default: the system temp dir). `tmpfs`: see `rootfs_sandbox`.
    """
    bwrap = require(rootfs=True)
    unshare = shutil.which("unshare")
    if unshare is None:
        raise ToolUnavailable("unshare (util-linux) is not installed",
                              hint="apt-get install util-linux")
    lower = Path(os.path.abspath(lower_root))
    base = Path(os.path.abspath(scratch if scratch is not None else tempfile.gettempdir()))
    for p in (lower, base):
        if re.search(r"[,:\\\s]", str(p)):
            raise InputError(f"overlayfs cannot take the path {p}",
                             hint="use paths without commas, colons, backslashes or spaces")
    if not lower.is_dir():
        raise InputError(f"image root {lower} is not a directory")
    upper = Path(tempfile.mkdtemp(prefix="imagelock-upper-", dir=base))
    # The merged root takes its owner and mode from the upper dir: mkdtemp's 0700 would lock
    # every other user out of `/`.
    st = lower.stat()
    os.chown(upper, st.st_uid, st.st_gid)
    os.chmod(upper, stat.S_IMODE(st.st_mode))
    aux = Path(tempfile.mkdtemp(prefix="imagelock-overlay-", dir=base))
    work, merged = aux / "work", aux / "merged"
    work.mkdir()
    merged.mkdir()
    opts = (f"lowerdir={lower},upperdir={upper},workdir={work},"
            "redirect_dir=off,metacopy=off,index=off")
    sandbox = rootfs_sandbox(merged, env=env, source_date_epoch=source_date_epoch,
                             ro_binds=ro_binds, tmpfs=tmpfs)
    absent = _absent_in(lower, sandbox.mount_points())
    mount = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-ec",
             'mount -n -t overlay overlay -o "$1" "$2"; shift 2; exec "$@"', "imagelock-overlay",
             opts, str(merged)]
    mount[0] = unshare
    try:
        r = run_bwrap(sandbox.argv(argv, cwd, bwrap=bwrap), mount, stdin=stdin, capture=True,
                       timeout=timeout, what=argv[0])
        _remove_mount_points(upper, absent)
    except BaseException:
        shutil.rmtree(upper, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(aux, ignore_errors=True)
    return upper, r


def _output_tail(stdout: bytes | None, stderr: bytes | None, lines: int = 15) -> str:
    """The end of a failed command's output, for the error message."""
    parts = []
    for name, data in (("stdout", stdout), ("stderr", stderr)):
        text = (data or b"").decode(errors="replace").rstrip().splitlines()[-lines:]
        if text:
            parts.append(f"\n  {name}:\n" + "\n".join("    " + t for t in text))
    return "".join(parts)


def _absent_in(lower: Path, mount_points: Sequence[str]) -> list[str]:
    """Mount points (and their parents) missing from `lower`: bwrap creates them, deepest last."""
    absent: set[str] = set()
    for mp in mount_points:
        parts = [p for p in mp.split("/") if p]
        for i in range(1, len(parts) + 1):
            rel = "/".join(parts[:i])
            if not os.path.lexists(lower / rel):
                absent.add(rel)
    return sorted(absent, key=lambda r: (r.count("/"), r))


def _remove_mount_points(upper: Path, absent: Sequence[str]) -> None:
    """Drop the empty mount points bwrap created: they are the sandbox's, not the step's."""
    for rel in reversed(absent):
        p = upper / rel
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode) and not any(p.iterdir()):
            p.rmdir()
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            p.unlink()


OverlayChangeKind = Literal["added", "changed", "deleted", "opaque"]


class OverlayChange(NamedTuple):
    """One path an overlay step touched, relative to the image root (`etc/passwd`)."""

    path: str
    kind: OverlayChangeKind


def upper_to_changes(upper: Path, lower: Path) -> list[OverlayChange]:
    """What a step changed, from its overlay upper dir; sorted by path (bytewise).

    - `deleted`: a whiteout (char device 0:0); the layer gets `.wh.<name>` instead.
    - `opaque`: a directory whose lower contents are hidden (it was removed and made again);
      the layer gets `<dir>/.wh..wh..opq` besides the directory and its new children.
    - `added` / `changed`: present in upper; `changed` when `lower` has the path too.
    Directories appear as `changed` when only a child changed (overlayfs copies parents up),
    and copied-up directories carry fresh mtimes: normalise them before writing a layer. The
    root directory itself is not reported.
    """
    out: list[OverlayChange] = []
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = p.relative_to(upper).as_posix()
            st = p.lstat()
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(OverlayChange(rel, "deleted"))
                continue
            out.append(OverlayChange(rel, "changed" if os.path.lexists(lower / rel) else "added"))
            if stat.S_ISDIR(st.st_mode) and _is_opaque(p):
                out.append(OverlayChange(rel, "opaque"))
    return sorted(out, key=lambda c: (c.path.encode(), c.kind))


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


__all__ = [
    "OverlayChange", "Sandbox", "StepFailed", "available", "build_sandbox", "bwrap_path",
    "inside_path", "outside_paths", "overlay_run", "overlay_try", "python_binds", "require",
    "rootfs_sandbox",
    "run_bwrap", "upper_to_changes",
]


