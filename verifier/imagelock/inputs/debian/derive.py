"""From a run of the maintainer scripts (trace.py) to the lock's plain actions, checked.

Every path a script changed is explained once, by the first rule that applies:
1. update-alternatives: the link groups its recorded calls build (`alternative`), which cover
   /etc/alternatives, /var/lib/dpkg/alternatives and the groups' links;
2. accounts: lines added to /etc/passwd, group, shadow, gshadow, per script (`user`, `group`,
   `member`, uids and gids as the script got them);
3. dpkg-statoverride: lines added to /var/lib/dpkg/statoverride (`statoverride`);
4. bytecode: `__pycache__/*.pyc` beside a module (`python-compile`, compiled again by the build);
5. what imagelock leaves out on purpose (`DROPPED`: debconf's database, backups, lock files,
   temporary files), listed as not applied;
6. anything else, by what the path is now: `directory`, `symlink`, `attributes` (same content,
   other owner or mode), `copy` (the bytes of a file the packages ship), `file` (text up to
   64 KiB), `remove`; a binary file is listed as not applied unless the spec asks to run the
   package's script as a build step (`run`).
Commands that never ran (trace.NEVER) and failed scripts are listed as not applied too.

Then the check: the actions are applied to the root as it was before any script ran (the same
code the build uses), and every path a script changed must come out as the scripts left it
(type, mode, owner, link target, content). A path that does not is listed as not applied, so a
gap in the rules shows in the lock instead of hiding in the image.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shlex
import stat
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from imagelock.core.digest import sha256_file
from imagelock.formats import maintscripts as ms
from imagelock.inputs.debian.merge import View
from imagelock.inputs.debian.trace import NEVER, Call, Trace, lstat_entry
from imagelock.tar.entry import Entry

TEXT_LIMIT = 64 * 1024
COPY_MIN = 256
DROPPED: tuple[tuple[str, str], ...] = (
    ("var/cache/debconf/*", "debconf's database: the answers the scripts got (the defaults, "
                            "asked noninteractively); not read at run time"),
    ("etc/passwd-", "a backup copy the account tools keep"),
    ("etc/group-", "a backup copy the account tools keep"),
    ("etc/shadow-", "a backup copy the account tools keep"),
    ("etc/gshadow-", "a backup copy the account tools keep"),
    ("etc/subuid-", "a backup copy the account tools keep"),
    ("etc/subgid-", "a backup copy the account tools keep"),
    ("*-old", "a backup copy dpkg's tools keep"),
    ("etc/.pwd.lock", "a lock file"),
    ("var/lib/dpkg/lock", "a lock file"),
    ("var/lib/dpkg/lock-frontend", "a lock file"),
    ("var/lib/dpkg/triggers/*", "dpkg's own trigger bookkeeping (imagelock ran the triggers)"),
    ("var/log/alternatives.log", "a log with times in it"),
    ("var/log/dpkg.log", "a log with times in it"),
    ("tmp/*", "a temporary file"),
    ("var/tmp/*", "a temporary file"),
    ("var/cache/ldconfig/aux-cache", "varies run to run (ld.so.cache itself is generated)"),
    ("run/*", "runtime state: /run is a tmpfs on a running system (mmdebstrap empties it too, "
              "but for /run/lock)"),
)
# Exceptions to DROPPED: base-files makes /run/lock, the target of /var/lock.
KEPT = ("run/lock",)
_PYC = re.compile(r"^(?P<dir>(?:.*/)?)__pycache__/(?P<name>[^/]+)\.(?P<tag>cpython-3[0-9]+)"
                  r"(?:\.opt-(?P<opt>[12]))?\.pyc$")


def _dropped(path: str) -> str | None:
    if path in KEPT:
        return None
    for pattern, reason in DROPPED:
        if fnmatch.fnmatchcase(path, pattern):
            return reason
    return None


def _owner(st: os.stat_result) -> str:
    return f"{st.st_uid}:{st.st_gid}"


def _mode(st: os.stat_result) -> str:
    return f"{stat.S_IMODE(st.st_mode):04o}"



def _content_sha(e: Entry) -> str | None:
    sha = getattr(e.content, "sha256", None)
    if isinstance(sha, str) and sha:
        return sha
    if e.content is None:
        return None
    h = hashlib.sha256()
    with e.content.open() as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --- alternatives -----------------------------------------------------------------------------


@dataclass
class _Group:
    link: str
    slaves: list[tuple[str, str]] = field(default_factory=list)  # (name, link)
    choices: dict[str, ms.AlternativeChoice] = field(default_factory=dict)
    manual: str | None = None


def alternatives(calls: Sequence[Call], overrides: dict[str, str]) -> list[ms.Alternative]:
    """The link groups update-alternatives' recorded calls leave, as `--install` builds them."""
    groups: dict[str, _Group] = {}
    for c in calls:
        if c.tool != "update-alternatives":
            continue
        args = [a for a in c.args if a not in ("--quiet", "--verbose", "--force")]
        if len(args) >= 5 and args[0] == "--install":
            link, name, path, prio = args[1:5]
            slaves: list[tuple[str, str, str]] = []
            rest = args[5:]
            while len(rest) >= 4 and rest[0] == "--slave":
                slaves.append((rest[1], rest[2], rest[3]))
                rest = rest[4:]
            g = groups.setdefault(name, _Group(link))
            g.link = link
            for slink, sname, _ in slaves:
                if sname not in [s[0] for s in g.slaves]:
                    g.slaves.append((sname, slink))
            g.choices[path] = ms.AlternativeChoice(
                path=path, priority=int(prio), slaves={s[1]: s[2] for s in slaves},
                package=c.package)
        elif len(args) >= 3 and args[0] == "--remove" and args[1] in groups:
            groups[args[1]].choices.pop(args[2], None)
            if not groups[args[1]].choices:
                del groups[args[1]]
        elif len(args) >= 2 and args[0] == "--remove-all":
            groups.pop(args[1], None)
        elif len(args) >= 3 and args[0] == "--set" and args[1] in groups:
            groups[args[1]].manual = args[2]
        elif len(args) >= 2 and args[0] == "--auto" and args[1] in groups:
            groups[args[1]].manual = None
    out = []
    for name in sorted(groups):
        g = groups[name]
        ordered = [g.choices[p] for p in sorted(g.choices)]
        selected = overrides.get(name, g.manual)
        mode: Literal["auto", "manual"] = "manual" if selected is not None else "auto"
        if selected is None or (name not in overrides and selected not in g.choices):
            best = max(ordered, key=lambda c: c.priority)  # the first of the highest, by path
            mode, selected = "auto", best.path
        out.append(ms.Alternative(
            name=name, link=g.link,
            slaves=[ms.AlternativeSlave(name=s, link=link) for s, link in sorted(g.slaves)],
            choices=ordered, mode=mode, selected=selected))
    return out


def _alternative_paths(groups: Sequence[ms.Alternative], calls: Sequence[Call]) -> set[str]:
    paths: set[str] = set()
    for c in calls:  # every group ever touched, removed ones too
        if c.tool == "update-alternatives" and len(c.args) >= 3 and c.args[0] == "--install":
            paths |= {c.args[1].strip("/"), f"etc/alternatives/{c.args[2]}",
                      f"var/lib/dpkg/alternatives/{c.args[2]}"}
            rest = list(c.args[5:])
            while len(rest) >= 4 and rest[0] == "--slave":
                paths |= {rest[1].strip("/"), f"etc/alternatives/{rest[2]}"}
                rest = rest[4:]
    for g in groups:
        paths |= {g.link.strip("/"), f"etc/alternatives/{g.name}",
                  f"var/lib/dpkg/alternatives/{g.name}"}
        for s in g.slaves:
            paths |= {s.link.strip("/"), f"etc/alternatives/{s.name}"}
    return paths


# --- accounts and statoverrides ---------------------------------------------------------------


def line_actions(trace: Trace) -> tuple[list[ms.Action], list[ms.NotApplied]]:
    """Accounts and statoverrides, from the lines each run added."""
    actions: list[ms.Action] = []
    problems: list[ms.NotApplied] = []
    shadow: dict[str, str] = {}
    gshadow: dict[str, str] = {}
    for _pkg, path, before, after in trace.lines:
        old = {line.split(":", 1)[0]: line for line in before}
        new_rows = [line for line in after if line.split(":", 1)[0] not in old]
        if path == "etc/shadow":
            shadow.update({r.split(":", 1)[0]: r.split(":", 1)[1] for r in new_rows})
        elif path == "etc/gshadow":
            gshadow.update({r.split(":", 1)[0]: r.split(":", 1)[1] for r in new_rows})
    for pkg, path, before, after in trace.lines:
        if path == "var/lib/dpkg/statoverride":
            for line in after:
                if line not in before and len(line.split(" ", 3)) == 4:
                    user, group, mode, p = line.split(" ", 3)
                    actions.append(ms.StatOverride(path=p, user=user, group=group, mode=mode,
                                                   package=pkg))
            continue
        if path not in ("etc/passwd", "etc/group"):
            continue
        old = {line.split(":", 1)[0]: line for line in before}
        for line in after:
            row = line.split(":")
            name = row[0]
            if name not in old:
                if path == "etc/passwd" and len(row) == 7:
                    actions.append(ms.ScriptUser(name=name, uid=int(row[2]), gid=int(row[3]),
                                           gecos=row[4], home=row[5], shell=row[6],
                                           shadow=shadow.get(name), package=pkg))
                elif path == "etc/group" and len(row) == 4:
                    actions.append(ms.ScriptGroup(name=name, gid=int(row[2]),
                                            members=[m for m in row[3].split(",") if m],
                                            gshadow=gshadow.get(name), package=pkg))
                continue
            if old[name] == line:
                continue
            was = old[name].split(":")
            if path == "etc/group" and was[:3] == row[:3]:
                had = [m for m in was[3].split(",") if m]
                for m in [m for m in row[3].split(",") if m]:
                    if m not in had:
                        actions.append(ms.Member(group=name, user=m, package=pkg))
                continue
            problems.append(ms.NotApplied(package=pkg, kind="output", what=f"/{path} ({name})",
                                          reason="a script changed an existing account; imagelock "
                                          "records new accounts and group members only",
                                          expected=False))
    return actions, problems


# --- the rest, by what each path is now -------------------------------------------------------


def _file_action(root: Path, path: str, st: os.stat_result, pre: dict[str, Entry],
                 by_sha: dict[str, str], pkg: str) -> ms.Action | str:
    """The action for a regular file the scripts left, or why none can hold it."""
    full = root / path
    sha = sha256_file(full)[0]
    old = pre.get(path)
    if old is not None and old.type in ("file", "hardlink"):
        src = pre.get(old.linkname) if old.type == "hardlink" else old
        if src is not None and _content_sha(src) == sha:
            return ms.Attributes(path="/" + path, mode=_mode(st), owner=_owner(st), package=pkg)
    # A copy names where the bytes come from; small text (an empty log, `Etc/UTC`) is written
    # out instead, so that an unrelated file with the same few bytes is not named as its source.
    source = by_sha.get(sha) if st.st_size >= COPY_MIN else None
    if source:
        return ms.Copy(path="/" + path, source="/" + source, mode=_mode(st), owner=_owner(st),
                       package=pkg)
    if st.st_size <= TEXT_LIMIT:
        data = full.read_bytes()
        if b"\0" not in data:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None and text.encode("utf-8") == data:
                return ms.File(path="/" + path, text=text, mode=_mode(st), owner=_owner(st),
                               package=pkg)
    return f"a binary file of {st.st_size} bytes"


def derive_actions(
    pre: View,
    trace: Trace,
    *,
    order: Sequence[str],
    alternatives_override: dict[str, str],
    run: Sequence[str],
    build: Callable[[ms.ScriptEffects], dict[str, Entry]],
    tools: AbstractSet[str] = frozenset(),
) -> tuple[list[ms.Action], list[ms.NotApplied]]:
    """The lock's actions and not-applied list for one traced platform (see the module doc).

    `pre` is the image's root before any script ran. `tools` are packages that were there only
    for the scripts (script_tools in the lock): what their own scripts did is not the image's.
    """
    if tools:
        trace = _without(trace, tools, order)
    entries = {p: e for p, (e, _) in pre.items()}
    root = trace.root
    not_applied: list[ms.NotApplied] = []
    for pkg, why in trace.skipped:
        not_applied.append(ms.NotApplied(package=pkg, kind="not-run", what="maintainer scripts",
                                         reason=why, expected=False))
    for f in trace.failures:
        not_applied.append(ms.NotApplied(
            package=f.package, kind="failure", what=f.script,
            reason=f"exited with {f.code}: {f.output}".strip(), expected=False))
    for c in trace.calls:
        never = NEVER.get(c.tool)
        if never:
            not_applied.append(ms.NotApplied(package=_db(c.package, order), kind="command",
                                             what=shlex.join([c.tool, *c.args]), reason=never,
                                             expected=True))

    groups = alternatives(trace.calls, alternatives_override)
    for g in groups:  # the spec may only choose what a package registered
        if g.selected not in {c.path for c in g.choices}:
            raise_unknown_alternative(g)
    explained = _alternative_paths(groups, trace.calls)
    explained |= {"etc/passwd", "etc/group", "etc/shadow", "etc/gshadow",
                  "var/lib/dpkg/statoverride"}
    accounts, problems = line_actions(trace)
    not_applied += problems

    by_sha: dict[str, str] = {}
    for path in sorted(entries):
        e = entries[path]
        sha = getattr(e.content, "sha256", None) if e.type == "file" else None
        if isinstance(sha, str) and sha:
            by_sha.setdefault(sha, path)

    generic: list[ms.Action] = []
    compiles: dict[tuple[str, str, int], list[str]] = {}
    binaries: dict[str, list[ms.Output]] = {}
    touched = trace.touched
    for path in sorted(touched, key=lambda p: p.encode()):
        pkg = touched[path]
        if path in explained:
            continue
        reason = _dropped(path)
        if path in trace.varying:
            reason = ("differs from one run of the script to the next (a secret such as a "
                      "cookie or key, or the time): never recorded into an image; the service "
                      "makes its own at first start")
        st = lstat_entry(root, path)
        if reason is not None:
            if st is not None and (not stat.S_ISDIR(st.st_mode) or path not in entries):
                not_applied.append(ms.NotApplied(package=pkg, kind="output", what="/" + path,
                                                 reason=reason, expected=True))
            continue
        old = entries.get(path)
        if st is None:
            if old is not None:
                generic.append(ms.Remove(path="/" + path, package=pkg))
            continue
        m = _PYC.match(path)
        if m is not None and stat.S_ISREG(st.st_mode):
            src = f"{m['dir']}{m['name']}.py"
            interp = f"usr/bin/python{m['tag'][len('cpython-'):][0]}.{m['tag'][len('cpython-') + 1:]}"
            if src in entries and interp in entries:
                compiles.setdefault((pkg, "/" + interp, int(m["opt"] or 0)), []).append("/" + src)
                continue
        if stat.S_ISDIR(st.st_mode):
            if path.endswith("__pycache__") and old is None:
                continue  # made by the compile (checked below)
            if old is not None and old.type == "dir" and (old.mode, old.uid, old.gid) == (
                    stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid):
                continue  # only its contents changed
            if old is not None and old.type == "dir":
                generic.append(ms.Attributes(path="/" + path, mode=_mode(st), owner=_owner(st),
                                             package=pkg))
            else:
                generic.append(ms.Directory(path="/" + path, mode=_mode(st), owner=_owner(st),
                                            package=pkg))
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(root / path)
            if old is not None and old.type == "symlink" and old.linkname == target and (
                    old.uid, old.gid) == (st.st_uid, st.st_gid):
                continue
            generic.append(ms.Symlink(path="/" + path, target=target, owner=_owner(st), package=pkg))
        elif stat.S_ISREG(st.st_mode):
            if old is not None and old.type == "file" and (old.mode, old.uid, old.gid) == (
                    stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) and _content_sha(old) == sha256_file(root / path)[0]:
                continue
            action = _file_action(root, path, st, entries, by_sha, pkg)
            if isinstance(action, str):
                if pkg in run or pkg.split(":")[0] in run:
                    binaries.setdefault(pkg, []).append(ms.Output(
                        path="/" + path, sha256=sha256_file(root / path)[0], mode=_mode(st),
                        owner=_owner(st)))
                else:
                    not_applied.append(ms.NotApplied(
                        package=pkg, kind="output", what="/" + path,
                        reason=f"{action}, which the lock cannot hold as text; list the package "
                        "in contents.debian.scripts.run to make it in a build step",
                        expected=False))
                continue
            generic.append(action)
        else:
            not_applied.append(ms.NotApplied(package=pkg, kind="output", what="/" + path,
                                             reason="a device node, FIFO or socket: images carry "
                                             "only files, directories and links", expected=False))
    pycompile = [ms.PythonCompile(interpreter=interp, optimize=opt, sources=sorted(srcs), package=pkg)
                 for (pkg, interp, opt), srcs in sorted(compiles.items())]
    runs = [ms.RunScript(args=["postinst", "configure", ""], outputs=outs, package=pkg)
            for pkg, outs in sorted(binaries.items())]
    rank = {name: i for i, name in enumerate(order)}
    actions: list[ms.Action] = [*accounts, *groups, *sorted(
        [*generic, *pycompile, *runs],
        key=lambda a: (rank.get(getattr(a, "package", ""), len(rank)), _sort_path(a)))]
    not_applied += check(trace, actions, build=build, not_applied=not_applied)
    return actions, not_applied


def _without(trace: Trace, tools: AbstractSet[str], order: Sequence[str]) -> Trace:
    """The trace as far as the image's own packages' scripts go."""
    out = Trace(trace.root)
    out.touched = {p: pkg for p, pkg in trace.touched.items() if pkg not in tools}
    out.calls = [c for c in trace.calls if _db(c.package, order) not in tools]
    out.failures = [f for f in trace.failures if f.package not in tools]
    out.ran = [r for r in trace.ran if r[0] not in tools]
    out.skipped = [s for s in trace.skipped if s[0] not in tools]
    out.lines = [line for line in trace.lines if line[0] not in tools]
    out.varying = {p: pkg for p, pkg in trace.varying.items() if pkg not in tools}
    return out


def _sort_path(a: ms.Action) -> bytes:
    return str(getattr(a, "path", "") or getattr(a, "interpreter", "")).encode()


def _db(package: str, order: Sequence[str]) -> str:
    """dpkg names a script's package without its architecture; the lock uses the db name."""
    if package in order:
        return package
    return next((o for o in order if o.split(":")[0] == package), package)


def raise_unknown_alternative(g: ms.Alternative) -> None:
    # lazy: errors are cheap, but keep the import list of this module short
    from imagelock.core.errors import InputError

    raise InputError(
        f"alternative {g.name}: {g.selected} is not one of its choices",
        field=f"contents.debian.scripts.alternatives.{g.name}",
        hint="choose one of: " + ", ".join(c.path for c in g.choices))


# --- the check --------------------------------------------------------------------------------


def check(
    trace: Trace,
    actions: Sequence[ms.Action],
    *,
    build: Callable[[ms.ScriptEffects], dict[str, Entry]],
    not_applied: Sequence[ms.NotApplied],
) -> list[ms.NotApplied]:
    """Paths the scripts changed that the actions do not reproduce (see the module doc).

    `build` makes the Debian root with the given effects applied, exactly as a build does."""
    effects = ms.ScriptEffects(inputs="0" * 64, ran=[], actions=list(actions))
    built = build(effects)
    listed = {n.what for n in not_applied}
    problems: list[ms.NotApplied] = []
    for path in sorted(trace.touched, key=lambda p: p.encode()):
        if "/" + path in listed or _dropped(path) is not None or path in trace.varying:
            continue
        why = _differs(built.get(path), lstat_entry(trace.root, path), trace.root / path)
        if why:
            problems.append(ms.NotApplied(
                package=trace.touched[path], kind="output", what="/" + path,
                reason=f"the recorded actions do not reproduce it ({why})", expected=False))
    return problems


def _differs(got: Entry | None, st: os.stat_result | None, full: Path) -> str:
    if st is None:
        return "" if got is None else f"the scripts removed it, the actions leave a {got.type}"
    if got is None:
        return "the actions leave nothing there"
    kind = ("dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode)
            else "file" if stat.S_ISREG(st.st_mode) else "special")
    gtype = "file" if got.type == "hardlink" else got.type
    if gtype != kind:
        return f"{got.type}, not {kind}"
    if (got.uid, got.gid) != (st.st_uid, st.st_gid):
        return f"owner {got.uid}:{got.gid}, not {st.st_uid}:{st.st_gid}"
    if kind == "symlink":
        target = os.readlink(full)
        return "" if got.linkname == target else f"link to {got.linkname}, not {target}"
    if got.mode != stat.S_IMODE(st.st_mode):
        return f"mode {got.mode:04o}, not {stat.S_IMODE(st.st_mode):04o}"
    if kind == "file" and got.type == "file" and _content_sha(got) != sha256_file(full)[0]:
        if _PYC.match(got.path) and _same_code(got, full):
            return ""
        return "other content"
    return ""


def _same_code(got: Entry, full: Path) -> bool:
    """A .pyc the trace left that imports wrote (timestamp-based: the source's time in the
    trace's tree) holds the same code as the build's hash-checked one: equal after the header."""
    if got.content is None:
        return False
    with got.content.open() as f:
        ours = f.read()
    theirs = full.read_bytes()
    flags = int.from_bytes(theirs[4:8], "little") if len(theirs) >= 16 else -1
    return flags == 0 and len(ours) >= 16 and ours[:4] == theirs[:4] and ours[16:] == theirs[16:]


__all__ = ["DROPPED", "alternatives", "check", "derive_actions", "line_actions"]
