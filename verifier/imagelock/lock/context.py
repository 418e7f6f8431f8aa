"""Pinning files from the build context: walk each `files` input, hash every file.

Nothing may come from outside the context: a `src` with `..` or an absolute path, or a symlink
whose target leaves the context, is refused. Special files (devices, FIFOs, sockets) are refused.
Modes default from the execute bit only, never from the umask; owners never come from the host.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from imagelock.core.confine import is_inside
from imagelock.core.digest import sha256_file
from imagelock.core.errors import InputError, UnsafeContentError
from imagelock.formats.lock import (
    ContextPin,
)
from imagelock.formats.spec import FileInput, Spec


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _check_src(src: str, field: str, spec_path: Path) -> None:
    if src.startswith("/") or ".." in src.split("/"):
        raise UnsafeContentError(
            f"src {src!r} is outside the build context",
            path=spec_path,
            field=field,
            hint="name files relative to the context directory, without '..'",
        )


def _walk(root: Path) -> list[Path]:
    """Every path below `root`, sorted bytewise by relative path (independent of creation order)."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            out.append(Path(dirpath) / name)
    return sorted(out, key=lambda p: os.fsencode(p.relative_to(root)))


def pin_file_input(
    item: FileInput, index: int, context: Path, spec_path: Path, default_layer: str, *, hash_files: bool = True
) -> list[ContextPin]:
    """The pins one `files` entry creates (one per file, directory and symlink)."""
    field = f"contents.files[{index}].src"
    _check_src(item.src, field, spec_path)
    ctx_real = os.path.realpath(context)
    src_path = context / item.src
    real = os.path.realpath(src_path)
    if not _inside(real, ctx_real):
        raise UnsafeContentError(
            f"src {item.src!r} resolves to {real}, outside the build context {ctx_real}",
            path=spec_path, field=field, hint="symlinks in the context must point inside it",
        )
    if not os.path.lexists(src_path):
        raise InputError(
            f"context file {item.src!r} does not exist (looked in {context})",
            path=spec_path, field=field, hint="create it, or fix `src` (it is relative to `context`)",
        )
    layer = item.layer or default_layer
    dest = item.dest.rstrip("/") or "/"
    pins: list[ContextPin] = []

    def file_pin(p: Path, rel: str, d: str) -> ContextPin:
        st = os.stat(p)
        mode = item.mode or ("0755" if st.st_mode & 0o111 else "0644")
        digest, size = sha256_file(p) if hash_files else ("0" * 64, st.st_size)
        return ContextPin(type="file", src=rel, dest=d, sha256=digest, size=size, mode=mode,
                          owner=item.owner, layer=layer)

    if os.path.isfile(real) and not os.path.isdir(real):
        return [file_pin(Path(real), os.path.relpath(real, ctx_real), dest)]
    if not os.path.isdir(real):
        raise UnsafeContentError(f"src {item.src!r} is not a regular file or directory",
                                 path=spec_path, field=field)
    root = Path(real)
    if dest != "/":
        pins.append(ContextPin(type="dir", src=os.path.relpath(real, ctx_real) or ".", dest=dest,
                               mode=item.dir_mode or "0755", owner=item.owner, layer=layer))
    for p in _walk(root):
        rel_in_dir = p.relative_to(root).as_posix()
        rel = os.path.relpath(p, ctx_real)
        d = (dest.rstrip("/") + "/" + rel_in_dir)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(p)
            resolved = os.path.realpath(os.path.join(os.path.dirname(p), target))
            if target.startswith("/") or not _inside(resolved, ctx_real):
                raise UnsafeContentError(
                    f"symlink {rel!r} -> {target!r} points outside the build context",
                    path=spec_path, field=field,
                    hint="make it a relative link to a file inside the context, or remove it",
                )
            pins.append(ContextPin(type="symlink", src=rel, dest=d, target=target,
                                   owner=item.owner, layer=layer))
        elif stat.S_ISDIR(st.st_mode):
            pins.append(ContextPin(type="dir", src=rel, dest=d, mode=item.dir_mode or "0755",
                                   owner=item.owner, layer=layer))
        elif stat.S_ISREG(st.st_mode):
            pins.append(file_pin(p, rel, d))
        else:
            raise UnsafeContentError(
                f"{rel!r} in the context is a special file (device, FIFO or socket)",
                path=spec_path, field=field, hint="images built from a context carry only "
                "files, directories and symlinks",
            )
    return pins


def context_dir(spec: Spec, spec_path: Path, *, root: Path | None = None) -> Path:
    """The spec's context directory; with `root` (the lock's directory), refused when its real
    path is outside it (a context that is a symlink to /etc)."""
    ctx = (spec_path.parent / spec.context)
    if root is not None and not is_inside(ctx, root):
        raise UnsafeContentError(
            f"the context {spec.context!r} leads outside the lock's directory {root}",
            path=spec_path, field="context",
            hint="the context must be inside the directory of the lock (symlinks resolved)")
    if not ctx.is_dir():
        raise InputError(f"context directory {ctx} does not exist", path=spec_path, field="context")
    return ctx


def pin_context(spec: Spec, spec_path: Path, *, hash_files: bool = True,
                root: Path | None = None) -> list[ContextPin]:
    ctx = context_dir(spec, spec_path, root=root)
    pins: list[ContextPin] = []
    for i, item in enumerate(spec.contents.files):
        pins.extend(pin_file_input(item, i, ctx, spec_path, "files", hash_files=hash_files))
    return pins
