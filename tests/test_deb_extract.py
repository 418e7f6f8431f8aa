"""Reading pinned .deb files into image entries: merged /usr, hardlinks, hostile packages."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from deb_factory import M, make_deb, pin_for
from imagelock.core.errors import EXIT_FETCH_FAILED, InputError, IntegrityError, UnsafeContentError
from imagelock.fetch.store import Store
from imagelock.inputs.debian.deb import (
    extract_pinned,
    merge_usr_symlink_target,
    merged_usr_links,
    read_deb,
)

ROOT = [M("./", "dir", mode=0o755)]


def _by_path(entries: list) -> dict:  # type: ignore[type-arg]
    return {e.path: e for e in entries}


def test_normal_package_gives_entries_control_md5sums_and_conffiles(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "hello.deb", [
        *ROOT,
        M("./etc/", "dir", mode=0o755),
        M("./etc/hello.conf", data=b"greeting=hi\n"),
        M("./usr/", "dir", mode=0o755),
        M("./usr/games/", "dir", mode=0o2775, gid=60),
        M("./usr/games/hello", data=b"\x7fELF hello", mode=0o4755, uid=5, gid=60),
    ], conffiles=["/etc/hello.conf"], fields={"Depends": "libc6 (>= 2.36)"})
    store = Store(tmp_path / "store")
    pkg = extract_pinned(pin_for(store, deb, "hello", "1.0-1", "amd64"), store, tmp_path / "stage")

    e = _by_path(pkg.entries)
    assert e["usr/games"].mode == 0o2775 and e["usr/games"].gid == 60
    hello = e["usr/games/hello"]
    assert (hello.type, hello.mode, hello.uid, hello.gid) == ("file", 0o4755, 5, 60)
    with hello.content.open() as f:
        assert f.read() == b"\x7fELF hello"
    # staging is content-addressed
    assert hello.content.path.name == hashlib.sha256(b"\x7fELF hello").hexdigest()
    assert pkg.control["Depends"] == "libc6 (>= 2.36)"
    assert pkg.conffiles == ["/etc/hello.conf"]
    assert b"usr/games/hello" in pkg.info["md5sums"].data
    assert pkg.md5["etc/hello.conf"] == hashlib.md5(b"greeting=hi\n").hexdigest()
    assert "" not in e  # the archive root is not an entry


def test_bin_sbin_lib_move_under_usr_and_links_follow(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "m.deb", [
        *ROOT,
        M("./bin/", "dir", mode=0o755),
        M("./bin/dash", data=b"dash", mode=0o755),
        M("./bin/sh", "symlink", linkname="dash"),
        M("./bin/up", "symlink", linkname="../usr/share/up"),
        M("./sbin/", "dir", mode=0o755),
        M("./sbin/tool", "hardlink", linkname="./bin/dash"),
        M("./lib64/", "dir", mode=0o755),
        M("./lib64/ld.so", "symlink", linkname="/lib/x86_64-linux-gnu/ld.so"),
        M("./usr/", "dir", mode=0o755),
        M("./usr/lib/", "dir", mode=0o755),
        M("./usr/lib/abs", "symlink", linkname="/sbin/tool"),
    ])
    pkg = read_deb(deb, tmp_path / "stage")
    e = _by_path(pkg.entries)
    assert not [p for p in e if p.split("/")[0] in ("bin", "sbin", "lib", "lib64")]
    assert e["usr/bin/sh"].linkname == "dash"  # same-directory links keep their text
    assert e["usr/bin/up"].linkname == "../share/up"  # still points at usr/share/up
    assert (e["usr/sbin/tool"].type, e["usr/sbin/tool"].linkname) == ("hardlink", "usr/bin/dash")
    assert e["usr/lib64/ld.so"].linkname == "/usr/lib/x86_64-linux-gnu/ld.so"
    assert e["usr/lib/abs"].linkname == "/usr/sbin/tool"
    # the dpkg database keeps the shipped names, as on a merged-/usr bookworm system
    assert ("bin/sh", "usr/bin/sh") in {(s.original, s.path) for s in pkg.shipped}
    links = {x.path: x.linkname for x in merged_usr_links({p for p, v in e.items() if v.type == "dir"})}
    assert links == {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}


def test_relative_symlink_rewrite_keeps_meaning() -> None:
    assert merge_usr_symlink_target("bin/sh", "usr/bin/sh", "dash") == "dash"
    assert merge_usr_symlink_target("lib/x/a.so", "usr/lib/x/a.so", "../../usr/lib/x/b") == "b"
    assert merge_usr_symlink_target("usr/bin/x", "usr/bin/x", "../../bin/y") == "../../bin/y"
    assert merge_usr_symlink_target("usr/bin/x", "usr/bin/x", "/bin") == "/usr/bin"


def test_hardlinks_are_kept_as_hardlinks(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "h.deb", [
        *ROOT,
        M("./usr/", "dir", mode=0o755),
        M("./usr/bin/", "dir", mode=0o755),
        M("./usr/bin/gzip", data=b"gz", mode=0o755),
        M("./usr/bin/gunzip", "hardlink", linkname="./usr/bin/gzip", mode=0o755),
    ])
    e = _by_path(read_deb(deb, tmp_path / "stage").entries)
    assert (e["usr/bin/gunzip"].type, e["usr/bin/gunzip"].linkname) == ("hardlink", "usr/bin/gzip")
    assert e["usr/bin/gunzip"].content is None


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        (M("./usr/../../etc/passwd", data=b"x"), "'..'"),
        (M("/etc/passwd", data=b"x"), "absolute"),
        (M("./usr/evil", "symlink", linkname="../../etc/shadow"), "leaves the image root"),
        (M("./dev/sda", "chr"), "device node"),
        (M("./run/pipe", "fifo"), "FIFO"),
        (M("./usr/h", "hardlink", linkname="./etc/passwd"), "hardlink"),
        (M("./usr/h2", "hardlink", linkname="../etc/passwd"), "hardlink"),
    ],
)
def test_hostile_members_are_refused_by_name(tmp_path: Path, member: M, needle: str) -> None:
    deb = make_deb(tmp_path / "evil.deb", [*ROOT, M("./usr/", "dir", mode=0o755), member],
                   package="evil")
    with pytest.raises(UnsafeContentError) as err:
        read_deb(deb, tmp_path / "stage")
    assert "package evil" in err.value.message
    assert repr(member.name) in err.value.message
    assert needle in err.value.message
    assert err.value.hint


def test_member_below_own_symlink_is_refused(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "evil.deb", [
        *ROOT, M("./usr/", "dir", mode=0o755), M("./usr/etc", "symlink", linkname="/etc"),
        M("./usr/etc/passwd", data=b"root::0:0::/:/bin/sh\n"),
    ], package="evil")
    with pytest.raises(UnsafeContentError, match="usr/etc/passwd.*below a symlink"):
        read_deb(deb, tmp_path / "stage")


def test_absolute_symlink_targets_are_allowed(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "a.deb", [
        *ROOT, M("./etc/", "dir", mode=0o755), M("./etc/localtime", "symlink",
                                                 linkname="/usr/share/zoneinfo/UTC"),
    ])
    assert _by_path(read_deb(deb, tmp_path / "s").entries)["etc/localtime"].linkname == (
        "/usr/share/zoneinfo/UTC")


def test_deb_whose_sha256_differs_from_the_pin_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    deb = make_deb(tmp_path / "hello.deb", [*ROOT, M("./x", data=b"x")])
    pin = pin_for(store, deb, "hello", "1.0-1", "amd64")
    store.path_for(pin.sha256).chmod(0o644)
    store.path_for(pin.sha256).write_bytes(deb.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError) as err:
        extract_pinned(pin, store, tmp_path / "stage")
    assert err.value.exit_code == EXIT_FETCH_FAILED == 3
    assert not store.path_for(pin.sha256).exists()  # the corrupt object was discarded


def test_deb_that_is_not_the_pinned_package_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    deb = make_deb(tmp_path / "other.deb", [*ROOT], package="other")
    with pytest.raises(InputError, match="not the pinned package"):
        extract_pinned(pin_for(store, deb, "hello", "1.0-1", "amd64"), store, tmp_path / "s")


@pytest.mark.parametrize("compression", ["xz", "gz", "zst", "bz2", ""])
def test_every_data_compression_reads_the_same(tmp_path: Path, compression: str) -> None:
    if compression == "zst":
        pytest.importorskip("zstandard")
    big = bytes(range(256)) * 8192  # 2 MiB, several stream chunks
    deb = make_deb(tmp_path / "c.deb", [
        *ROOT, M("./usr/", "dir", mode=0o755), M("./usr/big", data=big),
        M("./usr/small", data=b"s"),
    ], compression=compression)
    e = _by_path(read_deb(deb, tmp_path / "stage").entries)
    with e["usr/big"].content.open() as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(big).digest()
    assert e["usr/big"].size == len(big)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
@pytest.mark.parametrize("compression", ["xz", "gzip", "zstd", "none"])
def test_debs_built_by_dpkg_deb_read_like_dpkg_lists_them(tmp_path: Path, compression: str) -> None:
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: built\nVersion: 2\nArchitecture: all\nMaintainer: T <t@example.org>\n"
        "Description: built by dpkg-deb\n")
    (root / "usr/share/built").mkdir(parents=True)
    (root / "usr/share/built/data").write_bytes(b"payload\n" * 1000)
    (root / "usr/share/built/link").symlink_to("data")
    deb = tmp_path / "built.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root),
                    str(deb)], check=True, capture_output=True)
    pkg = read_deb(deb, tmp_path / "stage")
    listed = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True,
                            capture_output=True).stdout
    assert pkg.name == "built" and pkg.version == "2"
    e = _by_path(pkg.entries)
    with e["usr/share/built/data"].content.open() as f:
        assert f.read() == b"payload\n" * 1000
    assert e["usr/share/built/link"].linkname == "data"
    assert len(listed) > 0
