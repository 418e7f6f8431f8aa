"""Walking two images and saying, in classified differences, everything that is not the same.

The walk goes index -> manifest -> config -> layers -> files. Layers are paired by position;
a pair whose blobs differ is decompressed (whatever wrote the gzip) and, unless it only differs
in compression, both tars are streamed with `tarfile` and indexed entry by entry (path -> header
fields + sha256 of the content, computed while streaming). Only these indexes of metadata are
held in memory, one layer pair at a time, never a layer's bytes.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
import tarfile
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import zstandard

from .compress import gunzip_chunks
from .digest import CHUNK, canonical_json, iter_file
from .formats.lock import ExpectedImage
from .formats.report import Category, Change, Difference, Scope
from .oci.image import Blob, Image

Key = tuple[str, int]  # (normalised path, occurrence): a path may appear twice in one tar
HEADER_WINDOW = 1 << 20  # recent uncompressed bytes kept to read an entry's raw header blocks
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


class UnverifiableBlob(Exception):
    """A blob's bytes do not hash to the digest that names it: nothing can be concluded."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# --- streaming a blob -------------------------------------------------------------------------

class _HashingReader:
    """The stored (compressed) bytes, hashed as they are read."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def close(self) -> None:
        self._f.close()


class _Prefixed:
    """A reader that gives `head` back before the rest of `f` (after sniffing a magic number)."""

    def __init__(self, head: bytes, f: _HashingReader) -> None:
        self._head = head
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = (self._head, b"") if n < 0 else (self._head[:n], self._head[n:])
            return out
        return self._f.read(n)


def compression_of(media_type: str) -> str | None:
    """`gzip`, `zstd`, `none`, or None when the media type does not say (then we sniff)."""
    if media_type.endswith(("gzip", "+gzip")):
        return "gzip"
    if media_type.endswith("zstd"):
        return "zstd"
    if media_type.endswith(("tar", ".tar")):
        return "none"
    return None


def _decompressed(raw: _HashingReader, media_type: str) -> tuple[str, Iterator[bytes]]:
    kind = compression_of(media_type)
    src: Any = raw
    if kind is None:
        head = raw.read(4)
        kind = ("gzip" if head[:2] == b"\x1f\x8b" else
                "zstd" if head == b"\x28\xb5\x2f\xfd" else "none")
        src = _Prefixed(head, raw)
    if kind == "gzip":
        return kind, gunzip_chunks(src)
    if kind == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
        return kind, iter_file(reader)
    return kind, iter_file(src)


class BlobStream:
    """A blob's uncompressed bytes as a file object `tarfile` can read in streaming mode.

    Hashes the stored bytes (to check the blob's digest) and the uncompressed ones (the proof
    of its diff_id) as they pass, and remembers the last HEADER_WINDOW bytes so that an entry's
    raw header blocks can be read back to tell USTAR, PAX and GNU apart.
    """

    def __init__(self, blob: Blob) -> None:
        self._raw = _HashingReader(blob.open())
        self.kind, self._chunks = _decompressed(self._raw, blob.media_type)
        self._pending = memoryview(b"")
        self._hash = hashlib.sha256()
        self.size = 0
        self._recent: deque[tuple[int, bytes]] = deque()
        self._recent_len = 0

    def read(self, n: int = -1) -> bytes:
        parts: list[bytes] = []
        want = n if n >= 0 else None
        got = 0
        while want is None or got < want:
            if not self._pending:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._pending = memoryview(chunk)
            take = self._pending if want is None else self._pending[: want - got]
            parts.append(bytes(take))
            got += len(take)
            self._pending = self._pending[len(take):]
        data = b"".join(parts)
        if data:
            self._hash.update(data)
            self._recent.append((self.size, data))
            self._recent_len += len(data)
            self.size += len(data)
            while self._recent_len - len(self._recent[0][1]) >= HEADER_WINDOW:
                self._recent_len -= len(self._recent.popleft()[1])
        return data

    def recent(self, start: int, end: int) -> bytes | None:
        """Bytes [start, end) of the uncompressed stream, if still remembered."""
        if not self._recent or start < self._recent[0][0] or end > self.size:
            return None
        out = bytearray()
        for pos, data in self._recent:
            lo, hi = max(start, pos), min(end, pos + len(data))
            if lo < hi:
                out += data[lo - pos: hi - pos]
        return bytes(out)

    def finish(self) -> None:
        """Read to the end (tar readers stop at the end-of-archive blocks)."""
        while self.read(CHUNK):
            pass

    def abandon(self) -> None:
        """After a decompression error: hash the rest of the stored bytes, undecompressed."""
        self._raw.drain()

    @property
    def content_digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    @property
    def stored_digest(self) -> str:
        return "sha256:" + self._raw.hash.hexdigest()

    @property
    def stored_size(self) -> int:
        return self._raw.size

    def close(self) -> None:
        self._raw.close()


DECOMPRESSION_ERRORS = (zlib.error, zstandard.ZstdError, EOFError)


def _check_stored(stream: BlobStream, blob: Blob, side: str) -> None:
    if stream.stored_digest != blob.digest or stream.stored_size != blob.size:
        raise UnverifiableBlob(
            f"the {side} layer blob {blob.digest} reads as {stream.stored_digest} "
            f"({stream.stored_size} bytes, {blob.size} expected)",
            hint="fetch the image again; if it persists, the store or registry serves corrupt "
            "or tampered blobs",
        )


@dataclass(frozen=True)
class ContentProof:
    """What a blob decompresses to: the content digest that must equal its diff_id."""

    content_digest: str | None
    error: str | None  # the blob is not valid compressed data


def prove_content(blob: Blob, side: str) -> ContentProof:
    """Decompress `blob` (streamed) and hash the result; raises UnverifiableBlob if the stored
    bytes are not the ones the digest names."""
    stream = BlobStream(blob)
    try:
        try:
            stream.finish()
        except DECOMPRESSION_ERRORS as e:
            stream.abandon()
            _check_stored(stream, blob, side)
            return ContentProof(None, f"not valid {stream.kind} data: {e}")
        _check_stored(stream, blob, side)
        return ContentProof(stream.content_digest, None)
    finally:
        stream.close()


# --- indexing a tar ---------------------------------------------------------------------------

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
        _check_stored(stream, blob, side)
    finally:
        stream.close()
    return LayerIndex(entries, stream.content_digest, error)


# --- comparing two layer indexes --------------------------------------------------------------

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


# --- collecting differences -------------------------------------------------------------------

@dataclass
class Findings:
    """Differences as they are found: every one counted, at most `limit` kept."""

    limit: int
    items: list[Difference] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    omitted: int = 0

    def add(self, d: Difference) -> None:
        if not d.derived:
            self.counts[d.category] += 1
        if len(self.items) < self.limit:
            self.items.append(d)
        else:
            self.omitted += 1

    def extend(self, ds: Iterable[Difference]) -> None:
        for d in ds:
            self.add(d)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return canonical_json(value).decode("utf-8")


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _doc(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def diff_ids_of(config: bytes) -> list[str]:
    doc = _doc(config) or {}
    rootfs = doc.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    return [str(i) for i in ids] if isinstance(ids, list) else []


def layer_names(config: bytes) -> list[str | None]:
    """Layer names from an imagelock config's history (`imagelock layer NAME`), by layer."""
    doc = _doc(config) or {}
    history = doc.get("history")
    names: list[str | None] = []
    for h in history if isinstance(history, list) else []:
        if not isinstance(h, dict) or h.get("empty_layer"):
            continue
        by = str(h.get("created_by", ""))
        names.append(by.removeprefix("imagelock layer ") if by.startswith("imagelock layer ")
                     else None)
    return names


def media_types(manifest: bytes) -> list[str | None]:
    doc = _doc(manifest) or {}
    layers = doc.get("layers")
    return [str(x.get("mediaType")) if isinstance(x, dict) else None
            for x in (layers if isinstance(layers, list) else [])]


# --- documents: index, manifest, config -------------------------------------------------------

def _d(category: Category, scope: Scope, fld: str, expected: object, got: object, *,
       layer: int | None = None, layer_name: str | None = None, derived: bool = False,
       path: str | None = None) -> Difference:
    change: Change = "added" if expected is None else "removed" if got is None else "changed"
    return Difference(category=category, scope=scope, layer=layer, layer_name=layer_name,
                      path=path, field=fld, change=change, expected=_text(expected),
                      got=_text(got), derived=derived)


def diff_index(expected: Image, got: Image) -> list[Difference]:
    """What the index says about each image: its platform (names and tags are not identity)."""
    if expected.platform != got.platform:
        return [_d("metadata", "index", "platform", expected.platform, got.platform)]
    return []


def _dict_diffs(e: dict[str, Any], g: dict[str, Any], scope: Scope, prefix: str,
                skip: Iterable[str] = ()) -> list[Difference]:
    out = []
    for key in sorted(set(e) | set(g)):
        if key in skip or e.get(key) == g.get(key):
            continue
        category: Category = "timestamp" if key == "created" else "metadata"
        out.append(_d(category, scope, f"{prefix}{key}", e.get(key), g.get(key)))
    return out


def diff_manifest(expected: bytes, got: bytes, layer_status: dict[int, str],
                  names: list[str | None]) -> list[Difference]:
    """Manifest fields; `layer_status[i]` says why layer i's blob differs (see LayerWalk)."""
    if expected == got:
        return []
    e, g = _doc(expected), _doc(got)
    if e is None or g is None:
        return [_d("metadata", "manifest", "(document)", "valid JSON" if e else "invalid JSON",
                   "valid JSON" if g else "invalid JSON")]
    out = _dict_diffs(e, g, "manifest", "", skip=("config", "layers", "annotations"))
    ec, gc = e.get("config") or {}, g.get("config") or {}
    if isinstance(ec, dict) and isinstance(gc, dict):
        if ec.get("mediaType") != gc.get("mediaType"):
            out.append(_d("metadata", "manifest", "config.mediaType", ec.get("mediaType"),
                          gc.get("mediaType")))
        if (ec.get("digest"), ec.get("size")) != (gc.get("digest"), gc.get("size")):
            # Follows from the config differences listed below.
            out.append(_d("metadata", "manifest", "config.digest",
                          f"{ec.get('digest')} ({ec.get('size')} bytes)",
                          f"{gc.get('digest')} ({gc.get('size')} bytes)", derived=True))
    el, gl = _list(e.get("layers")), _list(g.get("layers"))
    if len(el) != len(gl):
        out.append(_d("content", "manifest", "layers", f"{len(el)} layers", f"{len(gl)} layers",
                      derived=True))
    for i, (a, b) in enumerate(zip(el, gl, strict=False)):
        name = names[i] if i < len(names) else None
        if not isinstance(a, dict) or not isinstance(b, dict):
            continue
        at, bt = a.get("mediaType"), b.get("mediaType")
        if at != bt:
            comp_changed = compression_of(str(at)) != compression_of(str(bt))
            out.append(_d("compression" if comp_changed else "metadata", "manifest",
                          f"layers[{i}].mediaType", at, bt, layer=i, layer_name=name))
        if (a.get("digest"), a.get("size")) != (b.get("digest"), b.get("size")):
            status = layer_status.get(i, "unexplained")
            category: Category = "compression" if status == "compression" else "content"
            out.append(_d(category, "manifest", f"layers[{i}].digest",
                          f"{a.get('digest')} ({a.get('size')} bytes)",
                          f"{b.get('digest')} ({b.get('size')} bytes)", layer=i, layer_name=name,
                          derived=status == "explained"))
        ea, ga = a.get("annotations") or {}, b.get("annotations") or {}
        for key in sorted(set(ea) | set(ga)):
            if ea.get(key) != ga.get(key):
                out.append(_d("metadata", "manifest", f"layers[{i}].annotations[{key}]",
                              ea.get(key), ga.get(key), layer=i, layer_name=name))
    ea, ga = e.get("annotations") or {}, g.get("annotations") or {}
    for key in sorted(set(ea) | set(ga)):
        if ea.get(key) != ga.get(key):
            out.append(_d("metadata", "manifest", f"annotations[{key}]", ea.get(key), ga.get(key)))
    if not out:
        out.append(_d("metadata", "manifest", "(encoding)", "same fields, these bytes",
                      "same fields, other bytes (key order, whitespace or escaping)"))
    return out


def _env(items: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        name, _, _ = str(item).partition("=")
        out[name] = str(item)
    return out


def _runtime_diffs(e: dict[str, Any], g: dict[str, Any]) -> list[Difference]:
    out = []
    for key in sorted(set(e) | set(g)):
        a, b = e.get(key), g.get(key)
        if a == b:
            continue
        fld = f"config.{key}"
        if key == "Env":
            ea, gb = _env(a), _env(b)
            for name in sorted(set(ea) | set(gb)):
                if ea.get(name) != gb.get(name):
                    out.append(_d("metadata", "config", fld, ea.get(name), gb.get(name)))
            if ea == gb:
                out.append(_d("ordering", "config", fld, a, b))
        elif isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    av, bv = a.get(sub), b.get(sub)
                    out.append(_d("metadata", "config", fld,
                                  None if sub not in a else f"{sub}={_text(av)}",
                                  None if sub not in b else f"{sub}={_text(bv)}"))
        else:
            out.append(_d("metadata", "config", fld, a, b))
    return out


def diff_config(expected: bytes, got: bytes, explained: set[int],
                names: list[str | None]) -> list[Difference]:
    """Config fields one by one; a diff_id difference is derived when its layer is explained."""
    if expected == got:
        return []
    e, g = _doc(expected), _doc(got)
    if e is None or g is None:
        return [_d("metadata", "config", "(document)", "valid JSON" if e else "invalid JSON",
                   "valid JSON" if g else "invalid JSON")]
    out = _dict_diffs(e, g, "config", "", skip=("config", "history", "rootfs"))
    ec, gc = e.get("config"), g.get("config")
    out += _runtime_diffs(ec if isinstance(ec, dict) else {}, gc if isinstance(gc, dict) else {})
    eh, gh = _list(e.get("history")), _list(g.get("history"))
    if len(eh) != len(gh):
        out.append(_d("metadata", "config", "history", f"{len(eh)} entries", f"{len(gh)} entries"))
    for i, (a, b) in enumerate(zip(eh, gh, strict=False)):
        if isinstance(a, dict) and isinstance(b, dict):
            out += _dict_diffs(a, b, "config", f"history[{i}].")
    er, gr = e.get("rootfs") or {}, g.get("rootfs") or {}
    if isinstance(er, dict) and isinstance(gr, dict):
        if er.get("type") != gr.get("type"):
            out.append(_d("metadata", "config", "rootfs.type", er.get("type"), gr.get("type")))
        ei, gi = er.get("diff_ids") or [], gr.get("diff_ids") or []
        for i in range(max(len(ei), len(gi))):
            a = ei[i] if i < len(ei) else None
            b = gi[i] if i < len(gi) else None
            if a != b:
                out.append(_d("content", "config", f"rootfs.diff_ids[{i}]", a, b, layer=i,
                              layer_name=names[i] if i < len(names) else None,
                              derived=i in explained))
    if not out:
        out.append(_d("metadata", "config", "(encoding)", "same fields, these bytes",
                      "same fields, other bytes (key order, whitespace or escaping)"))
    return out


# --- layers -----------------------------------------------------------------------------------

@dataclass
class LayerWalk:
    """Per paired layer position, why the blobs differ: `same` (equal digests), `compression`
    (the got blob decompresses to the expected diff_id), `explained` (differences were listed),
    plus the content digests computed on the got side (the proofs)."""

    status: dict[int, str] = field(default_factory=dict)
    content_digests: dict[int, str] = field(default_factory=dict)


def walk_layers(expected: Image, got: Image, findings: Findings, got_side: str, *,
                prove_all: bool = False) -> LayerWalk:
    """Pair layers by position and explain every pair whose content differs.

    With `prove_all`, got blobs equal to the expected ones are decompressed too, so every
    got layer's content digest is proven, not inferred (for `reproduced-content`).
    """
    walk = LayerWalk()
    exp_ids, got_ids = diff_ids_of(expected.config), diff_ids_of(got.config)
    names = layer_names(expected.config)

    def name(i: int) -> str | None:
        return names[i] if i < len(names) else None

    def moved_from(content: str, i: int) -> int | None:
        """The expected position of a layer found at `i`, if it moved there (the got image no
        longer has it at that position: a copy of a layer that is still in place did not move)."""
        if content not in exp_ids or exp_ids.index(content) == i:
            return None
        j = exp_ids.index(content)
        return j if j >= len(got_ids) or got_ids[j] != exp_ids[j] else None

    def add(category: Category, i: int, fld: str, change: Change, a: str | None,
            b: str | None, path: str | None = None) -> None:
        findings.add(Difference(category=category, scope="layer", layer=i, layer_name=name(i),
                                path=path, field=fld, change=change, expected=a, got=b))

    for i, (eb, gb) in enumerate(zip(expected.layers, got.layers, strict=False)):
        want = exp_ids[i] if i < len(exp_ids) else None
        claimed = got_ids[i] if i < len(got_ids) else None
        if eb.digest == gb.digest and not prove_all:
            walk.status[i] = "same"
            continue
        if claimed == want or claimed in exp_ids or eb.digest == gb.digest:
            # Cheap first: does the got blob decompress to a diff_id we have?
            proof = prove_content(gb, got_side)
            if proof.error is not None:
                add("compression", i, "blob", "changed", "a valid compressed tar", proof.error)
                walk.status[i] = "explained"
                continue
            assert proof.content_digest is not None
            walk.content_digests[i] = proof.content_digest
            if proof.content_digest == want:
                walk.status[i] = "same" if eb.digest == gb.digest else "compression"
                continue
            j = moved_from(proof.content_digest, i)
            if j is not None:
                add("ordering", i, "layer", "moved", f"layer {i}: {want}",
                    f"layer {i}: the expected layer {j} ({proof.content_digest})")
                walk.status[i] = "explained"
                continue
        e_idx = index_layer(eb, "rebuilt" if got_side == "published" else "expected")
        g_idx = index_layer(gb, got_side)
        if e_idx.error is not None:
            raise UnverifiableBlob(f"the expected side's layer {i} cannot be read: {e_idx.error}",
                                   hint="this is a bug in the builder or the image reader: "
                                   "please report it")
        walk.content_digests[i] = g_idx.content_digest
        walk.status[i] = "explained"
        if g_idx.error is not None:
            category: Category = "content" if g_idx.error.startswith("not a valid tar") else \
                "compression"
            add(category, i, "blob", "changed", "a valid compressed tar", g_idx.error)
            continue
        j = moved_from(g_idx.content_digest, i)
        if j is not None:
            add("ordering", i, "layer", "moved", f"layer {i}: {want}",
                f"layer {i}: the expected layer {j} ({g_idx.content_digest})")
            continue
        if claimed is not None and claimed != g_idx.content_digest:
            add("content", i, "content_digest", "changed", claimed,
                f"{g_idx.content_digest} (the blob does not decompress to the diff_id its "
                "config claims)")
        before = len(findings.items) + findings.omitted
        for category, path, fld, change, a, b in diff_layer(e_idx, g_idx):
            add(category, i, fld, change, a, b, path)
        if len(findings.items) + findings.omitted == before and g_idx.content_digest != want:
            add("metadata", i, "tar stream", "changed", want,
                f"{g_idx.content_digest} (same entries and header fields: the bytes differ in "
                "padding, end-of-archive blocks or header encoding)")
    for i in range(len(got.layers), len(expected.layers)):
        blob = expected.layers[i]
        add("content", i, "layer", "removed", f"{blob.digest} ({blob.size} bytes)", None)
    for i in range(len(expected.layers), len(got.layers)):
        blob = got.layers[i]
        add("content", i, "layer", "added", None, f"{blob.digest} ({blob.size} bytes)")
    return walk


# --- against the lock alone -------------------------------------------------------------------

def diff_lock(lock: ExpectedImage, rebuilt: Image) -> list[Difference]:
    """Without a published image only digests can be compared: say which ones differ."""
    out: list[Difference] = []
    ids, names = diff_ids_of(rebuilt.config), layer_names(rebuilt.config)
    if len(lock.layers) != len(rebuilt.layers):
        out.append(_d("content", "manifest", "layers", f"{len(lock.layers)} layers",
                      f"{len(rebuilt.layers)} layers"))
    content_differs = False
    for i, (exp, blob) in enumerate(zip(lock.layers, rebuilt.layers, strict=False)):
        got_id = ids[i] if i < len(ids) else None
        got_name = names[i] if i < len(names) else None
        if exp.name != got_name:
            out.append(_d("metadata", "config", f"history[{i}].created_by", exp.name, got_name,
                          layer=i, layer_name=exp.name))
        if exp.diff_id != got_id:
            content_differs = True
            out.append(_d("content", "config", f"rootfs.diff_ids[{i}]", exp.diff_id, got_id,
                          layer=i, layer_name=exp.name))
        elif (exp.digest, exp.size) != (blob.digest, blob.size):
            out.append(_d("compression", "manifest", f"layers[{i}].digest",
                          f"{exp.digest} ({exp.size} bytes)", f"{blob.digest} ({blob.size} bytes)",
                          layer=i, layer_name=exp.name))
    if (lock.config_digest != rebuilt.config_digest and not content_differs
            and len(lock.layers) == len(rebuilt.layers)):
        out.append(_d("metadata", "config", "(document)", lock.config_digest,
                      f"{rebuilt.config_digest} (same diff_ids: a runtime field, `created`, the "
                      "history or the platform differs; compare with the published image to "
                      "see which)"))
    return out


# --- extracting files (for diffoscope) --------------------------------------------------------

def safe_relpath(path: str) -> PurePosixPath:
    """A relative path that cannot leave the directory it is joined to: empty, `.` and `..`
    components are dropped, whatever the tar said."""
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    return PurePosixPath(*parts) if parts else PurePosixPath("_")


def extract_files(blob: Blob, paths: set[str], dest: Path, side: str) -> dict[str, Path]:
    """Write the regular files of `blob` whose normalised path is in `paths` under `dest`.

    Only regular files are written, each through a fresh real directory chain under `dest`,
    opened with O_NOFOLLOW|O_EXCL: no link in the tar or on disk is ever followed, nothing is
    written outside `dest`. The first occurrence of a path wins.
    """
    root = dest.resolve()
    written: dict[str, Path] = {}
    stream = BlobStream(blob)
    try:
        tf = tarfile.open(fileobj=stream, mode="r|",  # type: ignore[call-overload]  # noqa: SIM115
                          errors="surrogateescape")
        while (m := tf.next()) is not None:
            path = normalise(m.name)
            if m.isreg() and path in paths and path not in written:
                target = root / safe_relpath(path)
                if not target.resolve().is_relative_to(root):
                    continue  # cannot happen after safe_relpath; kept as a last guard
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                 0o644)
                except OSError:
                    continue  # a file where a directory is needed (a type change): skip it
                with os.fdopen(fd, "wb") as out:
                    f = tf.extractfile(m)
                    while f is not None and (data := f.read(CHUNK)):
                        out.write(data)
                written[path] = target
            tf.members.clear()
        stream.finish()
        try:
            _check_stored(stream, blob, side)
        except BaseException:
            # Files from a blob that did not verify are not left for anyone to open.
            shutil.rmtree(dest, ignore_errors=True)
            raise
    finally:
        stream.close()
    return written
