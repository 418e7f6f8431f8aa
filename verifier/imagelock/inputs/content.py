"""Entry contents backed by the store: bytes hash-checked as they are read into a layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from imagelock.fetch.store import Store


@dataclass(frozen=True)
class StoreContent:
    """Bytes of a store object, hash-checked as they are read into the layer."""

    store: Store
    sha256: str
    size: int
    what: str

    def open(self) -> BinaryIO:
        return self.store.open_verified(self.sha256, self.size, self.what)  # type: ignore[return-value]
