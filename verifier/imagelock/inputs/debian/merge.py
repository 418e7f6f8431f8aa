"""Merging unpacked packages into one tree the way dpkg would: Replaces decide who owns a path both ship; identical shared files are kept once."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import replace

from debian.debian_support import version_compare

from imagelock.core.errors import InputError
from imagelock.inputs.debian.deb import (
    DebPackage,
    StagedFile,
)
from imagelock.tar.entry import Entry, parent_dirs

View = dict[str, tuple[Entry, str]]
_REL = re.compile(r"^\s*([^\s(:]+)(?::\S+)?\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([^)\s]+)\s*\))?\s*$")


def _same(a: Entry, b: Entry) -> bool:
    if (a.type, a.mode, a.uid, a.gid, a.linkname) != (b.type, b.mode, b.uid, b.gid, b.linkname):
        return False
    if a.type != "file":
        return True
    ca, cb = a.content, b.content
    if isinstance(ca, StagedFile) and isinstance(cb, StagedFile):
        return ca.sha256 == cb.sha256
    return False


def replaces(a: DebPackage, b: DebPackage) -> bool:
    """Whether `a` declares Replaces on `b` (by name or one of b's Provides, version checked)."""
    names = {b.name: b.version}
    for alt in relations(b.control.get("Provides", "")):
        for rel in alt:
            m = _REL.match(rel)
            if m:
                names.setdefault(m.group(1), m.group(3) or "")
    for alt in relations(a.control.get("Replaces", "")):
        for rel in alt:
            m = _REL.match(rel)
            if not m or m.group(1) not in names:
                continue
            op, ver = m.group(2), m.group(3)
            if op is None:
                return True
            have = names[m.group(1)]
            if not have:
                continue  # an unversioned Provides never satisfies a versioned relation
            c = version_compare(have, ver)
            ok = {"<<": c < 0, "<": c <= 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0,
                  ">": c >= 0, ">>": c > 0}[op]
            if ok:
                return True
    return False


def relations(value: str) -> list[list[str]]:
    return [[r.strip() for r in part.split("|")] for part in value.split(",") if part.strip()]


def merge_packages(ordered: Sequence[DebPackage]) -> tuple[View, dict[str, list[Entry]], dict[str, set[str]]]:
    view: View = {}
    by_name = {p.db_name: p for p in ordered}
    kept: dict[str, dict[str, Entry]] = {p.db_name: {} for p in ordered}
    lost: dict[str, set[str]] = {p.db_name: set() for p in ordered}
    for pkg in ordered:
        me = pkg.db_name
        for e in pkg.entries:
            old = view.get(e.path)
            if old is None:
                view[e.path] = (e, me)
                kept[me][e.path] = e
                continue
            oe, owner = old
            if oe.type == e.type == "dir":
                kept[me][e.path] = oe  # the first package's attributes, in every layer
                continue
            if _same(oe, e):
                continue
            other = by_name[owner]
            conflict = oe.type == "dir" or e.type == "dir"
            mine, theirs = replaces(pkg, other), replaces(other, pkg)
            if conflict or mine == theirs:
                raise InputError(
                    f"packages {other.name} and {pkg.name} both ship /{e.path} "
                    f"({oe.type} and {e.type}, different content)"
                    + (" and each Replaces the other" if mine and theirs else ""),
                    hint="dpkg would refuse this too: exclude one of them, or pin versions "
                    "whose Replaces settle who owns the path",
                )
            if mine:
                view[e.path] = (e, me)
                kept[owner].pop(e.path, None)
                lost[owner].add(e.path)
                kept[me][e.path] = e
            else:
                lost[me].add(e.path)
    for path, (_e, owner) in view.items():
        for parent in parent_dirs(path):
            p = view.get(parent)
            if p is not None and p[0].type != "dir":
                raise InputError(
                    f"package {owner} ships /{path} below /{parent}, a {p[0].type} of package {p[1]}",
                    hint="dpkg would follow the link; imagelock places files only at real paths",
                )
    groups: dict[str, list[Entry]] = {}
    for pkg in ordered:
        mine_entries = kept[pkg.db_name]
        originals = {e.path: e for e in pkg.entries}
        out = []
        for e in mine_entries.values():
            if e.type == "hardlink" and e.linkname not in mine_entries:
                target = originals[e.linkname]
                e = replace(e, type="file", linkname="", content=target.content)
            out.append(e)
        groups[pkg.db_name] = out
    return view, groups, lost


def read_in_view(view: View, path: str, depth: int = 0) -> bytes | None:
    """The bytes at an in-image path, following symlinks (absolute ones from the image root)."""
    hit = view.get(path)
    if hit is None or depth > 16:
        return None
    e = hit[0]
    if e.type == "symlink":
        target = e.linkname
        if target.startswith("/"):
            nxt = target.strip("/")
        else:
            nxt = os.path.normpath(os.path.join(os.path.dirname(path), target))
        return read_in_view(view, nxt, depth + 1)
    if e.type == "hardlink":
        return read_in_view(view, e.linkname, depth + 1)
    if e.type != "file" or e.content is None:
        return None
    with e.content.open() as f:
        return f.read()


def is_installed(ordered: Sequence[DebPackage], name: str) -> bool:
    return any(p.name == name for p in ordered)
