"""Small .deb files made at test time, including hostile ones dpkg-deb would never build."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import tarfile
from dataclasses import dataclass
from pathlib import Path

from imagelock.fetch.store import Store
from imagelock.formats.debian import DebianPackagePin


@dataclass
class M:
    """A data.tar member: `type` is file, dir, symlink, hardlink, chr or fifo."""

    name: str
    type: str = "file"
    data: bytes = b""
    mode: int = 0o644
    linkname: str = ""
    uid: int = 0
    gid: int = 0


def _tar(members: list[M]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for m in members:
            ti = tarfile.TarInfo(m.name)
            ti.mode, ti.uid, ti.gid, ti.mtime = m.mode, m.uid, m.gid, 1700000000
            ti.type = {
                "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE,
            }[m.type]
            ti.linkname = m.linkname
            if m.type == "file":
                ti.size = len(m.data)
                tf.addfile(ti, io.BytesIO(m.data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "xz":
        return lzma.compress(data)
    if how == "gz":
        return gzip.compress(data, mtime=0)
    if how == "bz2":
        return bz2.compress(data)
    if how == "zst":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


def _ar(members: list[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def make_deb(
    path: Path,
    members: list[M],
    *,
    package: str = "hello",
    version: str = "1.0-1",
    arch: str = "amd64",
    fields: dict[str, str] | None = None,
    conffiles: list[str] | None = None,
    compression: str = "xz",
    md5sums: bool = True,
    control_files: dict[str, bytes] | None = None,
) -> Path:
    """Write a .deb: the members as data.tar.<compression>, a control.tar.gz with md5sums."""
    control = {
        "Package": package, "Version": version, "Architecture": arch,
        "Maintainer": "Test <test@example.org>", "Installed-Size": "1",
        "Description": "test package\n made at test time",
    }
    control.update(fields or {})
    text = "".join(f"{k}: {v}\n" for k, v in control.items())
    ctrl = [M("./", "dir", mode=0o755), M("./control", data=text.encode())]
    if md5sums:
        conf = {c.lstrip("/") for c in conffiles or []}
        lines = "".join(
            f"{hashlib.md5(m.data).hexdigest()}  {m.name.removeprefix('./')}\n"
            for m in members
            if m.type == "file" and m.name.removeprefix("./") not in conf
        )
        ctrl.append(M("./md5sums", data=lines.encode()))
    if conffiles:
        ctrl.append(M("./conffiles", data="".join(c + "\n" for c in conffiles).encode()))
    for name, data in (control_files or {}).items():
        ctrl.append(M(f"./{name}", data=data, mode=0o755))
    dname = "data.tar" + (f".{compression}" if compression else "")
    path.write_bytes(_ar([
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", compress(_tar(ctrl), "gz")),
        (dname, compress(_tar(members), compression)),
    ]))
    return path


def pin_for(store: Store, deb: Path, name: str, version: str, arch: str) -> DebianPackagePin:
    """Put a .deb in the store and pin it as a lock would."""
    sha, size = store.add_file(deb)
    return DebianPackagePin(
        name=name, version=version, architecture=arch, source="debian",
        location=f"debian:pool/main/x/{deb.name}", size=size, sha256=sha, suite="bookworm",
    )
