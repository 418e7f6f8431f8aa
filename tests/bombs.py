"""Hostile published layers, generated at test time: decompression bombs and tar bombs.

Each bomb is a gzip stream made of small pieces that are compressed once and repeated, so a
blob that decompresses to gigabytes is written in well under a second: a gzip stream may hold
several members (RFC 1952), and inside one deflate stream a full flush resets the compressor, so
the same input after it compresses to the same bytes every time. Every stream is valid to its
last byte (CRC and size trailers included): only the bounds of the reader stop it.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from imagelock.tar.writer import END_OF_ARCHIVE, padding, ustar_header

MIB = 1 << 20
MAX_USTAR_SIZE = 0o77777777777  # the largest size 11 octal digits hold: 8 GiB - 1


def header(name: str, size: int, typeflag: bytes = b"0") -> bytes:
    return ustar_header(name=name.encode(), mode=0o644, uid=0, gid=0, size=size, mtime=0,
                        typeflag=typeflag)


def member(data: bytes) -> bytes:
    """One gzip member (level 9, no name, mtime 0)."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def single_member_zeros(prefix: bytes, zeros: int, suffix: bytes) -> Iterator[bytes]:
    """ONE gzip member holding prefix + `zeros` zero bytes (a multiple of 1 MiB) + suffix: the
    shape that makes one decompression call of 1 MiB input yield about 1 GiB."""
    assert zeros % MIB == 0
    unit = b"\0" * MIB
    c = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: header and trailer are ours
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    yield c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(unit) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(zeros // MIB):
        yield block
        crc = zlib.crc32(unit, crc)
    yield c.compress(suffix) + c.flush()
    crc = zlib.crc32(suffix, crc)
    yield struct.pack("<II", crc, (len(prefix) + zeros + len(suffix)) & 0xFFFFFFFF)


def repeated(data: bytes, times: int) -> Iterator[bytes]:
    """`data` `times` times over, as one gzip member repeated (so any size costs one compression)."""
    m = member(data)
    for _ in range(times):
        yield m


def content_bomb(total_gib: int) -> Iterator[bytes]:
    """A valid layer tar of files of zeros, `total_gib` GiB in all, as gzip members of 64 MiB
    each (about 65 KB compressed)."""
    chunk = 64 * MIB
    per_file = MAX_USTAR_SIZE + 1  # 8 GiB: the data (8 GiB - 1) plus its one byte of padding
    left = total_gib << 30
    n = 0
    while left > 0:
        size = min(per_file, left)
        yield member(header(f"zeros-{n}", size - 1 if size == per_file else size))
        yield from repeated(b"\0" * chunk, size // chunk)
        left -= size
        n += 1
    yield member(END_OF_ARCHIVE)


def long_name_bomb(record: int, kind: str) -> Iterator[bytes]:
    """One entry whose extended header record is `record` bytes long: a GNU long name (`L`) or
    a PAX `path` record (`x`)."""
    if kind == "L":
        yield member(header("././@LongLink", record, b"L"))
        yield from repeated(b"a" * MIB, record // MIB)
    else:
        fill = b"a" * MIB
        body_len = pax_length("path", record - 32)
        head = f"{body_len} path=".encode()
        rest = body_len - len(head) - 1
        yield member(header("././@PaxHeader", body_len, b"x") + head)
        yield from repeated(fill, rest // MIB)
        yield member(fill[: rest % MIB] + b"\n" + padding(body_len))
    yield member(header("victim", 0) + END_OF_ARCHIVE)


def dot_slash_bomb(record: int, entries: int) -> Iterator[bytes]:
    """`entries` entries whose PAX path is `./` repeated, then `victim<N>`, the record `record`
    bytes long: stripping a leading `./` at a time copies the rest each time (quadratic)."""
    body_len = pax_length("path", record - 32)
    head = f"{body_len} path=".encode()
    for n in range(entries):
        name = f"victim{n}".encode()
        dots = body_len - len(head) - 1 - len(name)
        value = b"./" * (dots // 2) + b"/" * (dots % 2) + name
        body = head + value + b"\n"
        assert len(body) == body_len
        yield member(header("././@PaxHeader", body_len, b"x") + body + padding(body_len)
                     + header("victim", 0))
    yield member(END_OF_ARCHIVE)


def pax_length(key: str, value_len: int) -> int:
    """The length of the PAX record `"<len> key=value\\n"`, which counts its own digits."""
    body = 1 + len(key) + 1 + value_len + 1
    n = body + 1
    while len(str(n)) + body != n:
        n = len(str(n)) + body
    return n


def header_chain_bomb(headers: int) -> Iterator[bytes]:
    """`headers` empty PAX extended headers in a row before one entry (tarfile reads each by
    recursion)."""
    yield from repeated(header("././@PaxHeader", 0, b"x"), headers)
    yield member(header("victim", 0) + END_OF_ARCHIVE)


def entries_bomb(entries: int) -> Iterator[bytes]:
    """A layer of `entries` empty files (names repeat every 1000: a path may occur many times
    in a tar, and each occurrence is an entry)."""
    block = b"".join(header(f"f{i:06d}", 0) for i in range(1000))
    yield from repeated(block, entries // 1000)
    yield member(END_OF_ARCHIVE)


def write_blob(pieces: Iterable[bytes], directory: Path) -> tuple[str, int, Path]:
    """Stream `pieces` into `directory/<sha256>`; returns (digest, size, path)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / "incoming"
    h = hashlib.sha256()
    size = 0
    with open(tmp, "wb") as f:
        for piece in pieces:
            h.update(piece)
            size += len(piece)
            f.write(piece)
    path = directory / h.hexdigest()
    tmp.rename(path)
    return "sha256:" + h.hexdigest(), size, path
