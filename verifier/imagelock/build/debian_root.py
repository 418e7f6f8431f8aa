"""Combining the pinned packages of a lock into one Debian root, and doing declaratively what
their maintainer scripts would have done that an image needs.

Order: packages are applied sorted by (name, architecture), so the result never depends on the
order of the lock or of a resolver.

Two packages shipping the same path (dpkg allows it only with Replaces):
- directories merge; the first package in that order sets the directory's mode and owner, and
  every package's copy of the directory is given those attributes, so layers agree;
- equal content (same type, mode, owner, link target and file sha256) is accepted, as dpkg does
  for Multi-Arch: same packages; the path stays in the first package's entries only, and both
  packages' `.list` files name it;
- otherwise the package whose Replaces names the other (by name or a Provides, version
  constraint checked) wins, and the path leaves the loser's entries and its `.list`, as dpkg
  does; with no Replaces either way (or both ways), or a directory against a non-directory,
  the build stops with an error naming both packages.
A hardlink whose target went to another package becomes a regular file with its own content,
so each package's entries stand alone in whatever layer they are put.

Generated (the `system` entries): the merged-/usr top-level links; the dpkg database
(`status`, `info/<pkg>[:arch].list`, `.md5sums`, and the other control members dpkg keeps);
`/etc/passwd` and `/etc/group` from base-passwd's masters plus extra accounts, and
`/etc/shadow` and `/etc/gshadow` when the `passwd` package is installed (its postinst runs
pwconv), with the last-change day taken from SOURCE_DATE_EPOCH; the CA bundle, the `.pem` and
`<hash>.0` links and `/etc/ca-certificates.conf` exactly as ca-certificates' postinst and
`update-ca-certificates` produce them; `/etc/ld.so.cache` from the image's own ldconfig when
libc-bin is installed and its ldconfig runs here (docs/field-notes.md: the cache is stable, the
aux-cache is not, and is left out). Nothing that varies run to run is written: no logs,
machine-id, keys, aux-cache, `*-old` backups or lock files.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from debian.debian_support import version_compare

from ..errors import ImagelockError, InputError
from ..store import Store
from .deb import (
    DebPackage,
    DebPin,
    StagedFile,
    extract_pinned,
    merge_usr_path,
    merged_usr_links,
)
from .entry import BytesContent, Entry, parent_dirs

# --- accounts given by the caller -------------------------------------------------------------


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


# --- the result -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DebianRoot:
    """A Debian root as entries: each package's own files, and what scripts would have made.

    `packages` maps package name to its entries (after conflicts were resolved); every
    non-directory path is in exactly one list, so packages can go into different layers.
    `system` holds the generated files (dpkg database, accounts, CA bundle, ld.so.cache,
    merged-/usr links); the database always covers every package, so put it in the last layer.
    `notes` says what was skipped and why.
    """

    packages: dict[str, list[Entry]]
    system: list[Entry]
    notes: list[str] = field(default_factory=list)

    def entries(self) -> list[Entry]:
        """Every entry once (directories shared by packages appear once)."""
        seen: dict[str, Entry] = {}
        for group in [*self.packages.values(), self.system]:
            for e in group:
                seen.setdefault(e.path, e)
        return list(seen.values())


def debian_entries(
    pins: Iterable[DebPin],
    store: Store,
    staging_dir: Path,
    *,
    source_date_epoch: int,
    users: Sequence[UserLike] = (),
    groups: Sequence[GroupLike] = (),
    ldconfig: bool = True,
) -> DebianRoot:
    """Verify, extract and combine the pinned packages of a lock into a Debian root."""
    staging_dir = Path(staging_dir)
    packages = [extract_pinned(p, store, staging_dir / "files") for p in pins]
    return combine(
        packages,
        source_date_epoch=source_date_epoch,
        users=users,
        groups=groups,
        workdir=staging_dir / "work" if ldconfig else None,
    )


def combine(
    packages: Sequence[DebPackage],
    *,
    source_date_epoch: int,
    users: Sequence[UserLike] = (),
    groups: Sequence[GroupLike] = (),
    workdir: Path | None = None,
) -> DebianRoot:
    """Combine extracted packages (see the module docstring for the rules) and generate config.

    `workdir` is where ldconfig may stage a root; None skips `/etc/ld.so.cache`.
    """
    ordered = sorted(packages, key=lambda p: (p.name, p.architecture))
    keys = [p.db_name for p in ordered]
    if len(set(keys)) != len(keys):
        raise InputError(f"a package is given twice: {sorted(k for k in keys if keys.count(k) > 1)}")
    view, groups_by_pkg, lost = _merge(ordered)
    notes: list[str] = []
    system: list[Entry] = []
    present_dirs = {p for p, (e, _) in view.items() if e.type == "dir"}
    system += [e for e in merged_usr_links(present_dirs) if e.path not in view]
    for e in system:
        view[e.path] = (e, "merged /usr")
    generated = [
        *dpkg_database(ordered, lost, view),
        *accounts(ordered, view, source_date_epoch, users, groups),
        *ca_certificates(ordered, view),
    ]
    if workdir is not None:
        cache, note = ld_so_cache(ordered, view, workdir)
        generated += cache
        if note:
            notes.append(note)
    for e in generated:
        old = view.get(e.path)
        if old is not None:
            if old[0].type == "dir" and e.type == "dir":
                continue
            raise InputError(
                f"/{e.path} is generated for the dpkg database or configuration, but package "
                f"{old[1]} ships it",
                hint="exclude that package or report the clash",
            )
        view[e.path] = (e, "generated")
        system.append(e)
    return DebianRoot({p.name: groups_by_pkg[p.db_name] for p in ordered}, system, notes)


# --- merging packages -------------------------------------------------------------------------

View = dict[str, tuple[Entry, str]]


def _same(a: Entry, b: Entry) -> bool:
    if (a.type, a.mode, a.uid, a.gid, a.linkname) != (b.type, b.mode, b.uid, b.gid, b.linkname):
        return False
    if a.type != "file":
        return True
    ca, cb = a.content, b.content
    if isinstance(ca, StagedFile) and isinstance(cb, StagedFile):
        return ca.sha256 == cb.sha256
    return False


_REL = re.compile(r"^\s*([^\s(:]+)(?::\S+)?\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([^)\s]+)\s*\))?\s*$")


def replaces(a: DebPackage, b: DebPackage) -> bool:
    """Whether `a` declares Replaces on `b` (by name or one of b's Provides, version checked)."""
    names = {b.name: b.version}
    for alt in _relations(b.control.get("Provides", "")):
        for rel in alt:
            m = _REL.match(rel)
            if m:
                names.setdefault(m.group(1), m.group(3) or "")
    for alt in _relations(a.control.get("Replaces", "")):
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


def _relations(value: str) -> list[list[str]]:
    return [[r.strip() for r in part.split("|")] for part in value.split(",") if part.strip()]


def _merge(ordered: Sequence[DebPackage]) -> tuple[View, dict[str, list[Entry]], dict[str, set[str]]]:
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


# --- the dpkg database ------------------------------------------------------------------------

# dpkg's field order for a status stanza (lib/dpkg/parse.c, fieldinfos); other fields follow
# in the order of the control file.
_STATUS_ORDER = [
    "Package", "Essential", "Protected", "Status", "Priority", "Section", "Installed-Size",
    "Origin", "Maintainer", "Bugs", "Architecture", "Multi-Arch", "Source", "Version",
    "Config-Version", "Replaces", "Provides", "Depends", "Pre-Depends", "Recommends",
    "Suggests", "Breaks", "Conflicts", "Enhances", "Conffiles", "Description",
]
_DEP_FIELDS = {"Replaces", "Provides", "Depends", "Pre-Depends", "Recommends", "Suggests",
               "Breaks", "Conflicts", "Enhances"}
_NEVER_KEPT = {"Filename", "Size", "MD5sum", "MSDOS-Filename", "Status", "Config-Version",
               "Triggers-Pending", "Triggers-Awaited", "Conffiles"}
_DEP = re.compile(r"^([^\s(]+)\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([^)\s]+)\s*\))?$")


def _normalise_relations(value: str) -> str:
    """A relationship field as dpkg writes it back: `a (>= 1), b | c`."""
    out = []
    for alts in _relations(value):
        parts = []
        for rel in alts:
            m = _DEP.match(" ".join(rel.split()))
            if not m:
                parts.append(rel)
                continue
            name, op, ver = m.groups()
            op = {"<": "<=", ">": ">="}.get(op, op)
            parts.append(f"{name} ({op} {ver})" if op else name)
        out.append(" | ".join(parts))
    return ", ".join(out)


def status_stanza(pkg: DebPackage) -> str:
    """One package's stanza of /var/lib/dpkg/status, as dpkg writes it for an installed package."""
    fields: dict[str, str] = {}
    for k, v in pkg.control.items():
        canon = next((f for f in _STATUS_ORDER if f.lower() == k.lower()), k)
        if canon in _NEVER_KEPT:
            continue
        if canon in ("Essential", "Protected") and v.strip() != "yes":
            continue
        if canon in _DEP_FIELDS:
            v = _normalise_relations(v)
        fields[canon] = v
    fields["Status"] = "install ok installed"
    if pkg.conffiles:
        fields["Conffiles"] = "".join(f"\n {line}" for line in _conffile_lines(pkg))
    lines = []
    known = [f for f in _STATUS_ORDER if f in fields]
    extra = [f for f in fields if f not in _STATUS_ORDER]
    for f in known + extra:
        v = fields[f]
        lines.append(f"{f}:{v}" if v.startswith("\n") else f"{f}: {v}")
    return "\n".join(lines) + "\n"


def _conffile_lines(pkg: DebPackage) -> list[str]:
    out = []
    raw = pkg.info["conffiles"].data.decode("utf-8", "surrogateescape").splitlines()
    for line in raw:
        words = line.split()
        if not words:
            continue
        path, flags = words[-1], words[:-1]
        md5 = pkg.md5.get(merge_usr_path(path.strip("/")), "newconffile")
        out.append(" ".join([path, md5, *flags]))
    return out


def _md5sums(pkg: DebPackage) -> bytes:
    if "md5sums" in pkg.info:
        return pkg.info["md5sums"].data
    # dpkg computes them when a package ships none (src/main/archives.c)
    return "".join(
        f"{pkg.md5[s.path]}  {s.original}\n" for s in pkg.shipped if s.type in ("file", "hardlink")
    ).encode()


def _list(pkg: DebPackage, lost: set[str]) -> bytes:
    """info/<pkg>.list: `/.`, then the shipped paths in tar order, symlinks last (as dpkg
    defers them), under the names the package ships (`/bin/sh`, not `/usr/bin/sh`)."""
    lines = ["/."]
    seen = {"/."}
    in_order = [s for s in pkg.shipped if s.type != "symlink"]
    in_order += [s for s in pkg.shipped if s.type == "symlink"]
    for s in in_order:
        line = "/" + s.original
        if (s.path in lost and s.type != "dir") or line in seen:
            continue
        seen.add(line)
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def dpkg_database(ordered: Sequence[DebPackage], lost: dict[str, set[str]], view: View) -> list[Entry]:
    """/var/lib/dpkg: status, info/<pkg>.{list,md5sums,...}, and the empty files dpkg expects."""
    base = "var/lib/dpkg"
    out = [
        Entry(f"{base}/status", "file", 0o644,
              content=BytesContent("\n".join(status_stanza(p) for p in ordered).encode()
                                   + (b"\n" if ordered else b""))),
        Entry(f"{base}/available", "file", 0o644, content=BytesContent(b"")),
        Entry(f"{base}/info/format", "file", 0o644, content=BytesContent(b"1\n")),
    ]
    for d in ("", "/info", "/updates", "/triggers", "/alternatives", "/parts"):
        if f"{base}{d}" not in view:
            out.append(Entry(f"{base}{d}", "dir", 0o755))
    for p in ordered:
        info = f"{base}/info/{p.db_name}"
        out.append(Entry(f"{info}.list", "file", 0o644,
                         content=BytesContent(_list(p, lost[p.db_name]))))
        out.append(Entry(f"{info}.md5sums", "file", 0o644, content=BytesContent(_md5sums(p))))
        for name, f in sorted(p.info.items()):
            if name != "md5sums":
                out.append(Entry(f"{info}.{name}", "file", f.mode, content=BytesContent(f.data)))
    return out


# --- reading files of the combined view -------------------------------------------------------


def _read(view: View, path: str, depth: int = 0) -> bytes | None:
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
        return _read(view, nxt, depth + 1)
    if e.type == "hardlink":
        return _read(view, e.linkname, depth + 1)
    if e.type != "file" or e.content is None:
        return None
    with e.content.open() as f:
        return f.read()


def _installed(ordered: Sequence[DebPackage], name: str) -> bool:
    return any(p.name == name for p in ordered)


# --- accounts ---------------------------------------------------------------------------------


def accounts(
    ordered: Sequence[DebPackage],
    view: View,
    source_date_epoch: int,
    users: Sequence[UserLike],
    groups: Sequence[GroupLike],
) -> list[Entry]:
    """/etc/passwd and /etc/group (and shadow files) from base-passwd's masters plus extras."""
    if not _installed(ordered, "base-passwd"):
        if users or groups:
            raise InputError(
                "accounts are given but base-passwd is not installed",
                hint="add base-passwd to the Debian packages; it provides root and the system groups",
            )
        return []
    pw = _read(view, "usr/share/base-passwd/passwd.master")
    gr = _read(view, "usr/share/base-passwd/group.master")
    if pw is None or gr is None:
        raise InputError("base-passwd ships no passwd.master/group.master where expected")
    shadow = _installed(ordered, "passwd")
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
    if not shadow:
        return [
            Entry("etc/passwd", "file", 0o644, content=_lines(r for r in passwd_rows)),
            Entry("etc/group", "file", 0o644, content=_lines(r for r in group_rows)),
        ]
    return [
        Entry("etc/passwd", "file", 0o644,
              content=_lines([r[0], "x", *r[2:]] for r in passwd_rows)),
        Entry("etc/group", "file", 0o644, content=_lines([r[0], "x", *r[2:]] for r in group_rows)),
        Entry("etc/shadow", "file", 0o640, gid=shadow_gid,
              content=_lines([r[0], r[1], str(day), "0", "99999", "7", "", "", ""]
                             for r in passwd_rows)),
        Entry("etc/gshadow", "file", 0o640, gid=shadow_gid,
              content=_lines([r[0], r[1], "", r[3]] for r in group_rows)),
    ]


def _check_new(kind: str, name: str, num: int, existing: list[tuple[str, int]]) -> None:
    for n, i in existing:
        if n == name or i == num:
            raise InputError(f"{kind} {name} ({num}) clashes with existing {kind} {n} ({i})",
                             hint=f"pick another name and id for the {kind}")


def _lines(rows: Iterable[list[str]]) -> BytesContent:
    return BytesContent("".join(":".join(r) + "\n" for r in rows).encode())


# --- CA certificates --------------------------------------------------------------------------

_CA_CONF_HEADER = """\
# This file lists certificates that you wish to use or to ignore to be
# installed in /etc/ssl/certs.
# update-ca-certificates(8) will update /etc/ssl/certs by reading this file.
#
# This is autogenerated by dpkg-reconfigure ca-certificates.
# Certificates should be installed under /usr/share/ca-certificates
# and files with extension '.crt' is recognized as available certs.
#
# line begins with # is comment.
# line begins with ! is certificate filename to be deselected.
#
"""
_CERTS_DIR = "usr/share/ca-certificates"
_LOCAL_CERTS_DIR = "usr/local/share/ca-certificates"
_ETC_CERTS = "etc/ssl/certs"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_REHASH_EXT = (".pem", ".crt", ".cer", ".crl")


def _files_under(view: View, top: str) -> list[str]:
    """Regular files (not symlinks) below `top`, like `find -type f`, sorted bytewise."""
    return sorted(
        (p for p, (e, _) in view.items() if p.startswith(top + "/") and e.type in ("file", "hardlink")),
        key=lambda s: s.encode(),
    )


def ca_certificates(ordered: Sequence[DebPackage], view: View) -> list[Entry]:
    """What ca-certificates' postinst and `update-ca-certificates` leave in /etc, when installed."""
    if not _installed(ordered, "ca-certificates"):
        return []
    certs = [p[len(_CERTS_DIR) + 1:] for p in _files_under(view, _CERTS_DIR) if p.endswith(".crt")]
    conf = _CA_CONF_HEADER + "".join(c + "\n" for c in certs)
    out = [Entry("etc/ca-certificates.conf", "file", 0o644, content=BytesContent(conf.encode()))]
    pems: dict[str, str] = {}
    bundle = bytearray()
    added = [f"/{_CERTS_DIR}/{c}" for c in certs]
    added += ["/" + p for p in _files_under(view, _LOCAL_CERTS_DIR) if p.endswith(".crt")]
    for cert in added:
        stem = os.path.basename(cert).removesuffix(".crt")
        stem = stem.replace(" ", "_").replace("(", "=").replace(")", "=").replace(",", "_")
        pems[f"{_ETC_CERTS}/{stem}.pem"] = cert
        data = _read(view, cert.lstrip("/")) or b""
        bundle += data if (not data or data.endswith(b"\n")) else data + b"\n"
    for pem, cert in sorted(pems.items()):
        out.append(Entry(pem, "symlink", 0o777, linkname=cert))
    if pems:
        contents = {os.path.basename(p): _read(view, c.lstrip("/")) or b"" for p, c in pems.items()}
        for p, (e, _) in view.items():
            if os.path.dirname(p) == _ETC_CERTS and e.type != "dir":
                contents.setdefault(os.path.basename(p), _read(view, p) or b"")
        out += [Entry(f"{_ETC_CERTS}/{link}", "symlink", 0o777, linkname=target)
                for link, target in rehash(contents).items()]
    if added:
        out.append(Entry(f"{_ETC_CERTS}/ca-certificates.crt", "file", 0o644,
                         content=BytesContent(bytes(bundle))))
    return out


def rehash(files: dict[str, bytes]) -> dict[str, str]:
    """`openssl rehash` of a fresh directory: `<subject hash>.<n>` -> file name, for certificates.

    Files are taken in name order; a file counts only if it holds exactly one PEM certificate
    (the bundle does not); a certificate equal to one already linked is skipped, as openssl
    does. CRLs are not linked (no Debian package ships one in /etc/ssl/certs).
    """
    buckets: dict[int, list[tuple[str, bytes]]] = {}
    for name in sorted(files, key=lambda s: s.encode()):
        if not name.lower().endswith(_REHASH_EXT) or _is_hash_link(name):
            continue
        blocks = _PEM_BLOCK.findall(files[name])
        if len(blocks) != 1 or blocks[0][0] not in (b"CERTIFICATE", b"X509 CERTIFICATE"):
            continue
        try:
            der = base64.b64decode(b"".join(blocks[0][1].split()), validate=True)
            h = subject_hash(der)
        except ValueError:
            continue
        fp = hashlib.sha1(der).digest()
        bucket = buckets.setdefault(h, [])
        if any(f == fp for _, f in bucket):
            continue
        bucket.append((name, fp))
    return {f"{h:08x}.{i}": name for h, b in buckets.items() for i, (name, _) in enumerate(b)}


def _is_hash_link(name: str) -> bool:
    return bool(re.match(r"^[0-9a-f]{8}\.r?[0-9]+$", name))


def _der(data: bytes, pos: int) -> tuple[int, bytes, int, int]:
    """One DER TLV at `pos`: (tag, value, start, end)."""
    start = pos
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:end], start, end


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + value


# String types OpenSSL canonicalises (ASN1_MASK_CANON) and how each decodes to text.
_CANON = {0x0C: "utf-8", 0x13: "latin-1", 0x14: "latin-1", 0x16: "latin-1", 0x1A: "latin-1",
          0x1C: "utf-32-be", 0x1E: "utf-16-be"}
_SPACE = b" \t\n\v\f\r"


def _canon_value(tag: int, value: bytes, raw: bytes) -> bytes:
    if tag not in _CANON:
        return raw
    s = value.decode(_CANON[tag]).encode("utf-8").strip(_SPACE)
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c in _SPACE:
            out.append(0x20)
            while i < len(s) and s[i] in _SPACE:
                i += 1
            continue
        out.append(c + 32 if 0x41 <= c <= 0x5A else c)
        i += 1
    return _tlv(0x0C, bytes(out))


def subject_hash(cert_der: bytes) -> int:
    """OpenSSL's X509_subject_name_hash: what `openssl rehash` names certificate links by.

    SHA-1 of the subject's canonical encoding (x509_name_canon: string values as UTF-8,
    trimmed, inner whitespace collapsed, ASCII lowercased; the RDN SETs concatenated without
    the outer SEQUENCE), first four bytes read little-endian.
    """
    _, cert, _, _ = _der(cert_der, 0)
    _, tbs, _, _ = _der(cert, 0)
    pos = 0
    fields: list[bytes] = []
    while pos < len(tbs) and len(fields) < 6:
        tag, value, _, end = _der(tbs, pos)
        if tag != 0xA0:  # skip the optional [0] version
            fields.append(value)
        pos = end
    subject = fields[4]  # serial, signature, issuer, validity, subject
    canon = bytearray()
    pos = 0
    while pos < len(subject):
        _, rdn, _, pos = _der(subject, pos)
        entries = []
        p = 0
        while p < len(rdn):
            _, atv, _, p = _der(rdn, p)
            _, _, o_start, o_end = _der(atv, 0)
            tag, value, v_start, v_end = _der(atv, o_end)
            entries.append(_tlv(0x30, atv[o_start:o_end] + _canon_value(tag, value, atv[v_start:v_end])))
        canon += _tlv(0x31, b"".join(sorted(entries)))
    return int.from_bytes(hashlib.sha1(bytes(canon)).digest()[:4], "little")


# --- ld.so.cache ------------------------------------------------------------------------------

_LDCONFIG = "usr/sbin/ldconfig"
_LD_SKIP = ("usr/share/", "usr/include/", "var/", "etc/ssl/")


def ld_so_cache(ordered: Sequence[DebPackage], view: View, workdir: Path) -> tuple[list[Entry], str]:
    """/etc/ld.so.cache from the image's own ldconfig, run on a staged copy of the root.

    Only when libc-bin is installed (its trigger is what runs ldconfig in a real install) and
    its statically linked ldconfig runs on this machine; otherwise skipped with a note, because
    the host's ldconfig may write a different cache. `-X` leaves links alone; the aux-cache it
    writes is never read back.
    """
    if not _installed(ordered, "libc-bin") or _LDCONFIG not in view:
        return [], ""
    workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=workdir, prefix="ldroot-"))
    try:
        for path, (e, _) in sorted(view.items()):
            if path.startswith(_LD_SKIP):
                continue
            dest = root / path
            if e.type == "dir":
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if e.type == "symlink":
                os.symlink(e.linkname, dest)
            elif e.type in ("file", "hardlink"):
                src = _staged_path(view, path)
                if src is None:
                    continue
                try:
                    os.link(src, dest)
                except OSError:
                    shutil.copyfile(src, dest)
        # The image's ldconfig is a program from a package: it runs in a sandbox (no network,
        # no capabilities, the staged root read-only), never on the host.
        out = Path(tempfile.mkdtemp(dir=workdir, prefix="ldout-"))
        (root / ".imagelock-ld-out").mkdir()
        (root / "var/cache/ldconfig").mkdir(parents=True, exist_ok=True)
        exe = root / _LDCONFIG  # a private executable copy: staged files are shared links
        shutil.copyfile(exe, root / ".imagelock-ldconfig")
        os.replace(root / ".imagelock-ldconfig", exe)
        os.chmod(exe, 0o755)
        from .sandbox import IN_SANDBOX, Sandbox

        if os.environ.get(IN_SANDBOX) == "1":
            # Already in the build sandbox (no network, no host files, no capabilities but
            # chroot in its own user namespace): a sandbox cannot nest here, and need not.
            out = root / ".imagelock-ld-out"  # -C is read inside the chroot
            try:
                r = subprocess.run([str(root / _LDCONFIG), "-X", "-r", str(root), "-C",
                                    "/.imagelock-ld-out/ld.so.cache"], capture_output=True,
                                   timeout=300, env={"PATH": "/usr/sbin:/usr/bin", "LC_ALL": "C"})
            except (OSError, subprocess.TimeoutExpired) as e:
                return [], f"/etc/ld.so.cache left out: the image's ldconfig did not run ({e})"
        else:
            box = Sandbox(root=root, writable_root=False, as_root=False,
                          rw_binds=[(out, "/.imagelock-ld-out")],
                          tmpfs=["/tmp", "/var/cache/ldconfig"])
            for mount_point in box.mount_points():  # the root is read-only: bwrap cannot make them
                mp = root / mount_point.lstrip("/")
                if not mp.is_symlink():
                    mp.mkdir(parents=True, exist_ok=True)
            try:
                r = box.run(["/" + _LDCONFIG, "-X", "-C", "/.imagelock-ld-out/ld.so.cache"],
                            timeout=300)
            except ImagelockError as e:
                return [], f"/etc/ld.so.cache left out: the image's ldconfig could not run ({e.message})"
        if r.returncode != 0 or not (out / "ld.so.cache").is_file():
            err = (r.stderr or b"").decode(errors="replace").strip()[-200:]
            return [], f"/etc/ld.so.cache left out: the image's ldconfig failed ({err})"
        cache = (out / "ld.so.cache").read_bytes()
        return [Entry("etc/ld.so.cache", "file", 0o644, content=BytesContent(cache))], ""
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _staged_path(view: View, path: str) -> Path | None:
    e = view[path][0]
    if e.type == "hardlink":
        e = view[e.linkname][0]
    c = e.content
    return c.path if isinstance(c, StagedFile) else None
