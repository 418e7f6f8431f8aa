"""The dpkg database an installed system has (status, .list, .md5sums, conffiles): written from the packages' control data so that dpkg, scanners and SBOM tools see every package."""

from __future__ import annotations

import re
from collections.abc import Sequence

from imagelock.inputs.debian.deb import (
    DebPackage,
    merge_usr_path,
)
from imagelock.inputs.debian.merge import View, relations
from imagelock.tar.entry import BytesContent, Entry

_DEP = re.compile(r"^([^\s(]+)\s*(?:\(\s*(<<|<=|>=|>>|=|<|>)\s*([^)\s]+)\s*\))?$")


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


def _normalise_relations(value: str) -> str:
    """A relationship field as dpkg writes it back: `a (>= 1), b | c`."""
    out = []
    for alts in relations(value):
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


def raw_fields(text: str) -> dict[str, str]:
    """Control fields as dpkg reads them: leading blanks and the value's end trimmed, nothing else
    (python-debian also trims the first line's end, which dpkg keeps inside a long value)."""
    out: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and name is not None:
            out[name] += "\n" + line
        elif ":" in line:
            name, _, value = line.partition(":")
            out[name] = value.lstrip(" \t")
    return {k: v.rstrip() for k, v in out.items()}


def _ends(value: str) -> str:
    return "\n".join(line.rstrip() for line in value.split("\n"))


def status_stanza(pkg: DebPackage, *, exact: bool = False) -> str:
    """One package's stanza of /var/lib/dpkg/status, as dpkg writes it for an installed package.

    `exact` keeps each value's own whitespace as dpkg does (locks with script effects; older
    locks keep python-debian's reading, so that their builds do not change)."""
    fields: dict[str, str] = {}
    raw = raw_fields(pkg.control_text) if exact and pkg.control_text else {}
    for k, v in pkg.control.items():
        if k in raw and _ends(raw[k]) == _ends(v):
            v = raw[k]
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


def _triggers(ordered: Sequence[DebPackage]) -> list[Entry]:
    """triggers/File (file interests: `PATH PKG[/noawait]`), triggers/NAME (`PKG[/noawait]`)
    and an empty triggers/Unincorp, from the packages' `triggers` control files."""
    files: list[str] = []
    named: dict[str, list[str]] = {}
    for p in ordered:
        info = p.info.get("triggers")
        if info is None:
            continue
        for line in info.data.decode("utf-8", "replace").splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) != 2 or not words[0].startswith("interest"):
                continue
            who = p.db_name + ("/noawait" if words[0] == "interest-noawait" else "")
            if words[1].startswith("/"):
                files.append(f"{words[1]} {who}")
            else:
                named.setdefault(words[1], []).append(who)
    base = "var/lib/dpkg/triggers"
    out = [Entry(f"{base}/Unincorp", "file", 0o644, content=BytesContent(b""))]
    if files:
        out.append(Entry(f"{base}/File", "file", 0o644,
                         content=BytesContent("".join(f + "\n" for f in files).encode())))
    for name in sorted(named):
        out.append(Entry(f"{base}/{name}", "file", 0o644,
                         content=BytesContent("".join(w + "\n" for w in named[name]).encode())))
    return out


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


def dpkg_database(ordered: Sequence[DebPackage], lost: dict[str, set[str]], view: View, *,
                  exact: bool = False) -> list[Entry]:
    """/var/lib/dpkg: status, info/<pkg>.{list,md5sums,...}, and the empty files dpkg expects.

    `exact` (locks with script effects): as dpkg leaves it after a fresh install, with the
    trigger interests a later `apt-get install` in a derived image needs (triggers/File and
    triggers/NAME: without them, a new library would not run libc-bin's ldconfig trigger),
    `arch`, and no `available` (which dpkg makes only when asked).
    """
    base = "var/lib/dpkg"
    out = [
        Entry(f"{base}/status", "file", 0o644,
              content=BytesContent("\n".join(status_stanza(p, exact=exact) for p in ordered).encode()
                                   + (b"\n" if ordered else b""))),
    ]
    if not exact:
        out.append(Entry(f"{base}/available", "file", 0o644, content=BytesContent(b"")))
    out.append(Entry(f"{base}/info/format", "file", 0o644, content=BytesContent(b"1\n")))
    if exact:
        out += _triggers(ordered)
        arch = next((p.architecture for p in ordered if p.architecture != "all"), "")
        if arch:
            out.append(Entry(f"{base}/arch", "file", 0o644,
                             content=BytesContent(f"{arch}\n".encode())))
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
