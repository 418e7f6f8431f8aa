"""/etc/passwd and /etc/group from base-passwd's templates plus the spec's accounts, as maintainer scripts would have made them, deterministically."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from imagelock.core.errors import InputError
from imagelock.formats import maintscripts as ms
from imagelock.inputs.debian.deb import (
    DebPackage,
)
from imagelock.inputs.debian.merge import View, is_installed, read_in_view
from imagelock.tar.entry import BytesContent, Entry


class UserLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...
    @property
    def home(self) -> str: ...
    @property
    def shell(self) -> str: ...


class GroupLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def gid(self) -> int: ...
    @property
    def members(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class User:
    """An extra account, added after base-passwd's (what `useradd` would have written)."""

    name: str
    uid: int
    gid: int
    home: str = "/nonexistent"
    shell: str = "/usr/sbin/nologin"


@dataclass(frozen=True)
class Group:
    """An extra group, added after base-passwd's."""

    name: str
    gid: int
    members: Sequence[str] = ()






def accounts(
    ordered: Sequence[DebPackage],
    view: View,
    source_date_epoch: int,
    users: Sequence[UserLike],
    groups: Sequence[GroupLike],
    script: Sequence[ms.ScriptUser | ms.ScriptGroup | ms.Member] = (),
) -> list[Entry]:
    """/etc/passwd and /etc/group (and shadow files) from base-passwd's masters plus extras.

    Rows come in the order a real install writes them: base-passwd's, the spec's accounts, then
    those maintainer scripts added (`script`, from the lock), with their own shadow lines.
    """
    if not is_installed(ordered, "base-passwd"):
        if users or groups or script:
            raise InputError(
                "accounts are given but base-passwd is not installed",
                hint="add base-passwd to the Debian packages; it provides root and the system groups",
            )
        return []
    pw = read_in_view(view, "usr/share/base-passwd/passwd.master")
    gr = read_in_view(view, "usr/share/base-passwd/group.master")
    if pw is None or gr is None:
        raise InputError("base-passwd ships no passwd.master/group.master where expected")
    shadow = is_installed(ordered, "passwd")
    day = source_date_epoch // 86400
    passwd_rows = [line.split(":") for line in pw.decode().splitlines() if line]
    group_rows = [line.split(":") for line in gr.decode().splitlines() if line]
    extra_members: dict[str, list[str]] = {}
    for g in groups:
        _check_new("group", g.name, g.gid, [(r[0], int(r[2])) for r in group_rows])
        group_rows.append([g.name, "!", str(g.gid), ",".join(g.members)])
        extra_members[g.name] = list(g.members)
    gids = {int(r[2]) for r in group_rows}
    for u in users:
        _check_new("user", u.name, u.uid, [(r[0], int(r[2])) for r in passwd_rows])
        if u.gid not in gids:
            raise InputError(f"user {u.name}'s group id {u.gid} is not a group",
                             hint="add the group to accounts.groups")
        passwd_rows.append([u.name, "!", str(u.uid), str(u.gid), "", u.home, u.shell])
    shadow_gid = next((int(r[2]) for r in group_rows if r[0] == "shadow"), 0)
    shadow_rows = [[r[0], r[1], str(day), "0", "99999", "7", "", "", ""] for r in passwd_rows]
    gshadow_rows = [[r[0], r[1], "", r[3]] for r in group_rows]
    for a in script:
        if isinstance(a, ms.ScriptGroup):
            _check_new("group", a.name, a.gid, [(r[0], int(r[2])) for r in group_rows])
            group_rows.append([a.name, "!", str(a.gid), ",".join(a.members)])
            gshadow_rows.append([a.name, *(a.gshadow or f"!::{','.join(a.members)}").split(":")])
        elif isinstance(a, ms.ScriptUser):
            _check_new("user", a.name, a.uid, [(r[0], int(r[2])) for r in passwd_rows])
            passwd_rows.append([a.name, "!", str(a.uid), str(a.gid), a.gecos, a.home, a.shell])
            shadow_rows.append([a.name, *(a.shadow or f"!:{day}::::::").split(":")])
        else:
            for rows, members in ((group_rows, 3), (gshadow_rows, -1)):
                row = next((r for r in rows if r[0] == a.group), None)
                if row is None:
                    raise InputError(f"the lock adds {a.user} to group {a.group}, which does not exist",
                                     hint="re-lock: `imagelock lock`")
                row[members] = ",".join([m for m in row[members].split(",") if m] + [a.user])
    if not shadow:
        return [
            Entry("etc/passwd", "file", 0o644, content=_lines(r for r in passwd_rows)),
            Entry("etc/group", "file", 0o644, content=_lines(r for r in group_rows)),
        ]
    return [
        Entry("etc/passwd", "file", 0o644,
              content=_lines([r[0], "x", *r[2:]] for r in passwd_rows)),
        Entry("etc/group", "file", 0o644, content=_lines([r[0], "x", *r[2:]] for r in group_rows)),
        Entry("etc/shadow", "file", 0o640, gid=shadow_gid, content=_lines(shadow_rows)),
        Entry("etc/gshadow", "file", 0o640, gid=shadow_gid, content=_lines(gshadow_rows)),
    ]


def _check_new(kind: str, name: str, num: int, existing: list[tuple[str, int]]) -> None:
    for n, i in existing:
        if n == name or i == num:
            raise InputError(f"{kind} {name} ({num}) clashes with existing {kind} {n} ({i})",
                             hint=f"pick another name and id for the {kind}")


def _lines(rows: Iterable[list[str]]) -> BytesContent:
    return BytesContent("".join(":".join(r) + "\n" for r in rows).encode())
