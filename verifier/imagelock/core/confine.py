"""Paths named by a file that may come from someone else (a lock's spec and context), resolved
without letting a symlink lead out of the directory that holds them.

A rebuilder reads the vendor's recipe: a lock directory whose `imagelock.yaml` is a symlink to
/etc/shadow, or whose context is a symlink to /etc, must not make imagelock read host files, put
them into an image or list their names. The check compares real paths, so a symlink that stays
inside (a context shared by two specs of one repository) is fine.
"""

from __future__ import annotations

import os
from pathlib import Path

from imagelock.core.errors import UnsafeContentError


def is_inside(path: str | Path, root: str | Path) -> bool:
    """Whether `path`, with every symlink resolved, is `root` or below it (resolved too)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def inside(
    root: Path,
    rel: str | Path,
    *,
    what: str,
    path: str | Path | None = None,
    field: str | None = None,
) -> Path:
    """`root / rel`, refused when following its symlinks leads out of `root`.

    The message names `rel` as written, never where the symlink leads: that would describe the
    host to whoever wrote the link.
    """
    candidate = root / rel
    if not is_inside(candidate, root):
        raise UnsafeContentError(
            f"the {what} {str(rel)!r} leads outside {root} (through a symlink)",
            path=path,
            field=field,
            hint=f"a lock's {what} must be inside the lock's directory; replace the symlink "
            "with the real file or directory",
        )
    return candidate


def own_file(path: Path, what: str) -> Path:
    """`path` itself, refused when it is a symlink that leads out of its own directory."""
    return inside(path.parent, path.name, what=what, path=path)
