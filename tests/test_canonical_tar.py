"""The canonical layer tar, byte by byte: what spec/README.md promises another implementation."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from imagelock.build.layer import write_layer
from imagelock.build.tree import Tree
from imagelock.core.errors import InputError, UnsafeContentError
from imagelock.tar.entry import BytesContent, Entry, normalize_path, symlink_stays_inside
from imagelock.tar.writer import entry_header, pax_records


def _layer(tmp: Path, entries: list[Entry], mtime: int = 1000) -> tuple[bytes, bytes]:
    lb = write_layer(entries, mtime=mtime, blob_path=tmp / "l.gz", tar_path=tmp / "l.tar")
    tar, gz = (tmp / "l.tar").read_bytes(), (tmp / "l.gz").read_bytes()
    assert lb.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert lb.digest == "sha256:" + hashlib.sha256(gz).hexdigest()
    assert gzip.decompress(gz) == tar
    return tar, gz


def test_header_fields_are_exactly_as_specified() -> None:
    h = entry_header(path="etc/passwd", type="file", mode=0o4755, uid=1, gid=2, size=10, mtime=7)
    assert len(h) == 512
    assert h[:100] == b"etc/passwd".ljust(100, b"\0")
    assert h[100:108] == b"0004755\0"
    assert h[108:116] == b"0000001\0"
    assert h[116:124] == b"0000002\0"
    assert h[124:136] == b"00000000012\0"
    assert h[136:148] == b"00000000007\0"
    assert h[156:157] == b"0"
    assert h[257:265] == b"ustar\x0000"
    assert h[265:329] == b"\0" * 64  # empty uname and gname
    assert h[329:345] == b"0000000\0" * 2
    assert h[345:500] == b"\0" * 155  # prefix never used
    chk = sum(h[:148]) + 8 * 32 + sum(h[156:])
    assert h[148:156] == b"%06o\0 " % chk


def test_pax_header_only_when_needed_and_records_sorted() -> None:
    assert len(entry_header(path="a" * 100, type="file", mode=0o644, uid=0, gid=0, size=0, mtime=0)) == 512
    h = entry_header(path="é" * 60, type="symlink", mode=0o777, uid=3_000_000, gid=0, size=0,
                     mtime=0, linkname="x" * 101)
    assert h[156:157] == b"x" and h[:14] == b"././@PaxHeader"
    size = int(h[124:135], 8)
    body = h[512:512 + size]
    keys = [rec.split(b" ", 1)[1].split(b"=", 1)[0] for rec in body.split(b"\n") if rec]
    assert keys == [b"linkpath", b"path", b"uid"]
    t = tarfile.open(fileobj=io.BytesIO(h + b"\0" * 1024))
    m = t.next()
    assert m is not None and m.name == "é" * 60 and m.linkname == "x" * 101 and m.uid == 3_000_000


@pytest.mark.parametrize("n", range(1, 300))
def test_pax_record_length_counts_itself(n: int) -> None:
    rec = pax_records({"path": "p" * n})
    length, _ = rec.split(b" ", 1)
    assert int(length) == len(rec)


def test_entries_sorted_bytewise_parents_first_and_time_fixed(tmp_path: Path) -> None:
    entries = [
        Entry("b", "dir", 0o755),
        Entry("a/b", "file", 0o644, content=BytesContent(b"ab")),
        Entry("a-b", "file", 0o644, content=BytesContent(b"a-b")),
        Entry("a", "dir", 0o755),
        Entry("B", "file", 0o600, 5, 6, content=BytesContent(b"B")),
    ]
    tar, gz = _layer(tmp_path, entries, mtime=1234)
    members = tarfile.open(fileobj=io.BytesIO(tar)).getmembers()
    assert [m.name for m in members] == ["B", "a", "a-b", "a/b", "b"]
    assert {m.mtime for m in members} == {1234}
    assert {(m.uname, m.gname) for m in members} == {("", "")}
    assert tar.endswith(b"\0" * 1024) and len(tar) % 512 == 0
    assert gz[:10] == bytes.fromhex("1f8b08000000000000ff")  # no name, mtime 0, OS 255


def test_same_entries_in_any_order_give_the_same_bytes(tmp_path: Path) -> None:
    entries = [Entry(f"f{i}", "file", 0o644, content=BytesContent(bytes([i]) * i)) for i in range(50)]
    (tmp_path / "1").mkdir()
    (tmp_path / "2").mkdir()
    one = _layer(tmp_path / "1", entries)
    two = _layer(tmp_path / "2", list(reversed(entries)))
    assert one == two


def test_path_rules() -> None:
    assert normalize_path("/usr//local/./bin/") == "usr/local/bin"
    with pytest.raises(UnsafeContentError):
        normalize_path("/usr/../../etc")
    with pytest.raises(UnsafeContentError):
        normalize_path("/")
    assert symlink_stays_inside("usr/bin/x", "../lib/y")
    assert symlink_stays_inside("usr/bin/x", "/etc/../usr")
    assert not symlink_stays_inside("usr/x", "../../etc")


def test_tree_refuses_entries_below_a_symlink_and_cross_layer_hardlinks() -> None:
    t = Tree(["one", "two"])
    t.add(Entry("bin", "symlink", 0o777, linkname="usr/bin"), "one", "paths[0]")
    t.add(Entry("bin/sh", "file", 0o755, content=BytesContent(b"")), "two", "files[0]")
    with pytest.raises(UnsafeContentError, match="below /bin"):
        t.layer_entries()
    t = Tree(["one", "two"])
    t.add(Entry("a", "file", 0o644, content=BytesContent(b"a")), "one", "files[0]")
    t.add(Entry("b", "hardlink", 0o644, linkname="a"), "two", "paths[0]")
    with pytest.raises(InputError, match="another layer"):
        t.layer_entries()


def test_implicit_parent_takes_the_declared_directory_attributes() -> None:
    t = Tree(["one", "two"])
    t.add(Entry("srv", "dir", 0o750, 5, 5), "one", "paths[0]")
    t.add(Entry("srv/x", "file", 0o644, content=BytesContent(b"x")), "two", "files[0]")
    layers = t.layer_entries()
    (srv,) = [e for e in layers["two"] if e.path == "srv"]
    assert (srv.mode, srv.uid, srv.gid) == (0o750, 5, 5)
