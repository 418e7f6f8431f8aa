"""Layer entries: an index of each tar entry (type, mode, owner, times, content hash, raw header format) and the differences between two entries or two layers, each classified.

Layer tars are read with tarfile in streaming mode, bounded (docs/rebuild-report.md, "Limits"):
one entry's headers may not run past MAX_HEADER_BYTES nor chain more than MAX_HEADER_CHAIN
extended headers (tarfile reads each one by recursion), and what the index keeps of a published
layer (entries, and the text of names, link targets and PAX records) is bounded relative to the
rebuilt layer it is compared with.
"""

from __future__ import annotations

import bisect
import hashlib
import tarfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self

from imagelock.compare.blobs import (
    DECOMPRESSION_ERRORS,
    MAX_HEADER_BYTES,
    BlobStream,
    ContentBudget,
    LimitExceeded,
    check_stored,
)
from imagelock.core.digest import CHUNK
from imagelock.formats.report import Category, Change
from imagelock.oci.image import Blob

Key = tuple[str, int]  # (normalised path, occurrence): a path may appear twice in one tar

MAX_HEADER_CHAIN = 8  # extended headers (PAX, global PAX, GNU long name/link) before one entry
ENTRY_SLACK = 10_000  # entries a published layer may have beyond twice the rebuilt layer's
MAX_ENTRIES = 1_000_000  # entries indexed per published layer, whatever the rebuild has
TEXT_SLACK = 16 << 20  # bytes of names, link targets and PAX records beyond twice the rebuild's
MAX_TEXT = 256 << 20  # bytes of such text kept per published layer, whatever the rebuild has
KEPT_TEXT = 4096  # a longer name or link target (PATH_MAX) is kept as a prefix and its sha256
KEPT_PAX = (64, 4096)  # an entry's PAX records beyond this (count, bytes) are kept as a digest
_READAHEAD = 2 * tarfile.RECORDSIZE  # what tarfile's stream reader buffers past its position
_CHAIN = "_imagelock_header_chain"


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
    limit: str | None = None  # reading stopped at a bound: the index is incomplete
    text: int = 0  # bytes of names, link targets and PAX records kept


@dataclass(frozen=True)
class LayerBounds:
    """What the index of one published layer may hold, and the comparison's byte budget."""

    budget: ContentBudget | None
    key: int
    max_entries: int = MAX_ENTRIES
    max_text: int = MAX_TEXT

    @classmethod
    def relative_to(cls, reference: LayerIndex, budget: ContentBudget | None, key: int) -> Self:
        """Twice what the rebuilt layer has, plus some slack: a layer that differs by a few
        files still lists them, one that is a bomb stops early."""
        return cls(budget, key, min(MAX_ENTRIES, 2 * len(reference.entries) + ENTRY_SLACK),
                   min(MAX_TEXT, 2 * reference.text + TEXT_SLACK))


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's header parsing with chains of extended headers bounded: tarfile reads each one
    by recursion, so a long chain would otherwise end in RecursionError."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> Self:
        depth: int = getattr(tarfile, _CHAIN, 0)
        if depth > MAX_HEADER_CHAIN:
            raise LimitExceeded(f"an entry has more than {MAX_HEADER_CHAIN} extended headers "
                                "(PAX, GNU long name or link) before it")
        setattr(tarfile, _CHAIN, depth + 1)
        try:
            return super().fromtarfile(tarfile)
        finally:
            setattr(tarfile, _CHAIN, depth)


def layer_members(stream: BlobStream) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """The members of a layer tar, streamed, each with the TarFile to read its content from.

    While tarfile parses one entry's headers, the stream refuses to produce more than
    MAX_HEADER_BYTES past where they start (tarfile reads a PAX record or GNU long name whole
    into memory); members already read are forgotten (TarFile keeps every one)."""
    stream.header_limit = MAX_HEADER_BYTES + _READAHEAD
    tf = tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape",  # type: ignore[call-overload]  # noqa: SIM115
                      tarinfo=_BoundedTarInfo)
    while True:
        stream.header_limit = tf.offset + MAX_HEADER_BYTES + _READAHEAD
        m = tf.next()
        stream.header_limit = None
        if m is None:
            return
        yield tf, m
        tf.members.clear()


def display(text: str) -> str:
    """A tar name as printable text (undecodable bytes as \\x escapes, never an exception)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _digest_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def kept(text: str) -> str:
    """A name or link target as the index keeps it: whole up to KEPT_TEXT bytes (Linux's
    PATH_MAX), else a prefix and the whole one's sha256 (still unique, still comparable)."""
    if len(text) <= KEPT_TEXT:
        return display(text)
    return f"{display(text[:200])}...(sha256:{_digest_text(text)}, {len(text)} characters)"


def _pax(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    records = sorted((display(k), display(v)) for k, v in headers.items())
    count, size = KEPT_PAX
    if len(records) <= count and sum(len(k) + len(v) for k, v in records) <= size:
        return tuple(records)
    whole = "\n".join(f"{k}={v}" for k, v in records)
    return (("(records)", f"sha256:{_digest_text(whole)} ({len(records)} records, "
             f"{len(whole)} characters)"),)


def normalise(name: str) -> str:
    """The entry's path as an absolute in-image path: `./etc/x/` and `etc/x` are `/etc/x`."""
    start = 0
    while name.startswith("./", start):  # by offset: a name of a million "./" stays linear
        start += 2
    name = name[start:].strip("/")
    return "/" if name in ("", ".") else "/" + kept(name)


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
        name=kept(m.name), type=kind, mode=m.mode, uid=m.uid, gid=m.gid,
        uname=kept(m.uname), gname=kept(m.gname), mtime=m.mtime,
        size=m.size if m.isreg() else 0,
        sha256=_hash_member(tf, m) if m.isreg() else None,
        linkname=kept(m.linkname), device=device,
        pax=_pax(m.pax_headers),
        format=header_format(stream.recent(m.offset, m.offset_data)),
        position=position,
    )


def _text(e: EntryInfo) -> int:
    return (len(e.name) + len(e.linkname) + len(e.uname) + len(e.gname)
            + sum(len(k) + len(v) for k, v in e.pax))


def index_layer(blob: Blob, side: str, bounds: LayerBounds | None = None) -> LayerIndex:
    """Stream `blob`, decompressing and reading it as a tar, into an index of its entries.

    With `bounds` (a published layer), reading stops at the first bound hit and the index says
    why (`limit`); it is then incomplete and its content digest is not the layer's."""
    stream = BlobStream(blob, bounds.budget if bounds else None, bounds.key if bounds else 0)
    entries: dict[Key, EntryInfo] = {}
    error = limit = None
    text = 0
    try:
        try:
            seen: Counter[str] = Counter()
            for position, (tf, m) in enumerate(layer_members(stream)):
                if bounds is not None and position >= bounds.max_entries:
                    raise LimitExceeded(f"the layer has more than {bounds.max_entries} entries "
                                        f"(twice the rebuilt layer's plus {ENTRY_SLACK}, at most "
                                        f"{MAX_ENTRIES})")
                path = normalise(m.name)
                entry = _entry(tf, m, stream, position)
                text += _text(entry)
                if bounds is not None and text > bounds.max_text:
                    raise LimitExceeded(f"the layer's names, link targets and PAX records pass "
                                        f"{bounds.max_text} bytes (twice the rebuilt layer's "
                                        f"plus {TEXT_SLACK}, at most {MAX_TEXT})")
                entries[(path, seen[path])] = entry
                seen[path] += 1
            stream.finish()
        except DECOMPRESSION_ERRORS as e:
            stream.abandon()
            error = f"not valid {stream.kind} data: {e}"
        except tarfile.TarError as e:
            stream.abandon()
            error = f"not a valid tar: {e}"
        except LimitExceeded as e:
            stream.abandon()
            limit = e.reason
        check_stored(stream, blob, side)
    finally:
        stream.close()
    return LayerIndex(entries, stream.content_digest, error, limit, text)


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
