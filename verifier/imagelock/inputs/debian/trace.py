"""Running the packages' maintainer scripts once, at lock time, to see what they do.

`imagelock lock` turns what the scripts of a fresh install do into plain actions in the lock
(`inputs.debian.derive`); builds then apply those actions and never run a script. This module
is the observation: the Debian root as a build makes it (packages, dpkg database, accounts, CA
bundle, ld.so.cache) is written out as a real tree, and every script runs in it the way dpkg
runs it, one at a time, each in the rootfs sandbox (no network, real uids, a clean environment,
SOURCE_DATE_EPOCH, a fixed host name) through overlayfs, so that each script's changes are
known apart:

1. `preinst install` of every package, in configuration order;
2. `postinst configure ""` of every package, in configuration order (dependencies first:
   Pre-Depends and Depends, through Provides; ties and cycles by name);
3. triggers: `postinst triggered "NAMES"` of each package whose interest was activated (file
   triggers by a package shipping below the path, explicit ones by a package's `activate`
   lines or a `dpkg-trigger` call), until none is left.

Some commands never run (`NEVER`): they would start services, generate keys into the image or
act on the host's kernel; a shim on the front of PATH records the call and succeeds. Tools whose
calls the lock records as data (`RECORDED`, e.g. update-alternatives) run for real behind a
shim that notes their arguments first. Shims exist only for tools the image has, so
`command -v` answers as it would without them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imagelock.core.errors import InputError
from imagelock.inputs.debian.deb import DebPackage
from imagelock.inputs.debian.merge import relations
from imagelock.inputs.steps.rootfs import apply_upper, materialize
from imagelock.sandbox.bwrap import overlay_try, upper_to_changes
from imagelock.tar.entry import Entry

SHIM_DIR = "/.imagelock/shims"
LOG = ".imagelock-trace.log"
SCRIPT_TIMEOUT = 600
PATH = f"{SHIM_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_REAL_DIRS = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")

# Commands that never run: the call is recorded, the shim exits 0. The reason is what the lock
# says about each call.
SERVICES = "services never start in an image"
KEYS = "no keys are generated into an image: the service makes its own at first start"
NEVER: dict[str, str] = {
    "invoke-rc.d": SERVICES,
    "service": SERVICES,
    "systemctl": SERVICES,
    "deb-systemd-invoke": SERVICES,
    "start-stop-daemon": SERVICES,
    "initctl": SERVICES,
    "ssh-keygen": KEYS,
    "make-ssl-cert": KEYS,
    "setcap": "file capabilities are extended attributes, which image layers do not carry",
    "update-binfmts": "binfmt_misc registration belongs to the host's kernel",
    "update-initramfs": "an image boots no kernel",
    "update-grub": "an image boots no kernel",
    # Done declaratively by the build: recorded so the lock can say so, not listed as missing.
    "ldconfig": "",
    "dpkg-trigger": "",
}
# Commands that run for real behind a shim that records their arguments first.
# Files of lines several packages add to: their lines are attributed per run.
LINE_FILES = ("etc/passwd", "etc/group", "etc/shadow", "etc/gshadow", "var/lib/dpkg/statoverride")
RECORDED = ("update-alternatives", "py3compile", "pycompile", "adduser", "addgroup", "useradd",
            "groupadd", "usermod", "dpkg-statoverride", "a2enmod", "a2dismod", "a2enconf",
            "a2disconf", "a2ensite", "a2dissite", "pam-auth-update", "update-shells", "add-shell",
            "ucf", "update-rc.d", "deb-systemd-helper", "dpkg-divert")


@dataclass(frozen=True)
class Call:
    """One recorded command: which package's script called it, and its arguments."""

    package: str
    script: str
    tool: str
    args: tuple[str, ...]

    def text(self) -> str:
        return shlex.join([self.tool, *self.args])


@dataclass(frozen=True)
class Failure:
    """A script that exited non-zero (its changes up to then are kept, as dpkg would leave them)."""

    package: str
    script: str
    code: int
    output: str


@dataclass
class Trace:
    """What the scripts did: the final tree, who last changed each path, every recorded call."""

    root: Path
    touched: dict[str, str] = field(default_factory=dict)  # path -> package (db name)
    calls: list[Call] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    ran: list[tuple[str, str]] = field(default_factory=list)  # (package, script args)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (package, why not run)
    # Line databases (accounts, statoverrides) as each run left them: (package, path, before,
    # after), so that every added line is told apart by the package that added it.
    lines: list[tuple[str, str, list[str], list[str]]] = field(default_factory=list)
    # Files whose bytes differed between two runs of the same script: path -> package.
    varying: dict[str, str] = field(default_factory=dict)


# --- order ------------------------------------------------------------------------------------


def configure_order(packages: Sequence[DebPackage]) -> list[DebPackage]:
    """The order dpkg configures a fresh install in, as apt and mmdebstrap drive it: first the
    Essential set with everything it depends on, then the rest; within each, dependencies before
    dependants (Pre-Depends and Depends, through Provides), else by name.

    A depth-first walk in name order: cycles (which dpkg breaks too) are cut where the walk
    meets a package already on its path.
    """
    by_name = {p.name: p for p in packages}
    provides: dict[str, list[str]] = {}
    for p in sorted(packages, key=lambda p: p.name):
        for alts in relations(p.control.get("Provides", "")):
            for rel in alts:
                provides.setdefault(rel.split("(")[0].split(":")[0].strip(), []).append(p.name)

    def deps(p: DebPackage) -> list[str]:
        out: list[str] = []
        for fieldname in ("Pre-Depends", "Depends"):
            for alts in relations(p.control.get(fieldname, "")):
                for rel in alts:
                    name = rel.split("(")[0].split(":")[0].strip()
                    found = [name] if name in by_name else provides.get(name, [])
                    if found:
                        out.append(found[0])
                        break
        return out

    done: set[str] = set()
    order: list[DebPackage] = []

    def visit(name: str, path: set[str]) -> None:
        if name in done or name in path:
            return
        path.add(name)
        for d in deps(by_name[name]):
            visit(d, path)
        path.discard(name)
        if name not in done:
            done.add(name)
            order.append(by_name[name])

    essential = sorted(p.name for p in packages if p.control.get("Essential", "").strip() == "yes")
    for name in essential:
        visit(name, set())
    for p in sorted(packages, key=lambda p: p.name):
        visit(p.name, set())
    return order


_STATUS = "var/lib/dpkg/status"


def _set_status(root: Path, names: set[str] | None) -> None:
    """Rewrite the Status of every stanza: `installed` for `names` (all when None), else
    `unpacked`, as dpkg's database reads between unpacking and configuring."""
    path = inside(root, _STATUS)
    if path is None or path.is_symlink() or not path.is_file():
        return  # a script moved the database away: nothing to track (and nothing to follow)
    out = []
    pkg = ""
    for line in path.read_text(encoding="utf-8", errors="surrogateescape").split("\n"):
        if line.startswith("Package: "):
            pkg = line[len("Package: "):].strip()
        elif line.startswith("Status: "):
            line = "Status: install ok " + ("installed" if names is None or pkg in names else "unpacked")
        out.append(line)
    path.write_text("\n".join(out), encoding="utf-8", errors="surrogateescape")


# --- shims ------------------------------------------------------------------------------------


def _exists(entries: dict[str, Entry], tool: str) -> bool:
    return any(f"{d}/{tool}" in entries for d in _REAL_DIRS)


def write_shims(dest: Path, present: dict[str, Entry]) -> None:
    """The shims for the tools `present` has (a shim for a missing tool would answer `command -v`)."""
    dest.mkdir(parents=True, exist_ok=True)
    record = (
        '{ printf \'%s\\0\' "@" "${DPKG_MAINTSCRIPT_PACKAGE:-}" "${DPKG_MAINTSCRIPT_NAME:-}" '
        '"$TOOL" "$#"; [ "$#" -eq 0 ] || printf \'%s\\0\' "$@"; } >> /' + LOG + "\n"
    )
    for tool, _why in NEVER.items():
        if _exists(present, tool):
            _write(dest / tool, f"TOOL={tool}\n{record}exit 0\n")
    for tool in RECORDED:
        if _exists(present, tool):
            real = "".join(f'[ -x /{d}/{tool} ] && exec /{d}/{tool} "$@"\n' for d in _REAL_DIRS)
            _write(dest / tool, f"TOOL={tool}\n{record}{real}exit 127\n")


def _write(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n# imagelock: recorded for the lock (see inputs/debian/trace.py)\n" + body)
    os.chmod(path, 0o755)


def parse_log(data: bytes) -> list[Call]:
    """The calls a run's shims appended: `@`, package, script, tool, argc, args (NUL-separated)."""
    fields = data.split(b"\0")
    out: list[Call] = []
    i = 0
    while i + 5 <= len(fields) and fields[i] == b"@":
        pkg, script, tool = (f.decode("utf-8", "surrogateescape") for f in fields[i + 1:i + 4])
        try:
            argc = int(fields[i + 4])
        except ValueError:
            break
        args = tuple(f.decode("utf-8", "surrogateescape") for f in fields[i + 5:i + 5 + argc])
        out.append(Call(pkg, script, tool, args))
        i += 5 + argc
    return out


# --- running ----------------------------------------------------------------------------------


def env_for(name: str, architecture: str, script: str, dpkg_version: str) -> dict[str, str]:
    """What dpkg puts in a maintainer script's environment, with a noninteractive debconf."""
    return {
        "PATH": PATH,
        "HOME": "/root",
        "DPKG_MAINTSCRIPT_PACKAGE": name,
        "DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT": "1",
        "DPKG_MAINTSCRIPT_ARCH": architecture,
        "DPKG_MAINTSCRIPT_NAME": script,
        "DPKG_MAINTSCRIPT_DEBUG": "0",
        "DPKG_RUNNING_VERSION": dpkg_version,
        "DPKG_ADMINDIR": "/var/lib/dpkg",
        "DPKG_ROOT": "",
        "DEBIAN_FRONTEND": "noninteractive",
        "DEBCONF_NONINTERACTIVE_SEEN": "true",
    }


def _run(trace: Trace, root: Path, shims: Path, scratch: Path, pkg: DebPackage, script: str,
         args: Sequence[str], sde: int, dpkg_version: str) -> None:
    path = f"var/lib/dpkg/info/{pkg.db_name}.{script}"
    argv = [f"/{path}", *args]

    def once() -> tuple[Path, subprocess.CompletedProcess[bytes]]:
        return overlay_try(root, argv, env=env_for(pkg.name, pkg.architecture, script, dpkg_version),
                           source_date_epoch=sde, ro_binds=[(shims, SHIM_DIR)],
                           timeout=SCRIPT_TIMEOUT, scratch=scratch, tmpfs=())

    upper, r = once()
    again: Path | None = None
    try:
        log = upper / LOG
        if log.is_file() and not log.is_symlink():
            trace.calls += parse_log(log.read_bytes())
            log.unlink()
        changes = [(c.path, c.kind) for c in upper_to_changes(upper, root)]
        written = [p for p, kind in changes if kind != "deleted" and _generated(upper / p, p)]
        if written:
            # A script that writes files runs a second time on the same root: whatever differs
            # between the two runs (a secret from `openssl rand`, the time) is never recorded.
            again, _ = once()
            for p in written:
                second = inside(again, p)
                if second is None or not _same_file(upper / p, second):
                    trace.varying[p] = pkg.db_name
        for f in LINE_FILES:
            if any(p == f for p, _ in changes):
                trace.lines.append((pkg.db_name, f, _lines(inside(root, f)), _lines(inside(upper, f))))
        apply_upper(root, upper, changes)
        for p, _kind in changes:
            trace.touched[p] = pkg.db_name
        trace.ran.append((pkg.db_name, " ".join([script, *args]).strip()))
        if r.returncode != 0:
            tail = (r.stderr or b"").decode(errors="replace").strip().splitlines()[-5:]
            trace.failures.append(Failure(pkg.db_name, script, r.returncode, "\n".join(tail)))
    finally:
        shutil.rmtree(upper, ignore_errors=True)
        if again is not None:
            shutil.rmtree(again, ignore_errors=True)


def _generated(full: Path, path: str) -> bool:
    """A regular file with content that the lock might record (not debconf's database or the
    shims' log, which never are, nor bytecode, which the build compiles again)."""
    if path == LOG or path.startswith("var/cache/debconf/") or path.endswith(".pyc"):
        return False
    try:
        st = full.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size > 0


def _same_file(a: Path, b: Path) -> bool:
    if a.is_symlink() or b.is_symlink():
        return os.path.islink(a) and os.path.islink(b) and os.readlink(a) == os.readlink(b)
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _lines(path: Path | None) -> list[str]:
    if path is None or path.is_symlink() or not path.is_file():
        return []
    return path.read_bytes().decode("utf-8", "surrogateescape").splitlines()


def _has_shell(entries: dict[str, Entry]) -> bool:
    sh = entries.get("usr/bin/sh") or entries.get("bin/sh")
    return sh is not None


def triggers_of(pkg: DebPackage) -> tuple[list[str], list[str]]:
    """(interests, activations) from a package's `triggers` control file."""
    info = pkg.info.get("triggers")
    interests: list[str] = []
    activates: list[str] = []
    if info is None:
        return interests, activates
    for line in info.data.decode("utf-8", "replace").splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) != 2:
            continue
        kind, name = words
        if kind.startswith("interest"):
            interests.append(name)
        elif kind.startswith("activate"):
            activates.append(name)
    return interests, activates


def _file_trigger_hit(interest: str, packages: Iterable[DebPackage]) -> bool:
    base = interest.strip("/")
    moved = base if base.split("/", 1)[0] not in ("bin", "sbin", "lib", "lib64") else "usr/" + base
    for p in packages:
        for s in p.shipped:
            for path in (s.original, s.path):
                if path in (base, moved) or path.startswith(base + "/") or path.startswith(moved + "/"):
                    return True
    return False


def trigger_activation(calls: Sequence[Call]) -> list[str]:
    """Trigger names a run's `dpkg-trigger` calls activated (the last non-option argument)."""
    names = []
    for c in calls:
        if c.tool != "dpkg-trigger":
            continue
        plain = [a for a in c.args if not a.startswith("-")]
        if plain and "--check-supported" not in c.args:
            names.append(plain[-1])
    return names


def run_scripts(
    pre: Sequence[Entry],
    packages: Sequence[DebPackage],
    workdir: Path,
    *,
    source_date_epoch: int,
) -> Trace:
    """Write the root `pre` describes and run every maintainer script of a fresh install in it.

    The result's `root` is the tree after the last script (under `workdir`, which the caller
    removes). Without /bin/sh in the image nothing runs, and each package with a script says so.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="root-", dir=workdir))
    trace = Trace(root)
    entries = {e.path: e for e in pre}
    order = configure_order(packages)
    with_scripts = [p for p in order if "preinst" in p.info or "postinst" in p.info]
    if not _has_shell(entries):
        trace.skipped += [(p.db_name, "the image has no /bin/sh to run its maintainer scripts")
                          for p in with_scripts]
        return trace
    if re.search(r"[,:\\\s]", str(root)):
        raise InputError(f"maintainer scripts cannot run under the path {root}",
                         hint="use a store and temp directory without commas, colons or spaces")
    materialize([list(pre)], root)
    shims = workdir / "shims"
    write_shims(shims, entries)
    scratch = workdir / "scratch"
    scratch.mkdir(exist_ok=True)
    dpkg = next((p.version for p in packages if p.name == "dpkg"), "1.21.22")
    sde = source_date_epoch
    status = (root / _STATUS).read_bytes() if (root / _STATUS).is_file() else None  # ours still
    configured: set[str] = set()
    if status is not None:
        _set_status(root, configured)
    for p in order:
        if "preinst" in p.info:
            _run(trace, root, shims, scratch, p, "preinst", ["install"], sde, dpkg)
    for p in order:
        if "postinst" in p.info:
            _run(trace, root, shims, scratch, p, "postinst", ["configure", ""], sde, dpkg)
        configured.add(p.name)
        if status is not None:
            _set_status(root, configured)
    # Triggers: dpkg runs them once every package is configured, until none is pending.
    interests = {p.db_name: triggers_of(p)[0] for p in order}
    activated: set[str] = set()
    for p in order:
        activated.update(triggers_of(p)[1])
    for names in interests.values():
        for n in names:
            if n.startswith("/") and _file_trigger_hit(n, packages):
                activated.add(n)
    activated.update(trigger_activation(trace.calls))
    handled: set[tuple[str, str]] = set()
    for _round in range(5):
        pending = []
        for p in order:
            names = [n for n in interests[p.db_name] if n in activated and (p.db_name, n) not in handled]
            if names and "postinst" in p.info:
                pending.append((p, names))
        if not pending:
            break
        before = len(trace.calls)
        for p, names in pending:
            handled.update((p.db_name, n) for n in names)
            _run(trace, root, shims, scratch, p, "postinst", ["triggered", " ".join(names)], sde, dpkg)
        activated.update(trigger_activation(trace.calls[before:]))
    final = inside(root, _STATUS)
    if status is not None and final is not None and final.is_file() and not final.is_symlink():
        final.write_bytes(status)  # the database as dpkg leaves it: every package installed
    return trace


def inside(root: Path, path: str) -> Path | None:
    """`root/path` when every directory on the way is a real directory of the tree, else None.

    Scripts run as root in that tree and may leave a symlink to `/` where a directory was; a
    path below it would name the host's files, which nothing here may read or write."""
    cur = root
    for part in [p for p in path.split("/") if p][:-1]:
        cur = cur / part
        try:
            st = cur.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
    return root / path


def lstat_entry(root: Path, path: str) -> os.stat_result | None:
    """lstat of a path of the tree (None when absent, or below something not a directory)."""
    full = inside(root, path)
    if full is None:
        return None
    try:
        return full.lstat()
    except FileNotFoundError:
        return None


__all__ = ["Call", "Failure", "NEVER", "RECORDED", "Trace", "configure_order", "env_for",
           "inside", "lstat_entry", "parse_log", "run_scripts", "triggers_of", "write_shims"]
