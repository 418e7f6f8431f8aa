"""ld.so.cache from the image's own ldconfig, run inside a sandbox on the assembled tree (never on the host)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from imagelock.core.errors import ImagelockError
from imagelock.inputs.debian.deb import (
    DebPackage,
    StagedFile,
)
from imagelock.inputs.debian.merge import View, is_installed
from imagelock.sandbox import emulation
from imagelock.sandbox.bwrap import IN_SANDBOX, Sandbox
from imagelock.tar.entry import BytesContent, Entry

_LDCONFIG = "usr/sbin/ldconfig"
_LD_SKIP = ("usr/share/", "usr/include/", "var/", "etc/ssl/")


def ld_so_cache(ordered: Sequence[DebPackage], view: View, workdir: Path) -> tuple[list[Entry], str]:
    """/etc/ld.so.cache from the image's own ldconfig, run on a staged copy of the root.

    Only when libc-bin is installed (its trigger is what runs ldconfig in a real install) and
    its statically linked ldconfig runs on this machine; otherwise skipped with a note, because
    the host's ldconfig may write a different cache. `-X` leaves links alone; the aux-cache it
    writes is never read back.
    """
    if not is_installed(ordered, "libc-bin") or _LDCONFIG not in view:
        return [], ""
    # A foreign image's ldconfig runs under qemu-user named explicitly (bound read-only into
    # the sandbox): one static program, so no machine-wide binfmt registration is needed.
    libc_bin = next(p for p in ordered if p.name == "libc-bin")
    machine = emulation.machine_of_debian_arch(libc_bin.architecture)
    emu = emulation.foreign(machine) if machine is not None else None
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
                if e.mode & 0o111:
                    # Staged files are shared, read-only, not executable: a program the image
                    # runs (a script's interpreter, a helper) needs its own executable copy.
                    shutil.copyfile(src, dest)
                    os.chmod(dest, 0o555)
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

        if os.environ.get(IN_SANDBOX) == "1":
            # Already in the build sandbox (no network, no host files, no capabilities but
            # chroot in its own user namespace): a sandbox cannot nest here, and need not.
            out = root / ".imagelock-ld-out"  # -C is read inside the chroot
            try:
                qemu = [str(emu.host_path)] if emu is not None else []
                r = subprocess.run([*qemu, str(root / _LDCONFIG), "-X", "-r", str(root), "-C",
                                    "/.imagelock-ld-out/ld.so.cache"], capture_output=True,
                                   timeout=300, env={"PATH": "/usr/sbin:/usr/bin", "LC_ALL": "C"})
            except (OSError, subprocess.TimeoutExpired) as e:
                return [], f"/etc/ld.so.cache left out: the image's ldconfig did not run ({e})"
        else:
            qemu, binds = emulation.prefix(emu) if emu is not None else ([], [])
            box = Sandbox(root=root, writable_root=False, as_root=False,
                          rw_binds=[(out, "/.imagelock-ld-out")], ro_binds=binds,
                          tmpfs=["/tmp", "/var/cache/ldconfig"])
            for mount_point in box.mount_points():  # the root is read-only: bwrap cannot make them
                mp = root / mount_point.lstrip("/")
                if mp.is_symlink():
                    continue
                if any(d == mount_point and src.is_file() for src, d in binds):
                    mp.parent.mkdir(parents=True, exist_ok=True)
                    mp.touch()  # a file is bound onto a file
                else:
                    mp.mkdir(parents=True, exist_ok=True)
            try:
                r = box.run([*qemu, "/" + _LDCONFIG, "-X", "-C", "/.imagelock-ld-out/ld.so.cache"],
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
