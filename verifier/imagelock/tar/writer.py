"""Canonical tar headers, written byte by byte as spec/README.md ("Canonical layer tar") states.

We do not use `tarfile` to write: its output depends on the Python version (PAX record order,
float mtimes, user names). These pure functions are the whole of the format: a USTAR header,
preceded by a PAX extended header only when a value does not fit USTAR or is not ASCII.
"""

from __future__ import annotations

from imagelock.core.errors import UnsafeContentError
from imagelock.formats.common import MAX_ID, NAME_MAX, PATH_MAX

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)

TYPEFLAGS = {"file": b"0", "hardlink": b"1", "symlink": b"2", "dir": b"5", "whiteout": b"0"}
PAX_NAME = b"././@PaxHeader"
MAX_OCTAL_7 = 0o7777777  # 7 digits: mode, uid, gid
MAX_OCTAL_11 = 0o77777777777  # 11 digits: size, mtime


def _octal(value: int, width: int) -> bytes:
    """`width-1` zero-padded octal digits and a NUL."""
    return b"%0*o\0" % (width - 1, value)


def _field(data: bytes, width: int) -> bytes:
    return data[:width].ljust(width, b"\0")


def pax_records(records: dict[str, str]) -> bytes:
    """PAX records `"<len> <key>=<value>\\n"`, sorted by key, where `len` counts the whole record."""
    out = bytearray()
    for key in sorted(records, key=lambda k: k.encode("utf-8")):
        body = b" " + key.encode("utf-8") + b"=" + records[key].encode("utf-8") + b"\n"
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        out += str(n).encode("ascii") + body
    return bytes(out)


def ustar_header(
    *,
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
) -> bytes:
    """One 512-byte USTAR header; uname, gname and prefix are always empty, devices always 0."""
    header = (
        _field(name, 100)
        + _octal(mode, 8)
        + _octal(uid, 8)
        + _octal(gid, 8)
        + _octal(size, 12)
        + _octal(mtime, 12)
        + b" " * 8
        + typeflag
        + _field(linkname, 100)
        + b"ustar\x0000"
        + b"\0" * 32
        + b"\0" * 32
        + _octal(0, 8)
        + _octal(0, 8)
        + b"\0" * 155
        + b"\0" * 12
    )
    assert len(header) == BLOCK
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def check_bounds(path: str, linkname: str, uid: int, gid: int) -> None:
    """Refuse what tar would carry but Linux cannot unpack (spec/README.md, "Bounds"): a path
    component over NAME_MAX bytes, a path or link over PATH_MAX, an id over 2^31-1."""
    shown = repr(path if len(path) <= 60 else path[:60] + "…")
    longest = max(len(p.encode("utf-8", "surrogateescape")) for p in path.split("/"))
    if longest > NAME_MAX or len(path.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise UnsafeContentError(
            f"the path {shown} is longer than Linux allows ({NAME_MAX} bytes a component, "
            f"{PATH_MAX} in all)", hint="no file system can unpack it: shorten the name")
    if len(linkname.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise UnsafeContentError(f"the link target of {shown} is longer than {PATH_MAX} bytes",
                                 hint="no file system can unpack it")
    if not (0 <= uid <= MAX_ID and 0 <= gid <= MAX_ID):
        raise UnsafeContentError(f"{shown} is owned by {uid}:{gid}; uid and gid are at most "
                                 f"{MAX_ID}", hint="use an id below 2^31")


def entry_header(
    *,
    path: str,
    type: str,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: str = "",
) -> bytes:
    """The header block(s) of one member: optional PAX header plus the USTAR header.

    `path` is the normalised in-image path; directories get a trailing `/` here.
    """
    name = path + "/" if type == "dir" else path
    name_b = name.encode("utf-8")
    link_b = linkname.encode("utf-8")
    check_bounds(path, linkname, uid, gid)
    records: dict[str, str] = {}
    if len(name_b) > 100 or not name.isascii():
        records["path"] = name
    if len(link_b) > 100 or not linkname.isascii():
        records["linkpath"] = linkname
    if size > MAX_OCTAL_11:
        records["size"] = str(size)
    if uid > MAX_OCTAL_7:
        records["uid"] = str(uid)
    if gid > MAX_OCTAL_7:
        records["gid"] = str(gid)
    out = b""
    if records:
        body = pax_records(records)
        out = (
            ustar_header(
                name=PAX_NAME, mode=0, uid=0, gid=0, size=len(body), mtime=0, typeflag=b"x"
            )
            + body
            + padding(len(body))
        )
    out += ustar_header(
        name=name_b,
        mode=mode & 0o7777,
        uid=uid if uid <= MAX_OCTAL_7 else 0,
        gid=gid if gid <= MAX_OCTAL_7 else 0,
        size=size if size <= MAX_OCTAL_11 else 0,
        mtime=mtime,
        typeflag=TYPEFLAGS[type],
        linkname=link_b,
    )
    return out
