"""Layer entries: an index of each tar entry (type, mode, owner, times, content hash, raw header format) and the differences between two entries or two layers, each classified."""

from __future__ import annotations

import bisect
import hashlib
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from imagelock.compare.blobs import DECOMPRESSION_ERRORS, BlobStream, check_stored
from imagelock.core.digest import CHUNK
from imagelock.formats.report import Category, Change
from imagelock.oci.image import Blob

Key = tuple[str, int]  # (normalised path, occurrence): a path may appear twice in one tar


TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.LNKTYPE: "hardlink", tarfile.SYMTYPE: "symlink", tarfile.CHRTYPE: "char-device",
    tarfile.BLKTYPE: "block-device", tarfile.DIRTYPE: "dir", tarfile.FIFOTYPE: "fifo",
    tarfile.GNUTYPE_SPARSE: "sparse-file",
}


# PAX keys tarfile folds into header fields: a difference there already shows as that field.
PAX_FIELDS = {"path": "name", "linkpath": "linkname", "size": "size", "uid": "uid", "gid": "gid",
              "uname": "uname", "gname": "gname", "mtime": "mtime"}


PERMISSION_XATTRS = ("SCHILY.xattr.security.capability", "SCHILY.xattr.system.posix_acl",
                     "LIBARCHIVE.xattr.security.capability", "LIBARCHIVE.xattr.system.posix_acl")


@dataclass(frozen=True, slots=True)
class EntryInfo:
    """One tar entry as the comparison sees it: header fields and a digest of the content."""

    name: str
    type: str
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    size: int
    sha256: str | None
    linkname: str
    device: str
    pax: tuple[tuple[str, str], ...]
    format: str
    position: int


@dataclass
class LayerIndex:
    """Every entry of one layer tar, by normalised path, in stream order."""

    entries: dict[Key, EntryInfo]
    content_digest: str
    error: str | None = None


def display(text: str) -> str:
    """A tar name as printable text (undecodable bytes as \\x escapes, never an exception)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def normalise(name: str) -> str:
    """The entry's path as an absolute in-image path: `./etc/x/` and `etc/x` are `/etc/x`."""
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "/" if name in ("", ".") else "/" + display(name)


def header_format(raw: bytes | None) -> str:
    """`ustar`, `pax` (ustar + extended header), `gnu` or `v7`, from an entry's header blocks."""
    if raw is None or len(raw) < 512:
        return "unknown"
    first, last = raw[156:157], raw[-512:]
    magic = last[257:265]
    if first in (b"L", b"K") or magic == b"ustar  \0":
        return "gnu"
    if first in (b"x", b"g", b"X"):
        return "pax"
    if magic[:6] == b"ustar\0":
        return "ustar"
    return "v7"


def _hash_member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    h = hashlib.sha256()
    f = tf.extractfile(member)
    if f is not None:
        while data := f.read(CHUNK):
            h.update(data)
    return h.hexdigest()


def _entry(tf: tarfile.TarFile, m: tarfile.TarInfo, stream: BlobStream, position: int) -> EntryInfo:
    kind = TYPES.get(m.type, f"type {m.type.decode('latin-1')!r}")
    device = f"{m.devmajor},{m.devminor}" if m.ischr() or m.isblk() else ""
    return EntryInfo(
        name=display(m.name), type=kind, mode=m.mode, uid=m.uid, gid=m.gid,
        uname=display(m.uname), gname=display(m.gname), mtime=m.mtime,
        size=m.size if m.isreg() else 0,
        sha256=_hash_member(tf, m) if m.isreg() else None,
        linkname=display(m.linkname), device=device,
        pax=tuple(sorted((display(k), display(v)) for k, v in m.pax_headers.items())),
        format=header_format(stream.recent(m.offset, m.offset_data)),
        position=position,
    )


def index_layer(blob: Blob, side: str) -> LayerIndex:
    """Stream `blob`, decompressing and reading it as a tar, into an index of its entries."""
    stream = BlobStream(blob)
    entries: dict[Key, EntryInfo] = {}
    error = None
    try:
        try:
            seen: Counter[str] = Counter()
            tf = tarfile.open(fileobj=stream, mode="r|",  # type: ignore[call-overload]  # noqa: SIM115
                              errors="surrogateescape")
            position = 0
            while (m := tf.next()) is not None:
                path = normalise(m.name)
                entries[(path, seen[path])] = _entry(tf, m, stream, position)
                seen[path] += 1
                position += 1
                tf.members.clear()  # TarFile keeps every member it read: we keep our index
            stream.finish()
        except DECOMPRESSION_ERRORS as e:
            stream.abandon()
            error = f"not valid {stream.kind} data: {e}"
        except tarfile.TarError as e:
            stream.abandon()
            error = f"not a valid tar: {e}"
        check_stored(stream, blob, side)
    finally:
        stream.close()
    return LayerIndex(entries, stream.content_digest, error)


def _when(t: float) -> str:
    try:
        iso = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return repr(t)
    return f"{int(t)} ({iso})" if t == int(t) else f"{t!r} ({iso})"


def describe_entry(e: EntryInfo) -> str:
    """An entry in one line: type, content or target, mode and owner."""
    what = e.type
    if e.sha256 is not None:
        what += f", {e.size} bytes, sha256:{e.sha256}"
    if e.linkname:
        what += f" -> {e.linkname}"
    if e.device:
        what += f" {e.device}"
    return f"{what}, mode {e.mode:04o}, owner {e.uid}:{e.gid}"


def _pax_category(key: str) -> Category:
    if key in ("atime", "ctime", "mtime", "LIBARCHIVE.creationtime"):
        return "timestamp"
    if key.startswith(PERMISSION_XATTRS):
        return "permissions"
    return "metadata"


def diff_entry(e: EntryInfo, g: EntryInfo) -> list[tuple[Category, str, str, str]]:
    """(category, field, expected, got) for every field in which two entries of one path differ."""
    out: list[tuple[Category, str, str, str]] = []
    if e.type != g.type:
        out.append(("content", "type", describe_entry(e), describe_entry(g)))
    else:
        if (e.sha256, e.size) != (g.sha256, g.size):
            out.append(("content", "content", f"{e.size} bytes, sha256:{e.sha256}",
                        f"{g.size} bytes, sha256:{g.sha256}"))
        if e.linkname != g.linkname:
            out.append(("content", "linkname", e.linkname, g.linkname))
        if e.device != g.device:
            out.append(("content", "device", e.device, g.device))
    if e.mode != g.mode:
        out.append(("permissions", "mode", f"{e.mode:04o}", f"{g.mode:04o}"))
    for name in ("uid", "gid", "uname", "gname"):
        a, b = getattr(e, name), getattr(g, name)
        if a != b:
            out.append(("ownership", name, str(a), str(b)))
    if e.mtime != g.mtime:
        out.append(("timestamp", "mtime", _when(e.mtime), _when(g.mtime)))
    if e.name != g.name:
        out.append(("metadata", "name", e.name, g.name))
    ep, gp = dict(e.pax), dict(g.pax)
    for key in sorted(set(ep) | set(gp)):
        if ep.get(key) == gp.get(key):
            continue
        mapped = PAX_FIELDS.get(key)
        if mapped is not None and getattr(e, mapped) != getattr(g, mapped):
            continue  # shown above as the field itself
        out.append((_pax_category(key), f"pax:{key}", ep.get(key, "(absent)"),
                    gp.get(key, "(absent)")))
    if e.format != g.format:
        out.append(("metadata", "format", e.format, g.format))
    return out


def _moved(expected_order: list[Key], got_order: list[Key]) -> list[Key]:
    """The fewest entries whose moving explains the got order: those outside a longest
    increasing subsequence of expected positions (O(n log n), fine for 100k entries)."""
    rank = {k: i for i, k in enumerate(expected_order)}
    seq = [rank[k] for k in got_order]
    tails: list[int] = []  # tails[l] = smallest tail value of an increasing run of length l+1
    tail_at: list[int] = []  # index in seq of that tail
    prev = [-1] * len(seq)
    for i, v in enumerate(seq):
        j = bisect.bisect_left(tails, v)
        if j == len(tails):
            tails.append(v)
            tail_at.append(i)
        else:
            tails[j] = v
            tail_at[j] = i
        prev[i] = tail_at[j - 1] if j else -1
    keep: set[int] = set()
    i = tail_at[-1] if tail_at else -1
    while i >= 0:
        keep.add(i)
        i = prev[i]
    return [k for i, k in enumerate(got_order) if i not in keep]


def diff_layer(exp: LayerIndex, got: LayerIndex) -> Iterator[tuple[Category, str | None, str,
                                                                   Change, str | None, str | None]]:
    """(category, path, field, change, expected, got) for every difference of two layer tars."""
    for key, e in exp.entries.items():
        g = got.entries.get(key)
        path = key[0]
        if g is None:
            yield "content", path, "entry", "removed", describe_entry(e), None
            continue
        for category, fld, a, b in diff_entry(e, g):
            yield category, path, fld, "changed", a, b
    for key, g in got.entries.items():
        if key not in exp.entries:
            yield "content", key[0], "entry", "added", None, describe_entry(g)
    common_exp = [k for k in exp.entries if k in got.entries]
    common_got = [k for k in got.entries if k in exp.entries]
    if common_exp != common_got:
        for key in _moved(common_exp, common_got):
            yield ("ordering", key[0], "order", "moved",
                   f"entry {exp.entries[key].position}", f"entry {got.entries[key].position}")
