"""The sha256-addressed store of downloaded inputs, shared by every command and process.

Objects live at `<root>/sha256/<hex>`. Writes go to a private temporary file in
`<root>/tmp/` and are renamed into place only after their hash matched, so a reader never sees
a partial object and two processes filling the store at once both succeed (the rename of equal
content is idempotent). Every read is checked again: `open_verified` hashes as it streams and
raises at the end if the bytes are not the pinned ones, deleting the corrupt object.

A temporary file is locked by the process writing it (core/scratch.py), so a partial download
left by a killed process is recognised as such and removed when the store is next opened, while
those of processes still at work, sharing the store, are left alone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from imagelock.core.digest import CHUNK, is_sha256_hex
from imagelock.core.errors import InputError, IntegrityError
from imagelock.core.scratch import locked_temp_file, sweep_files
from imagelock.core.verified_read import VerifyingReader

PARTIAL = "part-"  # a download in progress (or left by a process that died)


def default_root() -> Path:
    """`$IMAGELOCK_STORE`, else `$XDG_CACHE_HOME/imagelock/store`, else `~/.cache/imagelock/store`."""
    env = os.environ.get("IMAGELOCK_STORE")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "imagelock" / "store"




class Store:
    """A directory of objects named by the sha256 of their content."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.sweep()

    def sweep(self) -> list[Path]:
        """Remove partial files whose writer died (and an older version's, once a day old)."""
        return sweep_files(self.root / "tmp", PARTIAL, legacy=("in-",))

    def path_for(self, sha256: str) -> Path:
        if not is_sha256_hex(sha256):
            raise InputError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / "sha256" / sha256

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def open_verified(self, sha256: str, size: int | None = None, what: str = "") -> VerifyingReader:
        """Open an object for streaming; the digest is checked when the stream reaches its end."""
        path = self.path_for(sha256)
        if not path.is_file():
            raise IntegrityError(
                f"{what or sha256} is not in the store {self.root}",
                hint="run `imagelock fetch` first (or drop --offline)",
            )
        return VerifyingReader(path, sha256, size, what or sha256)

    def verify(self, sha256: str, size: int | None = None, what: str = "") -> Path:
        """Hash a whole object now; return its path when it is intact."""
        with self.open_verified(sha256, size, what) as r:
            r.verify_rest()
        return self.path_for(sha256)

    def _tmp(self) -> tuple[int, Path]:
        tmpdir = self.root / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        (self.root / "sha256").mkdir(parents=True, exist_ok=True)
        return locked_temp_file(tmpdir, PARTIAL)

    def add_chunks(
        self,
        chunks: Iterable[bytes],
        *,
        sha256: str | None = None,
        size: int | None = None,
        what: str = "",
        limit: int | None = None,
    ) -> tuple[str, int]:
        """Stream bytes into the store; with `sha256` given, refuse (and discard) any other bytes.
        `limit` bounds an object whose size is not known in advance.

        Returns (hex digest, size). Nothing is left behind on failure.
        """
        fd, tmp = self._tmp()
        h = hashlib.sha256()
        n = 0
        f = os.fdopen(fd, "wb")  # open (so locked) until the file is renamed or removed
        try:
            for chunk in chunks:
                n += len(chunk)
                if limit is not None and n > limit:
                    raise IntegrityError(f"{what or 'download'} is larger than {limit} bytes",
                                         hint="no genuine file of this kind is this large")
                if size is not None and n > size:
                    raise IntegrityError(
                        f"{what or 'download'} is larger than its pinned size {size}",
                        hint="the source serves different content than was locked",
                    )
                h.update(chunk)
                f.write(chunk)
            f.flush()
            got = h.hexdigest()
            if sha256 is not None and got != sha256:
                raise IntegrityError(
                    f"{what or 'download'} does not have the pinned sha256 {sha256}; discarded",
                    hint="the source serves different content than was locked: check the mirror, "
                    "or re-lock if the change is intended",
                )
            if size is not None and n != size:
                raise IntegrityError(f"{what or 'download'} has {n} bytes, expected {size}")
            os.chmod(tmp, 0o444)
            os.replace(tmp, self.path_for(got))
            return got, n
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            f.close()

    def add_file(self, path: str | Path, *, sha256: str | None = None, what: str = "") -> tuple[str, int]:
        with open(path, "rb") as f:
            return self.add_chunks(iter(lambda: f.read(CHUNK), b""), sha256=sha256, what=what)
