"""Outputs appear whole or not at all: written beside their destination, then renamed.

A previous output at the destination is replaced only when it is of the same kind (an OCI
layout, a file we wrote), never an unrelated directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagelock.core.errors import InputError


@contextmanager
def atomic_dir(dest: Path, *, replaceable: str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `dest`; rename it to `dest` on success.

    `replaceable` names a file whose presence marks an existing `dest` as ours to replace.
    """
    dest = dest.absolute()
    if dest.exists() and (
        not dest.is_dir()
        or (any(dest.iterdir()) and not (replaceable and (dest / replaceable).exists()))
    ):
        raise InputError(
            f"output {dest} exists and is not an earlier output of this kind",
            hint="choose another -o path or remove it",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if dest.exists():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
            os.replace(dest, old / "x")
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(dest: Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside `dest`; rename it to `dest` on success."""
    dest = dest.absolute()
    if dest.is_dir():
        raise InputError(f"output {dest} is a directory", hint="give a file path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.tmp-")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
