"""A reader that checks a file's size and sha256 while it is read: bytes are never used before their hash is known to be right (the store, context files)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from imagelock.core.digest import CHUNK
from imagelock.core.errors import IntegrityError


class VerifyingReader:
    """A read-only stream over a store object that fails at EOF unless the bytes hash right."""

    def __init__(
        self,
        path: Path,
        sha256: str,
        size: int | None,
        what: str,
        on_mismatch: Callable[[str, int], Exception] | None = None,
    ) -> None:
        self._f: BinaryIO = open(path, "rb")
        self._on_mismatch = on_mismatch
        self._path = path
        self._h = hashlib.sha256()
        self._sha256 = sha256
        self._size = size
        self._read = 0
        self._what = what
        self._checked = False

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._h.update(data)
        self._read += len(data)
        if not data or (n < 0):
            self._check()
        return data

    def _check(self) -> None:
        if self._checked:
            return
        self._checked = True
        got = self._h.hexdigest()
        if got != self._sha256 or (self._size is not None and self._read != self._size):
            self._f.close()
            if self._on_mismatch is not None:
                raise self._on_mismatch(got, self._read)
            self._path.unlink(missing_ok=True)
            raise IntegrityError(
                f"store object for {self._what} is corrupt (it does not hash to "
                f"{self._sha256}); it was deleted",
                path=str(self._path),
                hint="run `imagelock fetch` to download it again",
            )

    def verify_rest(self) -> None:
        """Read whatever is left and check the digest (for callers that stop at `size`)."""
        while self.read(CHUNK):
            pass
        self._check()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
