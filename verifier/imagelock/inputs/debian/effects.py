"""Applying the lock's maintainer-script effects to a Debian root, deterministically.

The actions (formats/maintscripts.py) were derived at lock time from a run of the scripts
(`inputs.debian.derive`); here they become entries, with no script run:
- accounts (`user`, `group`, `member`) go through the accounts generator (accounts.py);
- `directory`, `symlink`, `attributes`, `copy`, `file`, `remove` set one path each;
- `statoverride` sets the path's owner and mode and writes /var/lib/dpkg/statoverride;
- `alternative` writes the link group as update-alternatives does: /LINK -> /etc/alternatives/NAME
  -> the selected choice, each slave whose file exists likewise, and the group's state file;
- `python-compile` compiles with the image's own interpreter (pycompile.py);
- `run` runs a package's script again as a hermetic step and takes its checked outputs.
`apply_actions` returns path -> new entry (None: removed) over the view it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from imagelock.core.errors import InputError
from imagelock.formats import maintscripts as ms
from imagelock.formats.common import mode_int, owner_ids
from imagelock.inputs.debian.deb import resolve_relative
from imagelock.inputs.debian.merge import View, read_in_view
from imagelock.tar.entry import BytesContent, Entry

Changes = dict[str, Entry | None]
ACCOUNT_ACTIONS = (ms.ScriptUser, ms.ScriptGroup, ms.Member)


def account_actions(effects: ms.ScriptEffects | None) -> list[ms.ScriptUser | ms.ScriptGroup | ms.Member]:
    if effects is None:
        return []
    return [a for a in effects.actions if isinstance(a, ACCOUNT_ACTIONS)]


def _entry(view: View, changes: Changes, path: str) -> Entry | None:
    if path in changes:
        return changes[path]
    hit = view.get(path)
    return hit[0] if hit is not None else None


def _exists(view: View, changes: Changes, path: str, depth: int = 0) -> bool:
    """Whether `path` names something (following symlinks), as update-alternatives checks."""
    e = _entry(view, changes, path)
    if e is None or depth > 16:
        return False
    if e.type != "symlink":
        return True
    t = e.linkname
    nxt = t.strip("/") if t.startswith("/") else resolve_relative(path.rpartition("/")[0], t)
    return nxt is not None and _exists(view, changes, nxt, depth + 1)



def alternative_state(a: ms.Alternative) -> bytes:
    """/var/lib/dpkg/alternatives/NAME as update-alternatives writes it."""
    lines = [a.mode, a.link]
    for s in a.slaves:
        lines += [s.name, s.link]
    lines.append("")
    for c in a.choices:
        lines += [c.path, str(c.priority)]
        lines += [c.slaves.get(s.name, "") for s in a.slaves]
    lines.append("")
    return ("\n".join(lines) + "\n").encode()


def _alternative(view: View, changes: Changes, a: ms.Alternative) -> None:
    chosen = next((c for c in a.choices if c.path == a.selected), None)
    if chosen is None:
        raise InputError(f"alternative {a.name}: {a.selected} is not one of its choices",
                         hint="re-lock: `imagelock lock`")
    changes[f"var/lib/dpkg/alternatives/{a.name}"] = Entry(
        f"var/lib/dpkg/alternatives/{a.name}", "file", 0o644,
        content=BytesContent(alternative_state(a)))

    def link(path: str, name: str, target: str) -> None:
        old = _entry(view, changes, path.strip("/"))
        if old is None or old.type == "symlink":
            changes[path.strip("/")] = Entry(path.strip("/"), "symlink", 0o777,
                                             linkname=f"/etc/alternatives/{name}")
        changes[f"etc/alternatives/{name}"] = Entry(f"etc/alternatives/{name}", "symlink", 0o777,
                                                    linkname=target)

    link(a.link, a.name, chosen.path)
    for s in a.slaves:
        target = chosen.slaves.get(s.name)
        if target and _exists(view, changes, target.strip("/")):
            link(s.link, s.name, target)
        else:
            for p in (s.link.strip("/"), f"etc/alternatives/{s.name}"):
                old = _entry(view, changes, p)
                if old is not None and old.type == "symlink":
                    changes[p] = None


def _ids(view: View, changes: Changes, path: str, name: str, what: str) -> int:
    e = _entry(view, changes, path)
    data = b""
    if e is not None and e.content is not None:
        with e.content.open() as f:
            data = f.read()
    elif e is None:
        data = read_in_view(view, path) or b""
    for line in data.decode("utf-8", "replace").splitlines():
        row = line.split(":")
        if len(row) > 2 and row[0] == name:
            return int(row[2])
    if name.startswith("#") and name[1:].isdigit():
        return int(name[1:])
    raise InputError(f"a statoverride names {what} {name!r}, which the image does not have",
                     hint="re-lock: `imagelock lock`")


def apply_actions(
    view: View,
    effects: ms.ScriptEffects,
    *,
    workdir: Path,
    source_date_epoch: int,
    bytecode_cache: Path | None = None,
) -> Changes:
    """The entries the effects set (path -> entry, None for removed), over `view` (which holds
    the generated account files: statoverride names resolve through them). `bytecode_cache`:
    see pycompile.compile_bytecode."""
    changes: Changes = {}
    overrides: list[ms.StatOverride] = []
    compile_actions: list[ms.PythonCompile] = []
    runs: list[ms.RunScript] = []
    for a in effects.actions:
        if isinstance(a, ms.Directory):
            uid, gid = owner_ids(a.owner)
            changes[a.path.strip("/")] = Entry(a.path.strip("/"), "dir", mode_int(a.mode), uid, gid)
        elif isinstance(a, ms.Symlink):
            uid, gid = owner_ids(a.owner)
            changes[a.path.strip("/")] = Entry(a.path.strip("/"), "symlink", 0o777, uid, gid,
                                               linkname=a.target)
        elif isinstance(a, ms.Attributes):
            old = _entry(view, changes, a.path.strip("/"))
            if old is None:
                raise InputError(f"the lock changes the owner of {a.path}, which the image does "
                                 "not have", hint="re-lock: `imagelock lock`")
            uid, gid = owner_ids(a.owner)
            changes[old.path] = replace(old, mode=mode_int(a.mode), uid=uid, gid=gid)
        elif isinstance(a, ms.Copy):
            src = _entry(view, {}, a.source.strip("/"))
            if src is not None and src.type == "hardlink":
                src = _entry(view, {}, src.linkname)
            if src is None or src.type != "file" or src.content is None:
                raise InputError(f"the lock copies {a.source} to {a.path}, but the image has no "
                                 f"file {a.source}", hint="re-lock: `imagelock lock`")
            uid, gid = owner_ids(a.owner)
            changes[a.path.strip("/")] = Entry(a.path.strip("/"), "file", mode_int(a.mode), uid,
                                               gid, content=src.content)
        elif isinstance(a, ms.File):
            uid, gid = owner_ids(a.owner)
            changes[a.path.strip("/")] = Entry(a.path.strip("/"), "file", mode_int(a.mode), uid,
                                               gid, content=BytesContent(a.text.encode("utf-8")))
        elif isinstance(a, ms.Remove):
            changes[a.path.strip("/")] = None
        elif isinstance(a, ms.StatOverride):
            overrides.append(a)
        elif isinstance(a, ms.PythonCompile):
            compile_actions.append(a)
        elif isinstance(a, ms.RunScript):
            runs.append(a)
    for o in overrides:
        p = o.path.strip("/")
        old = _entry(view, changes, p)
        if old is not None:
            changes[p] = replace(old, mode=int(o.mode, 8),
                                 uid=_ids(view, changes, "etc/passwd", o.user, "user"),
                                 gid=_ids(view, changes, "etc/group", o.group, "group"))
    if overrides:
        text = "".join(f"{o.user} {o.group} {o.mode} {o.path}\n" for o in overrides)
        changes["var/lib/dpkg/statoverride"] = Entry("var/lib/dpkg/statoverride", "file", 0o644,
                                                     content=BytesContent(text.encode()))
    for a in effects.actions:
        if isinstance(a, ms.Alternative):
            _alternative(view, changes, a)
    if compile_actions:
        # lazy: the sandboxed compiler loads only for images with Python modules to compile
        from imagelock.inputs.debian.pycompile import compile_bytecode

        merged: View = dict(view)
        for path, e in changes.items():
            if e is None:
                merged.pop(path, None)
            else:
                merged[path] = (e, "maintainer scripts")
        for e in compile_bytecode(merged, compile_actions, workdir / "pycompile",
                                  source_date_epoch=source_date_epoch, cache=bytecode_cache):
            if e.type == "dir" and (e.path in changes or e.path in view):
                continue
            changes[e.path] = e
    for i, run in enumerate(runs):
        # lazy: a build step in the rootfs sandbox loads only for specs that ask for one
        from imagelock.inputs.debian.rerun import run_outputs

        # The script runs again where it first ran: every other package's effects in place,
        # its own not yet (scripts are rarely idempotent: `ln -s` fails on an existing link).
        others = [a for a in effects.actions if getattr(a, "package", None) != run.package
                  and not isinstance(a, (ms.PythonCompile, ms.RunScript))]
        before = apply_actions(view, effects.model_copy(update={"actions": others}),
                               workdir=workdir / f"run-{i}-base",
                               source_date_epoch=source_date_epoch, bytecode_cache=bytecode_cache)
        changes.update(run_outputs(view, before, [run], workdir / f"run-{i}",
                                   source_date_epoch=source_date_epoch))
    return changes


def changed_paths(actions: Sequence[ms.Action]) -> set[str]:
    """The paths generic actions name (for telling what a lock's effects touch)."""
    out = set()
    for a in actions:
        path = getattr(a, "path", None)
        if isinstance(path, str):
            out.add(path.strip("/"))
    return out


def review_lines(effects: ms.ScriptEffects | None, platform: str) -> list[str]:
    """What `lock` says about a platform's maintainer scripts: a count, and each item not
    applied that imagelock did not leave out on purpose and the spec did not acknowledge."""
    if effects is None:
        return []
    todo = [n for n in effects.not_applied if not n.expected and not n.acknowledged]
    lines = [f"maintainer scripts ({platform}): {len(effects.ran)} run, {len(effects.actions)} "
             f"actions recorded, {len(effects.not_applied)} items not applied"
             + (f", {len(todo)} to review:" if todo else "")]
    lines += [f"  {n.key()}: {n.reason}" for n in todo]
    if todo:
        lines.append("  (review them, then list them in contents.debian.scripts.acknowledge)")
    return lines
